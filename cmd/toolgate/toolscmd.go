package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/policy"
)

func toolsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tools", Short: "Inspect the tool catalog"}
	var file string
	list := &cobra.Command{
		Use:   "list",
		Short: "List the declared tools",
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
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tTARGET\tKIND\tTITLE")
			for _, t := range st.catalog.Tools() {
				k := "sql"
				if cfg.Targets[t.Target].Kind == "http" {
					k = "http"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Target, k, t.Title)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&file, "config", "toolgate.yaml", "config file")
	cmd.AddCommand(list)
	return cmd
}
