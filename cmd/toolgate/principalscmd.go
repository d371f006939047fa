package main

import (
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker/principals"
	"github.com/toolgate/toolgate/internal/db"
)

func principalsCmd() *cobra.Command {
	var sf serverFlags
	cmd := &cobra.Command{Use: "principals", Short: "Disable and enable principals on a running server (admins only)"}
	sf.register(cmd, "a credential of a principal in auth.admins")
	cmd.AddCommand(principalsVerbCmd(&sf, "disable"), principalsVerbCmd(&sf, "enable"), principalsListCmd(&sf))
	return cmd
}

func principalsVerbCmd(sf *serverFlags, verb string) *cobra.Command {
	var reason string
	var asJSON bool
	short := "Disable a principal: its keys, the grants it minted, its sessions and pending approvals are suspended at once"
	if verb == "enable" {
		short = "Enable a principal again: its unexpired keys work again; revoked grants stay revoked"
	}
	cmd := &cobra.Command{
		Use:   verb + " PRINCIPAL",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var body any
			if verb == "disable" {
				body = map[string]string{"reason": reason}
			}
			var out principals.Outcome
			if printed, err := sf.request(cmd, "POST", "/v1/principals/"+url.PathEscape(args[0])+"/"+verb, body, &out, asJSON); printed || err != nil {
				return err
			}
			state := "enabled"
			if out.Disabled {
				state = "disabled"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s", out.Principal, state)
			if !out.Changed {
				fmt.Fprint(cmd.OutOrStdout(), " (it already was)")
			}
			fmt.Fprintln(cmd.OutOrStdout())
			if verb == "disable" {
				fmt.Fprintf(cmd.OutOrStdout(), "keys suspended: %s\ngrants revoked: %s\napproval requests refused: %d\n",
					orDash(strings.Join(out.Keys, ", ")), orDash(strings.Join(out.Grants, ", ")), out.Approvals)
			}
			return nil
		},
	}
	if verb == "disable" {
		cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit trail")
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the server's JSON answer")
	return cmd
}

func principalsListCmd(sf *serverFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the principals that are or were disabled",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res struct {
				Principals []principals.State `json:"principals"`
			}
			if err := sf.send(cmd, "GET", "/v1/principals", nil, &res); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PRINCIPAL\tSTATE\tBY\tSINCE\tREASON")
			for _, st := range res.Principals {
				state := "enabled"
				switch {
				case st.AdminDisabled:
					state = "disabled"
				case st.SCIMDisabled:
					state = "disabled (scim)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", st.Principal, state, orDash(st.ChangedBy), st.ChangedAt.Format(time.RFC3339), orDash(st.Reason))
			}
			return tw.Flush()
		},
	}
}

func accessCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "access", Short: "Review who holds which privileges (reads the store the config names; no server needed)"}
	cmd.AddCommand(accessReviewCmd())
	return cmd
}

func accessReviewCmd() *cobra.Command {
	cf := configFlag{readOnly: true}
	var stale, format string
	cmd := &cobra.Command{
		Use:   "review [--stale 30d] [--format text|json]",
		Short: "List every principal with privileges: graphs, keys, live grants, approver roles, and what to act on",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			period, err := parseLifetimeFlag(stale)
			if err != nil {
				return fail(2, "--stale: %v", err)
			}
			if format != "text" && format != "json" {
				return fail(2, "--format must be text or json")
			}
			cfg, err := loadConfig(cmd, cf.path(cmd), 2)
			if err != nil {
				return err
			}
			d, err := db.Open(cmd.Context(), db.Config{Driver: cfg.Store.Driver, Path: cfg.Store.Path, DSN: cfg.Store.DSN}, zap.NewNop())
			if err != nil {
				return fail(2, "open store (%s): %v", cfg.Store.Driver, err)
			}
			defer d.Close()
			in, err := reviewInput(cmd.Context(), cfg, d, time.Now(), period)
			if err != nil {
				return fail(2, "read the store: %v", err)
			}
			r := principals.Review(in)
			if format == "json" {
				return r.WriteJSON(cmd.OutOrStdout())
			}
			return r.WriteText(cmd.OutOrStdout())
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&stale, "stale", "30d", "flag keys unused for this long (days like 30d, or a duration like 720h)")
	cmd.Flags().StringVar(&format, "format", "text", "text or json")
	return cmd
}

// parseLifetimeFlag reads a period: whole days ("30d") or a Go duration.
func parseLifetimeFlag(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err == nil && days > 0 && fmt.Sprint(days) == n {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a period like 30d or 720h", s)
	}
	return d, nil
}
