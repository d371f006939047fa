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
	var file, backtest string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate a config, its tools and its policy; print every problem as file: path: reason",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, st, err := loadStatic(cmd, file)
			if err != nil {
				return err
			}
			for i, l := range cfg.Passthrough.Postgres {
				for _, w := range lock2Warnings(l, i) {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: warning: %s\n", file, w)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d tools, %d targets, %d graphs)\n", file, len(st.catalog.Tools()), len(cfg.Targets), len(cfg.Graphs))
			if backtest != "" {
				return checkBacktest(cmd, cfg, st.policy, backtest)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "config", "toolgate.yaml", "config file")
	cmd.Flags().StringVar(&backtest, "backtest", "", "also decide the calls recorded since this time (7d, 168h, a date) under this config and print what would change")
	return cmd
}

// loadConfig loads the --config file. On a problem it prints every one to
// stderr and returns an exitError with code.
func loadConfig(cmd *cobra.Command, file string, code int) (*config.Config, error) {
	cfg, err := config.Load(file, os.LookupEnv)
	if err != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), err)
		return nil, exitError{code}
	}
	return cfg, nil
}

// loadStatic loads the config and compiles its tools, policy and masking,
// for the verbs that need no server and no store. Problems exit 1.
func loadStatic(cmd *cobra.Command, file string) (*config.Config, *static, error) {
	cfg, err := loadConfig(cmd, file, 1)
	if err != nil {
		return nil, nil, err
	}
	st, err := compile(cfg, policy.NewMemoryCounters(), zap.NewNop())
	if err != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), err)
		return nil, nil, exitError{1}
	}
	return cfg, st, nil
}
