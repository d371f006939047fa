package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/httpapi"
	"github.com/toolgate/toolgate/broker/httpapi/doortest"
)

const metaURL = "http://127.0.0.1:8080/.well-known/oauth-protected-resource"

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func do(t *testing.T, srv *httptest.Server, method, path, token, node, body string, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if node != "" {
		req.Header.Set(broker.HeaderGraph, doortest.Graph)
		req.Header.Set(broker.HeaderNode, node)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: body is not JSON: %q", method, path, raw)
		}
	}
	return r
}

func errCode(r reply) string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func newServer(t *testing.T, opts httpapi.Options) (*doortest.Env, *httptest.Server) {
	t.Helper()
	env := doortest.New(t)
	if opts.ResourceMetadataURL == "" {
		opts.ResourceMetadataURL = metaURL
	}
	srv := httptest.NewServer(httpapi.New(env.Broker, opts))
	t.Cleanup(srv.Close)
	return env, srv
}

func TestCallSucceeds(t *testing.T) {
	env, srv := newServer(t, httpapi.Options{})
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	r := do(t, srv, "POST", "/v1/tools/crm_find_customer:call", doortest.TokenAlpha, "triage", `{"email":"ada@example.com"}`, "traceparent", tp)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	if id, _ := r.body["call_id"].(string); !strings.HasPrefix(id, "call_") {
		t.Errorf("call_id = %q", id)
	}
	res, _ := r.body["result"].(map[string]any)
	if res["row_count"] != float64(1) {
		t.Errorf("result = %v", res)
	}
	if strings.Contains(r.raw, doortest.Card) || !strings.Contains(r.raw, doortest.MaskedCard) {
		t.Errorf("result is not masked: %s", r.raw)
	}
	if env.Exec.Count() != 1 {
		t.Errorf("executions = %d, want 1", env.Exec.Count())
	}
	if got := env.Exec.LastTraceParent(); got != tp {
		t.Errorf("traceparent = %q, want %q", got, tp)
	}
	ev, _ := env.Recorder.Last()
	if ev.Door != "http" || ev.Status != broker.StatusOK || ev.TraceID != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("record = %+v", ev)
	}
}

func TestCallPending(t *testing.T) {
	env, srv := newServer(t, httpapi.Options{})
	r := do(t, srv, "POST", "/v1/tools/billing_refund:call", doortest.TokenAlpha, "refund", `{"order_id":"o-1","amount":250}`)
	if r.status != http.StatusAccepted {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	if r.body["status"] != "approval_pending" || r.body["approval_id"] != "apr_test" || r.body["expires_at"] != "2026-11-30T12:30:00Z" {
		t.Errorf("body = %v", r.body)
	}
	if msg, _ := r.body["message"].(string); !strings.Contains(msg, "NOT performed") {
		t.Errorf("message = %q", msg)
	}
	if env.Exec.Count() != 0 {
		t.Errorf("a pending call ran %d operations", env.Exec.Count())
	}
	if ev, _ := env.Recorder.Last(); ev.Status != broker.StatusPending {
		t.Errorf("record status = %q", ev.Status)
	}
}

func TestListTools(t *testing.T) {
	_, srv := newServer(t, httpapi.Options{})
	for _, tc := range []struct {
		node string
		want []string
	}{
		{"triage", []string{doortest.ToolFindCustomer, doortest.ToolListOrders}},
		{"refund", []string{doortest.ToolRefund, doortest.ToolListOrders}},
	} {
		t.Run(tc.node, func(t *testing.T) {
			r := do(t, srv, "GET", "/v1/tools", doortest.TokenAlpha, tc.node, "")
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			tools, _ := r.body["tools"].([]any)
			var names []string
			for _, x := range tools {
				m := x.(map[string]any)
				names = append(names, m["name"].(string))
				if _, ok := m["input_schema"].(map[string]any); !ok {
					t.Errorf("%s: no input_schema", m["name"])
				}
			}
			if strings.Join(names, ",") != strings.Join(tc.want, ",") {
				t.Errorf("tools = %v, want %v", names, tc.want)
			}
		})
	}
}

// TestRefusals checks every bad-input path: the status, the stable code, and
// that nothing ran.
func TestRefusals(t *testing.T) {
	big := `{"email":"` + strings.Repeat("a", 2048) + `"}`
	for _, tc := range []struct {
		name, method, path, token, node, body string
		status                                int
		code                                  string
		recorded                              bool
	}{
		{"malformed JSON", "POST", "/v1/tools/crm_find_customer:call", doortest.TokenAlpha, "triage", `{"email":`, 400, "invalid_arguments", true},
		{"non-object body", "POST", "/v1/tools/crm_find_customer:call", doortest.TokenAlpha, "triage", `["ada@example.com"]`, 400, "invalid_arguments", true},
		{"wrong argument type", "POST", "/v1/tools/crm_find_customer:call", doortest.TokenAlpha, "triage", `{"email":42}`, 400, "invalid_arguments", true},
		{"body over the cap", "POST", "/v1/tools/crm_find_customer:call", doortest.TokenAlpha, "triage", big, 413, "payload_too_large", false},
		{"unknown tool", "POST", "/v1/tools/crm_drop_everything:call", doortest.TokenAlpha, "triage", `{}`, 404, "unknown_tool", true},
		{"forbidden tool", "POST", "/v1/tools/billing_refund:call", doortest.TokenAlpha, "triage", `{"order_id":"o-1","amount":1}`, 403, "forbidden", true},
		{"missing token", "POST", "/v1/tools/crm_find_customer:call", "", "triage", `{"email":"a@b.c"}`, 401, "unauthenticated", false},
		{"bad token", "POST", "/v1/tools/crm_find_customer:call", "tgk_nope", "triage", `{"email":"a@b.c"}`, 401, "unauthenticated", false},
		{"graph not allowed", "POST", "/v1/tools/crm_find_customer:call", doortest.TokenBeta, "triage", `{"email":"a@b.c"}`, 403, "forbidden", false},
		{"list without token", "GET", "/v1/tools", "", "", "", 401, "unauthenticated", false},
		{"list without graph and node", "GET", "/v1/tools", doortest.TokenAlpha, "", "", 400, "unidentified", false},
		{"list for an unknown node", "GET", "/v1/tools", doortest.TokenAlpha, "nobody", "", 404, "unknown_node", false},
		{"call without graph and node", "POST", "/v1/tools/crm_find_customer:call", doortest.TokenAlpha, "", `{"email":"a@b.c"}`, 400, "unidentified", true},
		{"call from an unknown node", "POST", "/v1/tools/crm_find_customer:call", doortest.TokenAlpha, "nobody", `{"email":"a@b.c"}`, 404, "unknown_node", true},
		{"no :call suffix", "POST", "/v1/tools/crm_find_customer", doortest.TokenAlpha, "triage", `{}`, 404, "not_found", false},
		{"other verb", "POST", "/v1/tools/crm_find_customer:run", doortest.TokenAlpha, "triage", `{}`, 404, "not_found", false},
		{"unknown path", "GET", "/v1/nothing", doortest.TokenAlpha, "", "", 404, "not_found", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, srv := newServer(t, httpapi.Options{MaxBodyBytes: 1024})
			r := do(t, srv, tc.method, tc.path, tc.token, tc.node, tc.body)
			if r.status != tc.status || errCode(r) != tc.code {
				t.Fatalf("got %d %q, want %d %q: %s", r.status, errCode(r), tc.status, tc.code, r.raw)
			}
			if msg, _ := r.body["error"].(map[string]any)["message"].(string); msg == "" {
				t.Errorf("no message: %s", r.raw)
			}
			if env.Exec.Count() != 0 {
				t.Errorf("a refused call ran %d operations", env.Exec.Count())
			}
			recorded := len(env.Recorder.Events()) > 0
			if recorded != tc.recorded {
				t.Errorf("recorded = %v, want %v", recorded, tc.recorded)
			}
			if tc.recorded {
				if ev, _ := env.Recorder.Last(); ev.ErrorCode != tc.code || ev.Status == broker.StatusOK {
					t.Errorf("record = %+v", ev)
				}
			}
			if strings.Contains(r.raw, doortest.TokenAlpha) {
				t.Errorf("response leaks the token")
			}
		})
	}
}

func TestUnauthenticatedChallenge(t *testing.T) {
	_, srv := newServer(t, httpapi.Options{})
	for _, tc := range []struct {
		name, auth, want string
	}{
		{"no token", "", `Bearer resource_metadata="` + metaURL + `"`},
		{"bad token", "Bearer tgk_nope", `Bearer resource_metadata="` + metaURL + `", error="invalid_token"`},
		{"not bearer", "Basic dXNlcjpwYXNz", `Bearer resource_metadata="` + metaURL + `", error="invalid_request"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+"/v1/tools", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tc.want {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWrongMethod(t *testing.T) {
	env, srv := newServer(t, httpapi.Options{})
	for _, tc := range []struct{ method, path, allow string }{
		{"GET", "/v1/tools/crm_find_customer:call", "POST"},
		{"PUT", "/v1/tools/crm_find_customer:call", "POST"},
		{"POST", "/v1/tools", "GET, HEAD"},
		{"DELETE", "/v1/tools", "GET, HEAD"},
	} {
		r := do(t, srv, tc.method, tc.path, doortest.TokenAlpha, "triage", "")
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow=%q, want 405 Allow=%q", tc.method, tc.path, r.status, r.header.Get("Allow"), tc.allow)
		}
		if errCode(r) == "" {
			t.Errorf("%s %s: no error code: %s", tc.method, tc.path, r.raw)
		}
	}
	if env.Exec.Count() != 0 || len(env.Recorder.Events()) != 0 {
		t.Errorf("wrong methods ran or recorded something")
	}
}

// panicky is a pipeline whose Call panics.
type panicky struct{ broker.Pipeline }

func (panicky) Call(context.Context, broker.Call) (broker.Result, error) {
	panic("boom: secret-value-in-panic")
}

func TestPanicBecomesIncident(t *testing.T) {
	env := doortest.New(t)
	srv := httptest.NewServer(httpapi.New(panicky{env.Broker}, httpapi.Options{}))
	defer srv.Close()
	r := do(t, srv, "POST", "/v1/tools/crm_find_customer:call", doortest.TokenAlpha, "triage", `{"email":"a@b.c"}`)
	if r.status != 500 || errCode(r) != "internal" {
		t.Fatalf("got %d %s", r.status, r.raw)
	}
	if !strings.Contains(r.raw, "incident ") || strings.Contains(r.raw, "boom") || strings.Contains(r.raw, "goroutine") {
		t.Errorf("body = %s", r.raw)
	}
}

// TestServiceFailureIsOneIncident: a failure of a service the door serves
// beside the pipeline (here the grant store) goes through the broker's
// Report: the client sees an incident id, the broker's log has one line
// with it, and the door logs nothing.
func TestServiceFailureIsOneIncident(t *testing.T) {
	brokerLog, brokerLines := observer.New(zap.DebugLevel)
	doorLog, doorLines := observer.New(zap.DebugLevel)
	env := doortest.NewWith(t, func(c *broker.Config) { c.Logger = zap.New(brokerLog) })
	h := httpapi.NewGrants(env.Broker, &failingGrants{}, httpapi.Options{ResourceMetadataURL: metaURL, Logger: zap.New(doorLog)})
	_, m, raw := doGrants(t, h, "GET", "/v1/grants/gr_1", doortest.TokenAlpha, "")
	e, _ := m["error"].(map[string]any)
	msg, _ := e["message"].(string)
	if e["code"] != "internal" || strings.Contains(raw, "hunter2") || !strings.Contains(msg, "incident ") {
		t.Fatalf("answer = %s", raw)
	}
	if brokerLines.Len() != 1 || doorLines.Len() != 0 {
		t.Fatalf("broker log %v, door log %v; want one line, in the broker", brokerLines.All(), doorLines.All())
	}
	if id, _ := brokerLines.All()[0].ContextMap()["incident"].(string); id == "" || !strings.Contains(msg, id) {
		t.Errorf("logged incident %q, client saw %q", id, msg)
	}
}

// failingGrants is a grant service whose store is down.
type failingGrants struct{ fakeGrants }

func (*failingGrants) Grant(context.Context, broker.Principal, string) (httpapi.GrantInfo, error) {
	return httpapi.GrantInfo{}, errors.New("dial tcp 10.0.0.1: password=hunter2")
}

func TestHealthAndReady(t *testing.T) {
	for _, tc := range []struct {
		name   string
		h      http.Handler
		status int
		want   string
	}{
		{"healthz", httpapi.Health(), 200, `"ok"`},
		{"ready", httpapi.Ready(func(context.Context) error { return nil }), 200, `"ready"`},
		{"not ready", httpapi.Ready(func(context.Context) error {
			return broker.Errorf(broker.CodeAuditUnavailable, "the audit store is unreachable")
		}), 503, "the audit store is unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			tc.h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) {
				t.Errorf("%d %s", w.Code, w.Body.String())
			}
		})
	}
}

// TestIdentityErrorsNameTheHeader: the easiest LangGraph client mistake,
// a key without the X-Toolgate-* headers, gets an answer naming what is
// missing or unknown, on the listing and on a call.
func TestIdentityErrorsNameTheHeader(t *testing.T) {
	_, srv := newServer(t, httpapi.Options{})
	for _, tc := range []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		code, field, inMessage   string
	}{
		{"graph only", "GET", "/v1/tools", "", []string{broker.HeaderGraph, doortest.Graph}, 400, "unidentified", broker.HeaderNode, broker.HeaderNode},
		{"node only", "POST", "/v1/tools/crm_find_customer:call", `{"email":"a@b.c"}`, []string{broker.HeaderNode, "triage"}, 400, "unidentified", broker.HeaderGraph, broker.HeaderGraph},
		{"unknown graph", "GET", "/v1/tools", "", []string{broker.HeaderGraph, "supprt-bot", broker.HeaderNode, "triage"}, 404, "unknown_graph", broker.HeaderGraph, `"supprt-bot"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, srv, tc.method, tc.path, doortest.TokenAlpha, "", tc.body, tc.hdr...)
			e, _ := r.body["error"].(map[string]any)
			if r.status != tc.status || e["code"] != tc.code || e["field"] != tc.field {
				t.Fatalf("got %d %v, want %d %s naming %s: %s", r.status, e["code"], tc.status, tc.code, tc.field, r.raw)
			}
			if msg, _ := e["message"].(string); !strings.Contains(msg, tc.inMessage) {
				t.Errorf("message %q does not name %s", msg, tc.inMessage)
			}
		})
	}
}
