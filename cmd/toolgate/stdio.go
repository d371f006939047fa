package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/toolgate/toolgate/broker"
)

func stdioCmd() *cobra.Command {
	var cf configFlag
	cmd := &cobra.Command{
		Use:   "stdio",
		Short: "Serve MCP over stdin/stdout for a local agent (credential from TOOLGATE_TOKEN, context from TOOLGATE_GRAPH/NODE/RUN/THREAD)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, cf.path(cmd), 2)
			if err != nil {
				return err
			}
			// Logs go to stderr: stdout carries the protocol.
			log := newLogger(cmd.ErrOrStderr(), false)
			a, err := openApp(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			defer a.Close()
			cr := broker.Credentials{Token: os.Getenv("TOOLGATE_TOKEN"), Claimed: broker.Context{
				Graph:  os.Getenv("TOOLGATE_GRAPH"),
				Node:   os.Getenv("TOOLGATE_NODE"),
				Run:    os.Getenv("TOOLGATE_RUN"),
				Thread: os.Getenv("TOOLGATE_THREAD"),
			}}
			return a.mcp.ServeStdio(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), cr)
		},
	}
	cf.register(cmd)
	return cmd
}
