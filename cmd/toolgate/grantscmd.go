package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	bhttp "github.com/toolgate/toolgate/broker/httpapi"
)

func grantsCmd() *cobra.Command {
	var sf serverFlags
	cmd := &cobra.Command{Use: "grants", Short: "Mint, read and revoke JIT grants on a running server"}
	sf.register(cmd, "an API key or OIDC token of a principal of the graph (graphs.<g>.principals); a grant token cannot mint grants")
	cmd.AddCommand(grantsCreateCmd(&sf), grantsGetCmd(&sf), grantsListCmd(&sf), grantsRevokeCmd(&sf))
	return cmd
}

func grantsCreateCmd(sf *serverFlags) *cobra.Command {
	var (
		graph, run, thread, ttl, scope string
		nodes                          []string
		asJSON                         bool
	)
	cmd := &cobra.Command{
		Use:   "create --graph G --run R --node N [--node N2] [--ttl 15m] [--scope JSON]",
		Short: "Mint a grant: one token per node, valid for the run until the TTL or revocation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body := map[string]any{"graph": graph, "run_id": run, "nodes": nodes, "ttl": ttl}
			if thread != "" {
				body["thread_id"] = thread
			}
			if scope != "" {
				var s map[string]any
				if err := json.Unmarshal([]byte(scope), &s); err != nil {
					return fail(2, "invalid_arguments: --scope must be a JSON object like '{\"customer_id\": 42}'")
				}
				body["scope"] = s
			}
			var res struct {
				GrantID   string            `json:"grant_id"`
				ExpiresAt time.Time         `json:"expires_at"`
				Tokens    map[string]string `json:"tokens"`
			}
			if printed, err := sf.request(cmd, "POST", "/v1/grants", body, &res, asJSON); printed || err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "grant %s expires %s\n", res.GrantID, res.ExpiresAt.Format(time.RFC3339))
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tTOKEN")
			for _, n := range slices.Sorted(maps.Keys(res.Tokens)) {
				fmt.Fprintf(tw, "%s\t%s\n", n, res.Tokens[n])
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&graph, "graph", "", "graph the grant is for (required)")
	f.StringVar(&run, "run", "", "LangGraph run id the grant is bound to (required)")
	f.StringVar(&thread, "thread", "", "LangGraph thread id the grant is bound to")
	f.StringArrayVar(&nodes, "node", nil, "node path to mint a token for (repeatable, at least one)")
	f.StringVar(&ttl, "ttl", "15m", "lifetime, e.g. 15m or 900 (seconds); capped by auth.grant_max_ttl")
	f.StringVar(&scope, "scope", "", `scope as a JSON object, validated against the graph's scope_schema, e.g. '{"customer_id":42}'`)
	f.BoolVar(&asJSON, "json", false, "print the server's JSON answer")
	_ = cmd.MarkFlagRequired("graph")
	_ = cmd.MarkFlagRequired("run")
	_ = cmd.MarkFlagRequired("node")
	return cmd
}

func grantsGetCmd(sf *serverFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show a grant (never its tokens)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var g bhttp.GrantInfo
			if printed, err := sf.request(cmd, "GET", "/v1/grants/"+url.PathEscape(args[0]), nil, &g, asJSON); printed || err != nil {
				return err
			}
			printGrant(cmd.OutOrStdout(), g)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the server's JSON answer")
	return cmd
}

func printGrant(w io.Writer, g bhttp.GrantInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	scope, _ := json.Marshal(g.Scope)
	rows := [][2]string{
		{"id", g.ID}, {"status", g.Status}, {"graph", g.Graph}, {"run", g.Run}, {"thread", g.Thread},
		{"nodes", strings.Join(g.Nodes, ", ")}, {"scope", string(scope)}, {"created by", g.CreatedBy},
		{"created at", g.CreatedAt.Format(time.RFC3339)}, {"expires at", g.ExpiresAt.Format(time.RFC3339)},
	}
	if g.RevokedAt != nil {
		rows = append(rows, [2]string{"revoked at", g.RevokedAt.Format(time.RFC3339)})
	}
	for _, r := range rows {
		if r[1] != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", r[0], r[1])
		}
	}
	_ = tw.Flush()
}

func grantsListCmd(sf *serverFlags) *cobra.Command {
	var (
		graph, run string
		asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "list --graph G [--run R]",
		Short: "List a graph's grants, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"graph": {graph}}
			if run != "" {
				q.Set("run", run)
			}
			var res struct {
				Grants []bhttp.GrantInfo `json:"grants"`
			}
			if printed, err := sf.request(cmd, "GET", "/v1/grants?"+q.Encode(), nil, &res, asJSON); printed || err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATUS\tRUN\tNODES\tEXPIRES")
			for _, g := range res.Grants {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", g.ID, g.Status, g.Run, strings.Join(g.Nodes, ","), g.ExpiresAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&graph, "graph", "", "graph whose grants to list (required)")
	cmd.Flags().StringVar(&run, "run", "", "only grants of this run")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the server's JSON answer")
	_ = cmd.MarkFlagRequired("graph")
	return cmd
}

func grantsRevokeCmd(sf *serverFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a grant: every token of it stops working on the next call",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := sf.send(cmd, "DELETE", "/v1/grants/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "grant %s revoked\n", args[0])
			return nil
		},
	}
}
