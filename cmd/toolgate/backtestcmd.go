package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
	bhttp "github.com/toolgate/toolgate/broker/httpapi"
	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/internal/db"
	"github.com/toolgate/toolgate/policy"
	"github.com/toolgate/toolgate/recordings"
)

// backtestQuery selects the records a backtest reads.
type backtestQuery struct {
	graph, node, tool string
	since, until      time.Time
}

func policyBacktestCmd() *cobra.Command {
	cf := configFlag{readOnly: true}
	var candidate, since, until, format string
	var q backtestQuery
	cmd := &cobra.Command{
		Use:   "backtest",
		Short: "Decide the calls recorded in --config's store again under --candidate's policy and print what would change",
		Long: "backtest reads the tool calls and passthrough statements recorded in the store --config names and decides " +
			"each again under the policy of --candidate, printing every record whose decision would change or cannot " +
			"be told from the record (a condition that reads a masked argument). It calls no target, writes nothing " +
			"to the store and charges no budget. It exits 0 whatever it finds, 1 when a config has problems and 2 " +
			"when a flag is wrong or the store cannot be read.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" {
				return fail(2, "--format: unknown format %q; use text or json", format)
			}
			now := time.Now()
			var err error
			if q.since, err = backtestTime("since", since, now); err != nil {
				return refuse(err)
			}
			if q.until, err = backtestTime("until", until, now); err != nil {
				return refuse(err)
			}
			if err := (recordings.Filter{Since: q.since, Until: q.until}).Validate(); err != nil {
				return refuse(err)
			}
			baseCfg, base, err := loadBacktestPolicy(cmd, cf.path(cmd))
			if err != nil {
				return err
			}
			_, cand, err := loadBacktestPolicy(cmd, candidate)
			if err != nil {
				return err
			}
			rep, err := runBacktest(cmd.Context(), baseCfg, q, policy.BacktestConfig{Candidate: cand, Baseline: base, Node: q.node, Tool: q.tool})
			if err != nil {
				return refuse(err)
			}
			return writeBacktest(cmd, rep, format)
		},
	}
	cf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&candidate, "candidate", "", "the config whose policy the records are decided again under")
	f.StringVar(&since, "since", "", "from this time (RFC 3339, a date, or a duration ago like 24h or 7d)")
	f.StringVar(&until, "until", "", "before this time (same forms as --since)")
	f.StringVar(&q.graph, "graph", "", "only this graph")
	f.StringVar(&q.node, "node", "", "only this node path")
	f.StringVar(&q.tool, "tool", "", "only this tool (pg:<target> or http:<target> for passthrough)")
	f.StringVar(&format, "format", "text", "text or json")
	_ = cmd.MarkFlagRequired("candidate")
	return cmd
}

// loadBacktestPolicy loads a config and compiles its policy as `check`
// does. Its budget counters refuse every use: a backtest charges nothing.
// Problems exit 1.
func loadBacktestPolicy(cmd *cobra.Command, file string) (*config.Config, *policy.Engine, error) {
	cfg, err := loadConfig(cmd, file, 1)
	if err != nil {
		return nil, nil, err
	}
	st, err := compile(cfg, noBudgets(), zap.NewNop(), upstreamView{})
	if err != nil {
		return nil, nil, printProblems(cmd, 1, file, err)
	}
	return cfg, st.policy, nil
}

// noBudgets are the budget counters a backtest's policies are built with:
// a backtest never charges a budget, and these would refuse if it tried.
func noBudgets() policy.Counters {
	return policy.CountersFunc(func(context.Context, string, int64, time.Duration) (int64, error) {
		return 0, errors.New("a backtest charges no budget")
	})
}

// runBacktest reads the records of cfg's store, read-only, and backtests
// them. Failures to read the store are audit_unavailable refusals.
func runBacktest(ctx context.Context, cfg *config.Config, q backtestQuery, bc policy.BacktestConfig) (*policy.BacktestReport, error) {
	d, err := db.OpenReadOnly(ctx, db.Config{Driver: cfg.Store.Driver, Path: cfg.Store.Path, DSN: cfg.Store.DSN}, zap.NewNop())
	if err != nil {
		return nil, broker.Wrap(broker.CodeAuditUnavailable, err, err.Error())
	}
	defer d.Close()
	rec, err := recordings.NewStore(d, recordingsConfig(cfg), zap.NewNop())
	if err != nil {
		return nil, readError(err)
	}
	defer rec.Close()
	bc.Since = q.since
	f := recordings.Filter{Graph: q.graph, Since: bc.ReadSince(), Until: q.until}
	rep, err := policy.Backtest(ctx, bc, rec.Events(ctx, f))
	return rep, readError(err)
}

func writeBacktest(cmd *cobra.Command, rep *policy.BacktestReport, format string) error {
	w := cmd.OutOrStdout()
	if format == "json" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	return rep.WriteText(w)
}

var daysAgo = regexp.MustCompile(`^([0-9]{1,5})d$`)

// backtestTime parses a --since or --until value: the forms audit export
// takes (RFC 3339, a date, a duration ago) and a number of days ago ("7d").
func backtestTime(flag, val string, now time.Time) (time.Time, error) {
	if val == "" {
		return time.Time{}, nil
	}
	if m := daysAgo.FindStringSubmatch(val); m != nil {
		n, _ := strconv.Atoi(m[1])
		val = (time.Duration(n) * 24 * time.Hour).String()
	}
	q, err := bhttp.ParseAuditQuery(url.Values{"since": {val}}, now)
	if err != nil || q.Since.IsZero() {
		return time.Time{}, &broker.Error{Code: broker.CodeInvalidRequest, Field: flag, Message: fmt.Sprintf(
			"%q is not a time; use RFC 3339 (2026-03-01T12:00:00Z), a date (2026-03-01) or a duration ago (24h, 7d)", val)}
	}
	return q.Since, nil
}

// checkBacktest runs `check --backtest D`: the checked config's policy is
// the candidate and the records' recorded decisions the baseline. It
// prints what would change and returns an error only when it could not run.
func checkBacktest(cmd *cobra.Command, cfg *config.Config, pol *policy.Engine, since string) error {
	t, err := backtestTime("backtest", since, time.Now())
	if err != nil {
		return refuse(err)
	}
	if t.IsZero() {
		return refuse(&broker.Error{Code: broker.CodeInvalidRequest, Field: "backtest", Message: "give a duration ago (7d, 168h) or a date"})
	}
	rep, err := runBacktest(cmd.Context(), cfg, backtestQuery{since: t}, policy.BacktestConfig{Candidate: pol, Baseline: pol})
	if err != nil {
		return refuse(err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "backtest of the records since %s:\n", t.UTC().Format(time.RFC3339))
	return rep.WriteText(cmd.OutOrStdout())
}
