package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/httpapi"
	"github.com/toolgate/toolgate/broker/httpapi/doortest"
)

const fakeToken = "tg_faketoken_do_not_echo_0123456789"

// fakeGrants is a GrantService over a map: only key:alpha may mint, for
// graph support-bot; it remembers every request so refusals can prove it
// was never asked.
type fakeGrants struct {
	mu      sync.Mutex
	calls   []string
	lastTTL time.Duration
	revoked map[string]bool
}

func (f *fakeGrants) called(what string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, what)
}

func (f *fakeGrants) MintGrant(_ context.Context, p broker.Principal, req httpapi.GrantRequest) (httpapi.MintedGrant, error) {
	f.called("mint")
	f.mu.Lock()
	f.lastTTL = req.TTL
	f.mu.Unlock()
	if p.Subject != "key:alpha" || req.Graph != doortest.Graph {
		return httpapi.MintedGrant{}, broker.Errorf(broker.CodeForbidden, "principal %s is not a principal of graph %q", p.Subject, req.Graph)
	}
	if _, ok := req.Scope["customer_id"].(float64); req.Scope != nil && !ok {
		return httpapi.MintedGrant{}, &broker.Error{Code: broker.CodeInvalidArguments, Field: "scope.customer_id", Message: "scope.customer_id must be an integer"}
	}
	tokens := map[string]string{}
	for _, n := range req.Nodes {
		tokens[n] = fakeToken + "_" + n
	}
	return httpapi.MintedGrant{GrantID: "gr_1", ExpiresAt: time.Date(2026, 11, 30, 12, 15, 0, 0, time.UTC), Tokens: tokens}, nil
}

func (f *fakeGrants) Grant(_ context.Context, p broker.Principal, id string) (httpapi.GrantInfo, error) {
	f.called("get")
	if id != "gr_1" || p.Subject != "key:alpha" {
		return httpapi.GrantInfo{}, broker.Errorf(broker.CodeNotFound, "grant %q was not found", id)
	}
	return httpapi.GrantInfo{ID: "gr_1", Graph: doortest.Graph, Run: "r1", Nodes: []string{"triage"}, Scope: map[string]any{}, Status: "active"}, nil
}

func (f *fakeGrants) RevokeGrant(ctx context.Context, p broker.Principal, id string) error {
	f.called("revoke")
	_, err := f.Grant(ctx, p, id)
	return err
}

type listingGrants struct{ *fakeGrants }

func (l listingGrants) Grants(_ context.Context, p broker.Principal, graph, run string) ([]httpapi.GrantInfo, error) {
	l.called("list " + graph + " " + run)
	if graph != doortest.Graph || p.Subject != "key:alpha" {
		return nil, broker.Errorf(broker.CodeForbidden, "principal %s may not list grants of graph %q", p.Subject, graph)
	}
	return nil, nil
}

func doGrants(t *testing.T, h http.Handler, method, path, token, body string) (*http.Response, map[string]any, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rw := httptest.NewRecorder()
	h.ServeHTTP(rw, req)
	resp := rw.Result()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s %s: answer is not JSON (%d): %s", method, path, resp.StatusCode, b)
		}
	}
	return resp, m, string(b)
}

func TestGrantsAPI(t *testing.T) {
	env := doortest.New(t)
	core, logs := observer.New(zap.DebugLevel)
	const good = `{"graph":"support-bot","run_id":"r1","nodes":["triage","refund"],"ttl":"15m","scope":{"customer_id":42}}`
	for _, c := range []struct {
		name, method, path, token, body string
		status                          int
		code, field                     string
		svcCalls                        []string
		ttl                             time.Duration
	}{
		{"mint", "POST", "/v1/grants", doortest.TokenAlpha, good, 201, "", "", []string{"mint"}, 15 * time.Minute},
		{"ttl in seconds", "POST", "/v1/grants", doortest.TokenAlpha, `{"graph":"support-bot","run_id":"r1","nodes":["triage"],"ttl":90}`, 201, "", "", []string{"mint"}, 90 * time.Second},
		{"ttl seconds as string", "POST", "/v1/grants", doortest.TokenAlpha, `{"graph":"support-bot","run_id":"r1","nodes":["triage"],"ttl":"1"}`, 201, "", "", []string{"mint"}, time.Second},
		{"ttl defaults to 15m", "POST", "/v1/grants", doortest.TokenAlpha, `{"graph":"support-bot","run_id":"r1","nodes":["triage"]}`, 201, "", "", []string{"mint"}, 15 * time.Minute},
		{"negative ttl", "POST", "/v1/grants", doortest.TokenAlpha, `{"graph":"support-bot","run_id":"r1","nodes":["triage"],"ttl":"-1m"}`, 400, "invalid_arguments", "ttl", nil, 0},
		{"zero ttl", "POST", "/v1/grants", doortest.TokenAlpha, `{"graph":"support-bot","run_id":"r1","nodes":["triage"],"ttl":0}`, 400, "invalid_arguments", "ttl", nil, 0},
		{"word ttl", "POST", "/v1/grants", doortest.TokenAlpha, `{"graph":"support-bot","run_id":"r1","nodes":["triage"],"ttl":"soon"}`, 400, "invalid_arguments", "ttl", nil, 0},
		{"unknown field", "POST", "/v1/grants", doortest.TokenAlpha, `{"graph":"support-bot","run":"r1"}`, 400, "invalid_request", "", nil, 0},
		{"wrong type", "POST", "/v1/grants", doortest.TokenAlpha, `{"graph":"support-bot","nodes":"triage"}`, 400, "invalid_request", "", nil, 0},
		{"malformed", "POST", "/v1/grants", doortest.TokenAlpha, `{"graph":`, 400, "invalid_request", "", nil, 0},
		{"oversized", "POST", "/v1/grants", doortest.TokenAlpha, `{"graph":"` + strings.Repeat("x", 70<<10) + `"}`, 413, "payload_too_large", "", nil, 0},
		{"no token", "POST", "/v1/grants", "", good, 401, "unauthenticated", "", nil, 0},
		{"bad token", "POST", "/v1/grants", "tgk_nope", good, 401, "unauthenticated", "", nil, 0},
		{"not a principal", "POST", "/v1/grants", doortest.TokenBeta, good, 403, "forbidden", "", []string{"mint"}, 15 * time.Minute},
		{"scope refused", "POST", "/v1/grants", doortest.TokenAlpha, `{"graph":"support-bot","run_id":"r1","nodes":["triage"],"scope":{"customer_id":"x"}}`, 400, "invalid_arguments", "scope.customer_id", []string{"mint"}, 15 * time.Minute},
		{"get", "GET", "/v1/grants/gr_1", doortest.TokenAlpha, "", 200, "", "", []string{"get"}, 0},
		{"get unknown", "GET", "/v1/grants/gr_2", doortest.TokenAlpha, "", 404, "not_found", "", []string{"get"}, 0},
		{"get of another", "GET", "/v1/grants/gr_1", doortest.TokenBeta, "", 404, "not_found", "", []string{"get"}, 0},
		{"revoke", "DELETE", "/v1/grants/gr_1", doortest.TokenAlpha, "", 204, "", "", []string{"revoke", "get"}, 0},
		{"revoke unauthenticated", "DELETE", "/v1/grants/gr_1", "", "", 401, "unauthenticated", "", nil, 0},
		{"wrong method", "PUT", "/v1/grants/gr_1", doortest.TokenAlpha, "", 405, "invalid_request", "", nil, 0},
		{"no such endpoint", "GET", "/v1/grants/gr_1/tokens", doortest.TokenAlpha, "", 404, "not_found", "", nil, 0},
		{"list without a lister", "GET", "/v1/grants?graph=support-bot", doortest.TokenAlpha, "", 404, "not_found", "", nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			svc := &fakeGrants{}
			h := httpapi.NewGrants(env.Broker, svc, httpapi.Options{ResourceMetadataURL: metaURL, Logger: zap.New(core)})
			resp, m, raw := doGrants(t, h, c.method, c.path, c.token, c.body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, raw)
			}
			if c.code != "" {
				e, _ := m["error"].(map[string]any)
				if e["code"] != c.code || (c.field != "" && e["field"] != c.field) {
					t.Errorf("error = %v, want %s %s", e, c.code, c.field)
				}
			}
			if strings.Join(svc.calls, ",") != strings.Join(c.svcCalls, ",") {
				t.Errorf("service calls = %v, want %v", svc.calls, c.svcCalls)
			}
			if c.ttl != 0 && svc.lastTTL != c.ttl {
				t.Errorf("ttl = %v, want %v", svc.lastTTL, c.ttl)
			}
			if c.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Bearer resource_metadata="`+metaURL+`"`) {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
			if c.status == 201 {
				tokens, _ := m["tokens"].(map[string]any)
				if m["grant_id"] != "gr_1" || m["expires_at"] != "2026-11-30T12:15:00Z" || len(tokens) == 0 || resp.Header.Get("Location") != "/v1/grants/gr_1" {
					t.Errorf("mint answer = %s", raw)
				}
			} else if strings.Contains(raw, fakeToken) {
				t.Errorf("a non-mint answer holds a token: %s", raw)
			}
		})
	}
	for _, e := range logs.All() {
		b, _ := json.Marshal(e.ContextMap())
		if strings.Contains(e.Message+string(b), fakeToken) || strings.Contains(string(b), doortest.TokenAlpha) {
			t.Errorf("log line holds a token: %s %s", e.Message, b)
		}
	}
}

func TestGrantsAPIList(t *testing.T) {
	env := doortest.New(t)
	svc := listingGrants{&fakeGrants{}}
	h := httpapi.NewGrants(env.Broker, svc, httpapi.Options{ResourceMetadataURL: metaURL})
	resp, m, raw := doGrants(t, h, "GET", "/v1/grants?graph=support-bot&run=r1", doortest.TokenAlpha, "")
	if resp.StatusCode != 200 || raw != "{\"grants\":[]}\n" {
		t.Fatalf("list = %d %s", resp.StatusCode, raw)
	}
	resp, m, _ = doGrants(t, h, "GET", "/v1/grants?graph=support-bot", doortest.TokenBeta, "")
	if e, _ := m["error"].(map[string]any); resp.StatusCode != 403 || e["code"] != "forbidden" {
		t.Fatalf("list by a stranger = %d %v", resp.StatusCode, m)
	}
	if strings.Join(svc.calls, ",") != "list support-bot r1,list support-bot " {
		t.Errorf("calls = %v", svc.calls)
	}
}
