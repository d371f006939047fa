package recordings_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/recordings"
)

var (
	auditor  = broker.Principal{Subject: "user:sam@example.com", Groups: []string{"security"}}
	stranger = broker.Principal{Subject: "key:support-bot"}
)

// TestReaderRefusesNonAuditors: every read of a Reader answers forbidden
// to a principal outside auth.auditors and reads nothing; auditors match
// by name, group or email in normal form.
func TestReaderRefusesNonAuditors(t *testing.T) {
	d, _ := openSQLite(t)
	s := newStore(t, d, recordings.Config{Instance: "a"})
	record(t, s, events(0, 3)...)
	r := mustReader(t, recordings.ReaderConfig{Store: s, Auditors: recordings.Auditors{"group:security", "user:Ana@Example.com"}})
	ctx := context.Background()

	var buf bytes.Buffer
	_, exportErr := r.Export(ctx, stranger, recordings.Filter{}, recordings.FormatJSONL, &buf)
	_, traceErr := r.Trace(ctx, stranger, "run-0")
	_, runsErr := r.Runs(ctx, stranger, recordings.RunFilter{})
	_, verifyErr := r.VerifyRun(ctx, stranger, "run-0")
	for name, err := range map[string]error{"export": exportErr, "trace": traceErr, "runs": runsErr, "verify": verifyErr} {
		if broker.CodeOf(err) != broker.CodeForbidden || !strings.Contains(err.Error(), "auth.auditors") {
			t.Errorf("%s by a non-auditor: %v, want forbidden naming auth.auditors", name, err)
		}
	}
	if buf.Len() != 0 {
		t.Errorf("a refused export wrote %q", buf.String())
	}
	for _, p := range []broker.Principal{auditor, {Subject: "user:sub-1", Email: "ana@example.com"}} {
		if err := r.Auditor(p); err != nil {
			t.Errorf("%s: %v", p.Subject, err)
		}
		if evs, err := r.Trace(ctx, p, "run-0"); err != nil || len(evs) != 1 {
			t.Errorf("%s trace: %d events, %v", p.Subject, len(evs), err)
		}
	}
}

func TestRunsSQLite(t *testing.T)   { runsSuite(t, openSQLite) }
func TestRunsPostgres(t *testing.T) { runsSuite(t, openPostgres) }

// runsSuite: runs are summarised per graph and run, newest activity first,
// and filtered by graph and time.
func runsSuite(t *testing.T, open opener) {
	d, _ := open(t)
	s := newStore(t, d, recordings.Config{Instance: "a"})
	evs := events(0, 6) // runs run-0, run-1, run-2, two events each
	evs[4].Status, evs[4].ErrorCode = broker.StatusError, "target_error"
	evs[5].Status = broker.StatusDenied
	other := event(6)
	other.Graph, other.Run = "other-bot", "run-x"
	unnamed := event(7)
	unnamed.Run = ""
	record(t, s, append(evs, other, unnamed)...)
	ctx := context.Background()

	runs, err := s.Runs(ctx, recordings.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range runs {
		got = append(got, r.Graph+"/"+r.Run)
	}
	if want := []string{"other-bot/run-x", "support-bot/run-2", "support-bot/run-1", "support-bot/run-0"}; !slices.Equal(got, want) {
		t.Fatalf("runs = %v, want %v", got, want)
	}
	r1 := runs[2]
	if r1.Events != 2 || r1.Errors != 1 || r1.Denied != 0 || !r1.First.Equal(evs[1].Time) || !r1.Last.Equal(evs[4].Time) {
		t.Errorf("run-1 = %+v", r1)
	}
	if r2 := runs[1]; r2.Errors != 0 || r2.Denied != 1 {
		t.Errorf("run-2 = %+v", r2)
	}
	byGraph, err := s.Runs(ctx, recordings.RunFilter{Graph: "other-bot"})
	if err != nil || len(byGraph) != 1 || byGraph[0].Run != "run-x" {
		t.Errorf("graph filter: %+v, %v", byGraph, err)
	}
	recent, err := s.Runs(ctx, recordings.RunFilter{Since: evs[5].Time, Limit: 10})
	if err != nil || len(recent) != 2 {
		t.Errorf("since filter: %+v, %v", recent, err)
	}
	if limited, err := s.Runs(ctx, recordings.RunFilter{Limit: 1}); err != nil || len(limited) != 1 {
		t.Errorf("limit: %+v, %v", limited, err)
	}
}

// TestVerifyRun: the run's chains are verified, a break in one of them is
// reported, a break in another chain is not this run's, and the report is
// reused until VerifyEvery passes.
func TestVerifyRun(t *testing.T) {
	d, cfg := openSQLite(t)
	a := newStore(t, d, recordings.Config{Instance: "a"})
	b := newStore(t, mustOpen(t, cfg), recordings.Config{Instance: "b"})
	record(t, a, events(0, 3)...) // run-0, run-1, run-2 on chain a
	ev := event(3)
	ev.Run = "run-b"
	record(t, b, ev)
	now := time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC)
	r := mustReader(t, recordings.ReaderConfig{Store: a, Auditors: recordings.Auditors{"group:security"}, Now: func() time.Time { return now }})
	ctx := context.Background()

	check, err := r.VerifyRun(ctx, auditor, "run-1")
	if err != nil || !slices.Equal(check.Chains, []string{"a"}) || len(check.Problems) != 0 || !check.Checked.Equal(now) {
		t.Fatalf("intact: %+v, %v", check, err)
	}
	execSQL(t, d, "UPDATE audit_events SET event = replace(event, 'billing_refund', 'billing_refunds') WHERE chain = 'b'")
	if check, err = r.VerifyRun(ctx, auditor, "run-b"); err != nil || len(check.Problems) != 0 {
		t.Fatalf("within VerifyEvery the earlier report is reused: %+v, %v", check, err)
	}
	now = now.Add(2 * time.Minute)
	if check, err = r.VerifyRun(ctx, auditor, "run-b"); err != nil || len(check.Problems) != 1 || check.Problems[0].Chain != "b" || !check.Checked.Equal(now) {
		t.Fatalf("broken chain b: %+v, %v", check, err)
	}
	if check, err = r.VerifyRun(ctx, auditor, "run-1"); err != nil || len(check.Problems) != 0 {
		t.Fatalf("run-1 is on intact chain a: %+v, %v", check, err)
	}
}

func mustReader(t *testing.T, cfg recordings.ReaderConfig) *recordings.Reader {
	t.Helper()
	r, err := recordings.NewReader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReaderConfig(t *testing.T) {
	if _, err := recordings.NewReader(recordings.ReaderConfig{}); err == nil {
		t.Error("a reader without a store")
	}
}
