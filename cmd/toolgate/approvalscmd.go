package main

import (
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/toolgate/toolgate/approvals"
	"github.com/toolgate/toolgate/broker"
)

func approvalsCmd() *cobra.Command {
	var sf serverFlags
	cmd := &cobra.Command{Use: "approvals", Short: "List and decide approval requests on a running server"}
	sf.register(cmd, "your API key or OIDC token; to approve or deny you must be one of the request's approvers, and not its requester")
	cmd.AddCommand(approvalsListCmd(&sf), approvalsShowCmd(&sf), approvalsDecideCmd(&sf, "approve"), approvalsDecideCmd(&sf, "deny"))
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
			fmt.Fprintln(tw, "ID\tSTATUS\tTOOL\tROWS\tREQUESTER\tGRAPH/NODE\tRUN\tEXPIRES")
			for _, a := range res.Approvals {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s/%s\t%s\t%s\n", a.ID, a.Status, a.Tool, rowsAffected(a.Preview), a.Principal, a.Graph, a.Node, a.Run, a.ExpiresAt.Format(time.RFC3339))
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

// rowsAffected is the ROWS cell of a request: its preview's count, "?"
// when the preview could not count, "-" without a preview.
func rowsAffected(p *broker.ApprovalPreview) string {
	switch {
	case p == nil || p.Unavailable != "":
		return "-"
	case p.RowsAffected < 0:
		return "?"
	}
	return strconv.FormatInt(p.RowsAffected, 10)
}

func approvalsShowCmd(sf *serverFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show one approval request with the preview of what it would change (masked)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := sf.client(cmd)
			if err != nil {
				return err
			}
			var a broker.ApprovalInfo
			var raw []byte
			if err := c.do(cmd.Context(), "GET", "/v1/approvals/"+url.PathEscape(args[0]), nil, &a, &raw); err != nil {
				return err
			}
			if asJSON {
				_, err := cmd.OutOrStdout().Write(raw)
				return err
			}
			return printApproval(cmd.OutOrStdout(), a)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the server's JSON answer (arguments and preview are masked)")
	return cmd
}

// printApproval writes a request as approvers read it: who asks for what,
// the masked arguments, the votes, and the preview with its sample table.
func printApproval(w io.Writer, a broker.ApprovalInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	asked := a.Principal
	if a.Via != "" {
		asked += " via " + a.Via
	}
	fmt.Fprintf(tw, "approval\t%s (%s)\n", a.ID, a.Status)
	fmt.Fprintf(tw, "requested by\t%s\n", asked)
	fmt.Fprintf(tw, "graph/node/run\t%s/%s/%s\n", a.Graph, a.Node, a.Run)
	fmt.Fprintf(tw, "tool\t%s on target %s\n", a.Tool, a.Target)
	fmt.Fprintf(tw, "rule\t%s (%d of %s)\n", a.Rule, a.MinApprovals, strings.Join(a.Approvers, ", "))
	fmt.Fprintf(tw, "expires\t%s\n", a.ExpiresAt.Format(time.RFC3339))
	if a.Reason != "" {
		fmt.Fprintf(tw, "reason\t%s\n", a.Reason)
	}
	fmt.Fprintf(tw, "arguments\t%s\n", a.Args)
	for _, v := range a.Votes {
		fmt.Fprintf(tw, "vote\t%s\n", broker.VoteLine(v))
	}
	fmt.Fprintf(tw, "preview\t%s\n", broker.PreviewHeadline(a.Preview))
	if err := tw.Flush(); err != nil {
		return err
	}
	if a.Preview == nil || a.Preview.Unavailable != "" {
		return nil
	}
	for _, line := range approvals.SampleTable(a.Preview.Sample, 1000, 40) {
		if _, err := fmt.Fprintln(w, "  "+line); err != nil {
			return err
		}
	}
	return nil
}
