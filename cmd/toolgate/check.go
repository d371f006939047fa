package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/policy"
)

func checkCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate a config, its tools and its policy; print every problem as file: path: reason",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(file, os.LookupEnv)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return exitError{1}
			}
			st, err := compile(cfg, policy.NewMemoryCounters(), zap.NewNop())
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return exitError{1}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d tools, %d targets, %d graphs)\n", file, len(st.catalog.Tools()), len(cfg.Targets), len(cfg.Graphs))
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "config", "toolgate.yaml", "config file")
	return cmd
}
