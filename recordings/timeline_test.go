package recordings_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/recordings"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func timelineRun() []broker.Event {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	return []broker.Event{
		{ID: "1", Time: at(0), Kind: broker.EventGrantMinted, Principal: "key:support-bot", Graph: "support-bot", Run: "run-42", Status: broker.StatusOK},
		{ID: "2", Time: at(120), Kind: broker.EventToolCall, Graph: "support-bot", Node: "triage", Run: "run-42", Tool: "crm_find_customer",
			Args: json.RawMessage(`{"email":"a***@example.com"}`), Decision: "allow", Rule: "nodes.triage.allow[0]", Status: broker.StatusOK, Rows: 1, DurationMS: 3.25},
		{ID: "3", Time: at(450), Kind: broker.EventToolCall, Graph: "support-bot", Node: "refund", Run: "run-42", Tool: "billing_refund",
			Decision: "approve", Rule: "nodes.refund.rules[0]", ApprovalID: "apr_7", Status: broker.StatusPending, ErrorCode: "approval_pending", DurationMS: 20001},
		{ID: "4", Time: at(9000), Kind: broker.EventApprovalDecided, Graph: "support-bot", Node: "refund", Run: "run-42", Tool: "billing_refund",
			ApprovalID: "apr_7", Decision: "approved", Principal: "user:fin@example.com", Status: broker.StatusOK},
		{ID: "5", Time: at(9100), Kind: broker.EventToolCall, Graph: "support-bot", Node: "refund", Run: "run-42", Tool: "billing_refund",
			Decision: "approve", Rule: "nodes.refund.rules[0]", ApprovalID: "apr_7", Status: broker.StatusOK, DurationMS: 88.5},
		{ID: "6", Time: at(9500), Kind: broker.EventStatement, Graph: "support-bot", Node: "triage", Run: "run-42", Target: "crm",
			Detail: map[string]any{"statement": "SELECT id, name\n  FROM customers\n WHERE id = $1"}, Decision: "allow", Rule: "nodes.triage.passthrough.crm", Status: broker.StatusOK, DurationMS: 1.5},
		// Its outcome rides on the next statement's record.
		{ID: "7", Time: at(9700), Kind: broker.EventStatement, Graph: "support-bot", Node: "triage", Run: "run-42", Target: "crm",
			Detail: map[string]any{"statement": "DELETE FROM customers", "done": []map[string]any{{"statement_id": "6", "status": "ok", "rows": 2, "exec_ms": 0.75}}}, Decision: "deny", Rule: "nodes.triage.passthrough.crm.statements", Status: broker.StatusDenied, ErrorCode: "forbidden"},
	}
}

func TestWriteTimelineGolden(t *testing.T) {
	// Through the store, so the golden also proves Trace round-trips.
	d, _ := openSQLite(t)
	s := newStore(t, d, recordings.Config{Instance: "a"})
	evs := timelineRun()
	// Recorded out of order: the trace sorts by time.
	record(t, s, evs[3], evs[0], evs[1], evs[2], evs[4], evs[6], evs[5])
	record(t, s, broker.Event{ID: "other", Kind: broker.EventToolCall, Run: "run-43", Time: evs[0].Time})
	got, err := s.Trace(context.Background(), "run-42")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := recordings.WriteTimeline(&buf, got); err != nil {
		t.Fatal(err)
	}
	golden(t, "timeline.golden", buf.Bytes())

	buf.Reset()
	recordings.WriteTimeline(&buf, nil)
	if buf.String() != "no events\n" {
		t.Fatalf("empty timeline = %q", buf.String())
	}
}
