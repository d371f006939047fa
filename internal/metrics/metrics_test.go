package metrics

import (
	"context"
	"errors"
	"fmt"
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
	r.Handler("").ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestRecorderCounts(t *testing.T) {
	store := &brokertest.Recorder{}
	r := NewRecorder(store)
	r.SetLabels(Labels{Tools: []string{"crm_find_customer", "billing_refund"}})
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

// TestLabelsOnlyFromConfiguration: a caller-chosen tool name (a card number
// typed as a tool, thousands of made-up names) adds no series of its own:
// every unknown tool, door, decision, status or kind is folded into
// "_unknown". Passthrough pseudo-tools of configured targets keep their
// names; a reload's SetLabels changes the known set.
func TestLabelsOnlyFromConfiguration(t *testing.T) {
	r := NewRecorder(&brokertest.Recorder{})
	r.SetLabels(Labels{Tools: []string{"crm_find_customer"}, Targets: []string{"crm"}})
	ctx := context.Background()
	for i := range 1000 {
		_ = r.Record(ctx, broker.Event{Kind: broker.EventToolCall, Door: "http", Tool: fmt.Sprintf("4242424242424242-%d", i), Decision: "", Status: broker.StatusDenied})
	}
	for _, ev := range []broker.Event{
		{Kind: broker.EventToolCall, Door: "<script>", Tool: "crm_find_customer", Decision: "maybe", Status: "weird"},
		{Kind: broker.EventStatement, Door: "pgwire", Tool: "pg:crm", Decision: "allow", Status: broker.StatusOK},
		{Kind: broker.EventStatement, Door: "httpproxy", Tool: "http:elsewhere", Decision: "allow", Status: broker.StatusOK},
		{Kind: "made_up_kind"},
	} {
		_ = r.Record(ctx, ev)
	}
	out := scrape(t, r)
	for _, bad := range []string{"4242", "<script>", "maybe", "weird", "made_up_kind", "elsewhere"} {
		if strings.Contains(out, bad) {
			t.Errorf("metrics carry caller-chosen text %q", bad)
		}
	}
	for _, want := range []string{
		`toolgate_tool_calls_total{decision="",door="http",status="denied",tool="_unknown"} 1000`,
		`toolgate_tool_calls_total{decision="_unknown",door="_unknown",status="_unknown",tool="crm_find_customer"} 1`,
		`toolgate_tool_calls_total{decision="allow",door="pgwire",status="ok",tool="pg:crm"} 1`,
		`toolgate_tool_calls_total{decision="allow",door="httpproxy",status="ok",tool="_unknown"} 1`,
		`toolgate_audit_events_total{kind="_unknown"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	r.SetLabels(Labels{Tools: []string{"crm_new_tool"}})
	_ = r.Record(ctx, broker.Event{Kind: broker.EventToolCall, Door: "mcp", Tool: "crm_new_tool", Status: broker.StatusOK})
	if !strings.Contains(scrape(t, r), `tool="crm_new_tool"`) {
		t.Error("a tool added by a reload is not labelled")
	}
}

// TestMetricsToken: with metrics.token set, /metrics answers 401 without
// the token (or with another), and the metrics with it.
func TestMetricsToken(t *testing.T) {
	r := NewRecorder(&brokertest.Recorder{})
	h := r.Handler("metrics-token-0123456789")
	for name, auth := range map[string]string{"none": "", "wrong": "Bearer metrics-token-x", "basic": "Basic bWV0cmljcw==", "right": "Bearer metrics-token-0123456789"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		h.ServeHTTP(rec, req)
		want := 401
		if name == "right" {
			want = 200
		}
		if rec.Code != want || (want == 401 && strings.Contains(rec.Body.String(), "toolgate_")) {
			t.Errorf("%s: %d %s", name, rec.Code, rec.Body.String())
		}
	}
}
