package main

import (
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/toolgate/toolgate/broker"
)

// keyJSON is a key as the keys API returns it; Key is set only in the
// answer of create.
type keyJSON struct {
	broker.KeyInfo
	Key string `json:"key"`
}

func keysCmd() *cobra.Command {
	var sf serverFlags
	cmd := &cobra.Command{Use: "keys", Short: "Make, list and revoke API keys on a running server (admins only)"}
	sf.register(cmd, "a credential of a principal in auth.admins")
	cmd.AddCommand(keysCreateCmd(&sf), keysListCmd(&sf), keysRevokeCmd(&sf))
	return cmd
}

func keysCreateCmd(sf *serverFlags) *cobra.Command {
	var name, owner, expiresIn string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "create --name N --owner P [--expires-in 30d]",
		Short: "Make an API key owned by a principal; the key is printed once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body := map[string]any{"name": name, "owner": owner}
			if expiresIn != "" {
				body["expires_in"] = expiresIn
			}
			var k keyJSON
			if printed, err := sf.request(cmd, "POST", "/v1/keys", body, &k, asJSON); printed || err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "key %s owned by %s expires %s\n%s\n", k.Name, k.Owner, when(k.ExpiresAt), k.Key)
			fmt.Fprintln(cmd.ErrOrStderr(), "store the key now: it is not shown again")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "key name; its principal is key:<name> (required)")
	f.StringVar(&owner, "owner", "", "principal accountable for the key, e.g. user:ana@example.com (required)")
	f.StringVar(&expiresIn, "expires-in", "", "lifetime, e.g. 30d or 12h (default and cap: auth.keys.max_ttl)")
	f.BoolVar(&asJSON, "json", false, "print the server's JSON answer")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("owner")
	return cmd
}

func keysListCmd(sf *serverFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List every API key: configured and made at run time, with owner, expiry and last use",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var res struct {
				Keys []keyJSON `json:"keys"`
			}
			if printed, err := sf.request(cmd, "GET", "/v1/keys", nil, &res, asJSON); printed || err != nil {
				return err
			}
			return printKeys(cmd.OutOrStdout(), res.Keys)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the server's JSON answer")
	return cmd
}

func printKeys(w io.Writer, keys []keyJSON) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSOURCE\tOWNER\tCREATED BY\tEXPIRES\tLAST USED\tSTATUS")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.Name, k.Source, orDash(k.Owner), orDash(k.CreatedBy), when(k.ExpiresAt), when(k.LastUsed), k.Status)
	}
	return tw.Flush()
}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func keysRevokeCmd(sf *serverFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke an API key: it stops working on the next request on every instance",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := sf.send(cmd, "DELETE", "/v1/keys/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "key %s revoked\n", args[0])
			return nil
		},
	}
}
