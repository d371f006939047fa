package main

import (
	"fmt"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/toolgate/toolgate/broker"
)

func approvalsCmd() *cobra.Command {
	var sf serverFlags
	cmd := &cobra.Command{Use: "approvals", Short: "List and decide approval requests on a running server"}
	sf.register(cmd, "your API key or OIDC token; to approve or deny you must be one of the request's approvers, and not its requester")
	cmd.AddCommand(approvalsListCmd(&sf), approvalsDecideCmd(&sf, "approve"), approvalsDecideCmd(&sf, "deny"))
	return cmd
}

func approvalsListCmd(sf *serverFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the approval requests you may decide or that you made",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := sf.client(cmd)
			if err != nil {
				return err
			}
			var res struct {
				Approvals []broker.ApprovalInfo `json:"approvals"`
			}
			var raw []byte
			if err := c.do(cmd.Context(), "GET", "/v1/approvals", nil, &res, &raw); err != nil {
				return err
			}
			if asJSON {
				_, err := cmd.OutOrStdout().Write(raw)
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATUS\tTOOL\tREQUESTER\tGRAPH/NODE\tRUN\tEXPIRES")
			for _, a := range res.Approvals {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s/%s\t%s\t%s\n", a.ID, a.Status, a.Tool, a.Principal, a.Graph, a.Node, a.Run, a.ExpiresAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the server's JSON answer (arguments are masked)")
	return cmd
}

func approvalsDecideCmd(sf *serverFlags, verb string) *cobra.Command {
	var reason string
	short := "Approve a pending request (you must be one of its approvers, not its requester)"
	if verb == "deny" {
		short = "Deny a pending request; any deny denies"
	}
	cmd := &cobra.Command{
		Use:   verb + " ID [--reason R]",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := sf.client(cmd)
			if err != nil {
				return err
			}
			var res struct {
				ID     string `json:"id"`
				Status string `json:"status"`
			}
			if err := c.do(cmd.Context(), "POST", "/v1/approvals/"+url.PathEscape(args[0])+"/"+verb, map[string]string{"reason": reason}, &res, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "approval %s: %s\n", args[0], res.Status)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, recorded with the decision")
	return cmd
}
