package metrics

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/brokertest"
)

func scrape(t *testing.T, r *Recorder) string {
	t.Helper()
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestRecorderCounts(t *testing.T) {
	store := &brokertest.Recorder{}
	r := NewRecorder(store)
	ctx := context.Background()
	for _, ev := range []broker.Event{
		{Kind: broker.EventToolCall, Door: "mcp", Tool: "crm_find_customer", Decision: "allow", Status: broker.StatusOK, DurationMS: 3, Principal: "key:secret-bot", Run: "r-1"},
		{Kind: broker.EventToolCall, Door: "http", Tool: "billing_refund", Decision: "deny", Status: broker.StatusDenied, DurationMS: 1},
		{Kind: broker.EventGrantMinted},
	} {
		if err := r.Record(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if store.Len() != 3 {
		t.Fatalf("wrapped store saw %d events", store.Len())
	}
	out := scrape(t, r)
	for _, want := range []string{
		`toolgate_tool_calls_total{decision="allow",door="mcp",status="ok",tool="crm_find_customer"} 1`,
		`toolgate_tool_calls_total{decision="deny",door="http",status="denied",tool="billing_refund"} 1`,
		`toolgate_audit_events_total{kind="grant_minted"} 1`,
		`toolgate_tool_call_duration_seconds_count{door="mcp",status="ok",tool="crm_find_customer"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Principals and runs are never labels.
	if strings.Contains(out, "secret-bot") || strings.Contains(out, "r-1") {
		t.Error("metrics carry a principal or a run id")
	}
}

func TestRecorderFailureIsReturnedAndCounted(t *testing.T) {
	store := &brokertest.Recorder{}
	store.SetFail(true)
	r := NewRecorder(store)
	err := r.Record(context.Background(), broker.Event{Kind: broker.EventToolCall, Tool: "t"})
	if err == nil || !errors.Is(err, brokertest.ErrRecordFailed) {
		t.Fatalf("err = %v, want the store's error", err)
	}
	out := scrape(t, r)
	if !strings.Contains(out, "toolgate_audit_failures_total 1") || strings.Contains(out, `tool="t"`) {
		t.Errorf("a failed record must count as a failure, not a call:\n%s", out)
	}
}
