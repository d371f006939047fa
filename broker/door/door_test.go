package door_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/door"
)

func TestCredentials(t *testing.T) {
	for _, c := range []struct {
		name      string
		auth      []string
		token     string
		malformed bool
	}{
		{"none", nil, "", false},
		{"bearer", []string{"Bearer tgk_x"}, "tgk_x", false},
		{"scheme any case", []string{"bEaReR   tgk_x "}, "tgk_x", false},
		{"two headers", []string{"Bearer a", "Bearer b"}, "", true},
		{"basic", []string{"Basic dTpw"}, "", true},
		{"no token", []string{"Bearer "}, "", true},
		{"space inside", []string{"Bearer a b"}, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			for _, v := range c.auth {
				r.Header.Add("Authorization", v)
			}
			r.Header.Set(broker.HeaderNode, " /supervisor/research/ ")
			r.Header.Set(broker.HeaderGraph, " g ")
			cr := door.Credentials(r)
			if cr.Token != c.token || cr.Malformed != c.malformed {
				t.Errorf("token %q malformed %v, want %q %v", cr.Token, cr.Malformed, c.token, c.malformed)
			}
			if cr.Claimed.Node != "supervisor/research" || cr.Claimed.Graph != "g" {
				t.Errorf("claimed = %+v", cr.Claimed)
			}
		})
	}
}

func TestWriteError(t *testing.T) {
	w := httptest.NewRecorder()
	door.WriteError(w, broker.Wrap(broker.CodeUnauthenticated, errors.New("password=hunter2"), "a bearer token is required"), "https://tg/.well-known/oauth-protected-resource")
	if w.Code != 401 || !strings.Contains(w.Header().Get("WWW-Authenticate"), `resource_metadata="https://tg/`) || strings.Contains(w.Body.String(), "hunter2") {
		t.Errorf("%d %q %s", w.Code, w.Header().Get("WWW-Authenticate"), w.Body.String())
	}
	for code, status := range map[broker.Code]int{
		broker.CodeForbidden: 403, broker.CodeApprovalPending: 202, broker.CodeApprovalStale: 409,
		broker.CodeBudgetExceeded: 429, broker.CodeTargetError: 502, broker.CodeAuditUnavailable: 503,
		broker.CodeTimeout: 504, broker.CodeInternal: 500, broker.Code("new_code"): 500,
		broker.CodePreviewUnavailable: 422, broker.CodeToolDefinitionChanged: 409,
	} {
		if got := door.Status(code); got != status {
			t.Errorf("Status(%s) = %d, want %d", code, got, status)
		}
	}
}

// reporter counts what it is given, as the broker would log it.
type reporter struct{ got []error }

func (r *reporter) Report(err error) *broker.Error {
	r.got = append(r.got, err)
	e, _ := broker.AsError(err)
	return e
}

func TestRecover(t *testing.T) {
	rep := &reporter{}
	h := door.Recover(rep, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom: secret-value") }))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/v1/x", nil))
	if w.Code != 500 || !strings.Contains(w.Body.String(), "incident ") || strings.Contains(w.Body.String(), "secret") {
		t.Errorf("%d %s", w.Code, w.Body.String())
	}
	if len(rep.got) != 1 || !strings.Contains(rep.got[0].Error(), "boom") || !strings.Contains(rep.got[0].Error(), "goroutine") {
		t.Errorf("reported %v; want the panic and its stack, once", rep.got)
	}
}

// TestTraceContext: the caller's W3C trace context is continued from the
// headers, MCP _meta wins over them, and an invalid one is ignored.
func TestTraceContext(t *testing.T) {
	const header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	const meta = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	h := http.Header{}
	h.Set("traceparent", header)
	h.Set("tracestate", "congo=t61rcWkgMzE")
	ctx := door.TraceContext(context.Background(), h)
	sc := trace.SpanContextFromContext(ctx)
	if sc.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || !sc.IsRemote() || sc.TraceState().String() != "congo=t61rcWkgMzE" {
		t.Errorf("from headers: %v", sc)
	}
	mctx := door.MetaTraceContext(ctx, map[string]any{"traceparent": meta})
	if got := trace.SpanContextFromContext(mctx).SpanID().String(); got != "00f067aa0ba902b7" {
		t.Errorf("_meta did not win over the header: span %s", got)
	}
	for _, bad := range []map[string]any{{"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}, {"traceparent": 42}, {}} {
		if got := door.MetaTraceContext(ctx, bad); trace.SpanContextFromContext(got).SpanID().String() != "b7ad6b7169203331" {
			t.Errorf("_meta %v replaced the header's context", bad)
		}
	}
	if sc := trace.SpanContextFromContext(door.TraceContext(context.Background(), http.Header{"Traceparent": {"junk"}})); sc.IsValid() {
		t.Errorf("an invalid traceparent was continued: %v", sc)
	}
}
