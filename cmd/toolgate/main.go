// Command toolgate is the one toolgate binary: the broker server, its
// zero-setup dev mode, and the operator verbs (check, tools, grants,
// approvals, audit, replay, policy). It is the only place where YAML, flags
// and environment variables are read and where implementations are wired
// together, by hand, so what a privileged binary links is plain to audit.
//
// Every error the CLI prints is one line "toolgate: <verb>: <message>";
// lists of problems in a config or a tool file are printed before it, one
// per line, as "file:line: path: reason".
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…" (the
// Makefile and the Dockerfile stamp `git describe --always --dirty`).
var version = "dev"

// exitError ends a verb with an exit code. err, when set, is printed as
// "toolgate: <verb>: <err>"; when nil, everything was printed already.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err != nil {
		return e.err.Error()
	}
	return fmt.Sprintf("exit %d", e.code)
}

func (e exitError) Unwrap() error { return e.err }

// fail returns an exitError with code and a formatted message.
func fail(code int, format string, args ...any) error {
	return exitError{code: code, err: fmt.Errorf(format, args...)}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the exit code, printing
// any error in the CLI's one style.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	code := 1
	var ee exitError
	if errors.As(err, &ee) {
		code = ee.code
		if ee.err == nil {
			return code
		}
		err = ee.err
	}
	verb := ""
	if cmd != nil {
		verb = strings.TrimSpace(strings.TrimPrefix(cmd.CommandPath(), root.Name()))
	}
	if verb == "" {
		fmt.Fprintf(stderr, "toolgate: %v\n", err)
	} else {
		fmt.Fprintf(stderr, "toolgate: %s: %v\n", verb, err)
	}
	return code
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "toolgate",
		Short:         "toolgate is a privileged-access broker for AI agents",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("toolgate {{.Version}}\n")
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
		keysCmd(),
		principalsCmd(),
		accessCmd(),
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
		Short: "Print the toolgate version (also: toolgate --version)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "toolgate", version)
			return nil
		},
	}
}
