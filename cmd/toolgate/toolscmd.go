package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/toolgate/toolgate/internal/config"
)

func toolsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tools", Short: "List the tool catalog and draft new tools"}
	cf := configFlag{readOnly: true}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the declared tools",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, st, err := loadStatic(cmd, cf.path(cmd))
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tTARGET\tKIND\tTITLE")
			for _, t := range st.catalog.Tools() {
				k, _ := config.KindOf(cfg.Targets[t.Target].Kind)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Target, k.Runs, t.Title)
			}
			return tw.Flush()
		},
	}
	cf.register(list)
	cmd.AddCommand(list, toolsScaffoldCmd())
	return cmd
}
