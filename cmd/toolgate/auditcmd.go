package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
	bhttp "github.com/toolgate/toolgate/broker/httpapi"
	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/internal/db"
	"github.com/toolgate/toolgate/recordings"
)

// auditStore is the audit trail as the HTTP audit API reads it: the
// recordings Reader, which checks every reader against auth.auditors.
type auditStore struct{ r *recordings.Reader }

var _ bhttp.AuditStore = auditStore{}

// Auditor implements bhttp.AuditStore.
func (a auditStore) Auditor(p broker.Principal) error { return a.r.Auditor(p) }

// ExportEvents implements bhttp.AuditStore.
func (a auditStore) ExportEvents(ctx context.Context, viewer broker.Principal, q bhttp.AuditQuery, w io.Writer) (int, error) {
	n, err := a.r.Export(ctx, viewer, auditFilter(q), q.Format, w)
	return n, readError(err)
}

// RunTrace implements bhttp.AuditStore.
func (a auditStore) RunTrace(ctx context.Context, viewer broker.Principal, run string) ([]broker.Event, error) {
	evs, err := a.r.Trace(ctx, viewer, run)
	return evs, readError(err)
}

// auditFilter is the recordings filter of an audit query.
func auditFilter(q bhttp.AuditQuery) recordings.Filter {
	return recordings.Filter{Graph: q.Graph, Node: q.Node, Run: q.Run, Thread: q.Thread, Tool: q.Tool, Kind: q.Kind,
		Since: q.Since, Until: q.Until, Limit: q.Limit}
}

// readError turns a store failure into audit_unavailable; refusals of the
// query (*broker.Error) pass unchanged.
func readError(err error) error {
	var be *broker.Error
	if err == nil || errors.As(err, &be) {
		return err
	}
	return broker.Wrap(broker.CodeAuditUnavailable, err, "the audit store cannot be read right now; retry when it is back")
}

// recordingsConfig is the recordings.Config the config file asks for.
func recordingsConfig(cfg *config.Config) recordings.Config {
	instance := cfg.Recordings.Instance
	if instance == "" && cfg.Store.Driver == "sqlite" {
		// One process writes a SQLite store, so one chain that every
		// restart continues: cutting records written before a restart is
		// then detectable.
		instance = "local"
	}
	return recordings.Config{Instance: instance, CheckpointKey: []byte(cfg.Recordings.CheckpointKey)}
}

// openRecordings opens the store a config names for reading, with no server.
// Config and store problems end the verb with exit code 2.
func openRecordings(cmd *cobra.Command, file string) (*recordings.Store, func(), error) {
	cfg, err := loadConfig(cmd, file, 2)
	if err != nil {
		return nil, nil, err
	}
	ctx := cmd.Context()
	d, err := db.Open(ctx, db.Config{Driver: cfg.Store.Driver, Path: cfg.Store.Path, DSN: cfg.Store.DSN}, zap.NewNop())
	if err != nil {
		return nil, nil, fail(2, "open store (%s): %v", cfg.Store.Driver, err)
	}
	rec, err := recordings.NewStore(d, recordingsConfig(cfg), zap.NewNop())
	if err != nil {
		_ = d.Close()
		return nil, nil, fail(2, "open recordings: %v", err)
	}
	return rec, func() { _ = rec.Close(); _ = d.Close() }, nil
}

// refuse turns a refusal into exit code 2 with its message ("--field:
// message" when it names a flag).
func refuse(err error) error {
	var be *broker.Error
	if errors.As(err, &be) {
		if be.Field != "" {
			return fail(2, "--%s: %s", be.Field, be.Message)
		}
		return fail(2, "%s", be.Message)
	}
	return err
}

func auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Export and verify the audit records (reads the store the config names; no server needed)"}
	cmd.AddCommand(auditExportCmd(), auditVerifyCmd())
	return cmd
}

func auditExportCmd() *cobra.Command {
	cf := configFlag{readOnly: true}
	var out string
	filters := []string{"graph", "node", "run", "thread", "tool", "kind", "since", "until", "format", "limit"}
	vals := map[string]*string{}
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the selected audit records as jsonl (chain-verifiable) or csv",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := url.Values{}
			for _, name := range filters {
				if cmd.Flags().Changed(name) || name == "format" {
					v.Set(name, *vals[name])
				}
			}
			q, err := bhttp.ParseAuditQuery(v, time.Now())
			if err != nil {
				return refuse(err)
			}
			rec, done, err := openRecordings(cmd, cf.path(cmd))
			if err != nil {
				return err
			}
			defer done()
			w := cmd.OutOrStdout()
			var f *os.File
			if out != "" && out != "-" {
				f, err = os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
				if err != nil {
					return fail(2, "--out: %v", err)
				}
				w = f
			}
			n, err := rec.Export(cmd.Context(), auditFilter(q), q.Format, w)
			err = readError(err)
			if f != nil {
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				return refuse(err)
			}
			if f != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %d records to %s\n", n, out)
			}
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&out, "out", "", "write to this file (mode 0600) instead of stdout")
	help := map[string]string{
		"graph": "only this graph", "node": "only this node path", "run": "only this run", "thread": "only this thread",
		"tool": "only this tool", "kind": "only this event kind (tool_call, grant_minted, ...)",
		"since": "from this time (RFC 3339, a date, or a duration ago like 24h)", "until": "before this time (same forms as --since)",
		"format": "jsonl or csv", "limit": "at most this many records (0: all)",
	}
	for _, name := range filters {
		def := ""
		if name == "format" {
			def = bhttp.AuditJSONL
		}
		vals[name] = cmd.Flags().String(name, def, help[name])
	}
	return cmd
}

func auditVerifyCmd() *cobra.Command {
	cf := configFlag{readOnly: true}
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check every audit chain; exit 1 naming the first edited, removed or reordered record",
		Long: "verify recomputes every chain of the store. It exits 0 when every chain is intact, " +
			"1 when a chain is broken (naming the first edited, removed or reordered record of each), " +
			"and 2 when it could not check (bad config, store down).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rec, done, err := openRecordings(cmd, cf.path(cmd))
			if err != nil {
				return err
			}
			defer done()
			rep, err := rec.Verify(cmd.Context())
			if err != nil {
				return fail(2, "%v", err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				b, _ := json.MarshalIndent(rep, "", "  ")
				fmt.Fprintln(w, string(b))
			} else {
				writeReport(w, rep)
			}
			if !rep.OK() {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func writeReport(w io.Writer, rep recordings.Report) {
	if rep.OK() {
		chains := "chains"
		if rep.Chains == 1 {
			chains = "chain"
		}
		fmt.Fprintf(w, "audit records intact: %d records in %d %s\n", rep.Records, rep.Chains, chains)
		return
	}
	fmt.Fprintf(w, "audit records BROKEN: %d of %d chains (%d records)\n", len(rep.Problems), rep.Chains, rep.Records)
	for _, p := range rep.Problems {
		fmt.Fprintln(w, problemLine(p))
	}
}

// problemLine says where a chain broke and how, as `audit verify` prints it.
func problemLine(p recordings.Problem) string {
	rec := fmt.Sprintf("seq %d", p.Seq)
	if p.ID != "" {
		rec = fmt.Sprintf("record %s (seq %d)", p.ID, p.Seq)
	}
	return fmt.Sprintf("chain %s: %s %s: %s", p.Chain, rec, p.Kind, p.Detail)
}

func replayCmd() *cobra.Command {
	cf := configFlag{readOnly: true}
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "replay RUN",
		Short: "Print the timeline of a run (tool calls, decisions, approvals, passthrough statements)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rec, done, err := openRecordings(cmd, cf.path(cmd))
			if err != nil {
				return err
			}
			defer done()
			evs, err := rec.Trace(cmd.Context(), args[0])
			err = readError(err)
			if err != nil {
				return refuse(err)
			}
			if len(evs) == 0 {
				return fail(1, "no events are recorded for run %q", args[0])
			}
			w := cmd.OutOrStdout()
			if asJSON {
				b, err := json.MarshalIndent(struct {
					Run    string         `json:"run"`
					Events []broker.Event `json:"events"`
				}{args[0], evs}, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(w, string(b))
				return err
			}
			return recordings.WriteTimeline(w, evs)
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the trace as JSON (the body of GET /v1/runs/{run}/trace)")
	return cmd
}
