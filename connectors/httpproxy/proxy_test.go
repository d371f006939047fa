package httpproxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/auth"
	"github.com/toolgate/toolgate/broker/brokertest"
	"github.com/toolgate/toolgate/broker/door"
	"github.com/toolgate/toolgate/connectors/httpproxy"
	"github.com/toolgate/toolgate/internal/config"
	"github.com/toolgate/toolgate/policy"
	"github.com/toolgate/toolgate/policy/mask"
	"github.com/toolgate/toolgate/tools"
)

// target is the fake billing API: it records what reached it.
type target struct {
	mu   sync.Mutex
	hits []*http.Request
}

func (tg *target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tg.mu.Lock()
	tg.hits = append(tg.hits, r.Clone(context.Background()))
	tg.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if strings.HasSuffix(r.URL.Path, "/raw") {
		w.Header().Set("Content-Type", "application/octet-stream") // mislabelled JSON
	}
	w.Header().Set("Set-Cookie", "upstream=secret")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"path": r.URL.Path, "auth": r.Header.Get("Authorization"), "api_key_ok": r.Header.Get("X-Api-Key") == "sk_live_target_secret",
		"card": "4111 1111 1111 1111", "customer": map[string]any{"ssn": "123-45-6789"},
	})
}

func (tg *target) count() int { tg.mu.Lock(); defer tg.mu.Unlock(); return len(tg.hits) }

func setup(t *testing.T) (*httptest.Server, *target, string, *brokertest.Recorder) {
	t.Helper()
	tg := &target{}
	srv, key, rec := setupWith(t, tg, nil)
	return srv, tg, key, rec
}

// setupWith mounts a proxy to the handler h at /proxy/billing; pass is the
// route's pass_content_types.
func setupWith(t *testing.T, h http.Handler, pass []string) (*httptest.Server, string, *brokertest.Recorder) {
	t.Helper()
	up := httptest.NewServer(h)
	t.Cleanup(up.Close)
	key, sha, _ := auth.NewAPIKey()
	authn, err := auth.New(auth.Config{APIKeys: []auth.APIKey{{Name: "bot", SHA256: sha}}})
	if err != nil {
		t.Fatal(err)
	}
	cat, _ := tools.NewCatalog()
	pol, err := policy.New(policy.Config{Catalog: cat, Graphs: map[string]config.Graph{"g": {
		Principals: []string{"key:bot"},
		Nodes: map[string]config.Node{
			"n": {Passthrough: map[string]config.PassthroughPolicy{"billing": {
				Methods: []string{"GET", "POST"}, Paths: []string{"/v1/invoices", "/v1/invoices/*"},
				Rules: []config.Rule{{When: "statement.method == 'POST' && statement.path == '/v1/invoices/void'", Effect: "deny", Reason: "voids need a human"}},
			}}},
			"other": {},
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := mask.New(mask.Config{}, nil)
	rec := &brokertest.Recorder{}
	b, err := broker.New(broker.Config{Live: broker.Live{Catalog: cat, Policy: pol, Masker: m, Routes: []broker.Route{{Kind: broker.KindHTTP, Target: "billing"}}}, Auth: authn, Recorder: rec})
	if err != nil {
		t.Fatal(err)
	}
	p, err := httpproxy.New(httpproxy.Config{PathPrefix: "/proxy/billing", Target: "billing", BaseURL: up.URL,
		Headers: map[string]string{"X-Api-Key": "sk_live_target_secret"}, PassContentTypes: pass,
		WriteError: func(w http.ResponseWriter, r *http.Request, err error) { door.WriteError(w, b.Report(err), "") }}, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/proxy/billing/", p)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, key, rec
}

func TestHTTPProxy(t *testing.T) {
	srv, tg, key, rec := setup(t)
	do := func(method, path, token, node string) (int, map[string]any, http.Header) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		req.URL.Opaque = path // send the path exactly as written
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("X-Toolgate-Graph", "g")
		req.Header.Set("X-Toolgate-Node", node)
		req.Header.Set("Connection", "X-Secret-Hop")
		req.Header.Set("X-Secret-Hop", "hop")
		req.Header.Set("Cookie", "session=caller")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body, resp.Header
	}
	for _, tc := range []struct {
		name, method, path, token, node string
		status                          int
		reached                         bool
	}{
		{"allowed get", "GET", "/proxy/billing/v1/invoices/42", key, "n", 200, true},
		{"allowed list", "GET", "/proxy/billing/v1/invoices", key, "n", 200, true},
		{"mislabelled json masked", "GET", "/proxy/billing/v1/invoices/raw", key, "n", 200, true},
		{"method refused", "DELETE", "/proxy/billing/v1/invoices/42", key, "n", 403, false},
		{"path refused", "GET", "/proxy/billing/v1/admin", key, "n", 403, false},
		{"rule refused", "POST", "/proxy/billing/v1/invoices/void", key, "n", 403, false},
		{"node without passthrough", "GET", "/proxy/billing/v1/invoices", key, "other", 403, false},
		{"no token", "GET", "/proxy/billing/v1/invoices", "", "n", 401, false},
		// ServeMux cleans a literal .. before the proxy sees it; the cleaned
		// path is then refused by policy.
		{"dot dot", "GET", "/proxy/billing/v1/invoices/../admin", key, "n", 403, false},
		{"encoded dot dot", "GET", "/proxy/billing/v1/invoices/%2e%2e/admin", key, "n", 400, false},
		{"encoded slash", "GET", "/proxy/billing/v1/invoices%2f..%2fadmin", key, "n", 400, false},
		{"encoded backslash", "GET", "/proxy/billing/v1/invoices/%5c..", key, "n", 400, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tg.count()
			status, body, hdr := do(tc.method, tc.path, tc.token, tc.node)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %v", status, tc.status, body)
			}
			if reached := tg.count() > before; reached != tc.reached {
				t.Fatalf("target reached = %v, want %v", reached, tc.reached)
			}
			if !tc.reached {
				return
			}
			if body["auth"] != "" {
				t.Errorf("the caller's Authorization reached the target: %v", body["auth"])
			}
			if body["api_key_ok"] != true {
				t.Errorf("injected credential missing: %v", body)
			}
			if s := fmt.Sprint(body); strings.Contains(s, "4111 1111 1111 1111") || strings.Contains(s, "123-45-6789") {
				t.Errorf("response not masked: %s", s)
			}
			if hdr.Get("Set-Cookie") != "" {
				t.Error("the target's cookie reached the caller")
			}
			last := tg.hits[len(tg.hits)-1]
			if last.Header.Get("X-Secret-Hop") != "" || last.Header.Get("Cookie") != "" || last.Header.Get("X-Toolgate-Graph") != "" {
				t.Errorf("hop-by-hop, cookie or toolgate headers forwarded: %v", last.Header)
			}
		})
	}
	statements := rec.OfKind(broker.EventStatement)
	var denied, done int
	for _, ev := range statements {
		if ev.Status == broker.StatusDenied {
			denied++
		}
		if ev.Detail["phase"] == "done" {
			done++
		}
	}
	if denied != 5 || done != 3 {
		t.Fatalf("recorded %d denied and %d done requests: %+v", denied, done, statements)
	}
}

func TestHTTPProxyCRLFHeader(t *testing.T) {
	srv, tg, key, _ := setup(t)
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /proxy/billing/v1/invoices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nX-Toolgate-Graph: g\r\nX-Toolgate-Node: n\r\nX-Evil: a\rInjected: b\r\n\r\n", key)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 400 || tg.count() != 0 {
		t.Fatalf("CRLF header: status %d, target hits %d", resp.StatusCode, tg.count())
	}
}

func TestHTTPProxyAuditDown(t *testing.T) {
	srv, tg, key, rec := setup(t)
	rec.SetFail(true)
	req, _ := http.NewRequest("GET", srv.URL+"/proxy/billing/v1/invoices", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("X-Toolgate-Graph", "g")
	req.Header.Set("X-Toolgate-Node", "n")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 500 || tg.count() != 0 {
		t.Fatalf("audit down: status %d, target hits %d", resp.StatusCode, tg.count())
	}
}

func TestConfigValidate(t *testing.T) {
	ok := httpproxy.Config{PathPrefix: "/p", Target: "t", BaseURL: "http://x", WriteError: func(http.ResponseWriter, *http.Request, error) {}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*httpproxy.Config){
		"prefix": func(c *httpproxy.Config) { c.PathPrefix = "p/" },
		"base":   func(c *httpproxy.Config) { c.BaseURL = "ftp://x" },
		"crlf":   func(c *httpproxy.Config) { c.Headers = map[string]string{"A": "b\r\nC: d"} },
		"writer": func(c *httpproxy.Config) { c.WriteError = nil },
		"target": func(c *httpproxy.Config) { c.Target = "" },
	} {
		c := ok
		mut(&c)
		if c.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
