// Command toolgate is the one toolgate binary: the broker server, its
// zero-setup dev mode, and the operator verbs (check, tools, grants,
// approvals, audit, replay, policy). It is the only place where YAML, flags
// and environment variables are read and where implementations are wired
// together, by hand, so what a privileged binary links is plain to audit.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// exitError carries an exit code without printing again.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		os.Exit(ee.code)
	default:
		fmt.Fprintln(os.Stderr, "toolgate:", err)
		os.Exit(1)
	}
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "toolgate",
		Short:         "toolgate is a privileged-access broker for AI agents",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		serveCmd(),
		devCmd(),
		checkCmd(),
		stdioCmd(),
		toolsCmd(),
		grantsCmd(),
		approvalsCmd(),
		policyCmd(),
		auditCmd(),
		replayCmd(),
		versionCmd(),
	)
	return root
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the toolgate version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "toolgate", version)
			return nil
		},
	}
}
