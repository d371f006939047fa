package httptarget_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/connectors/httptarget"
)

const secret = "Bearer sk-live-TOPSECRET-42"

// seen is what a test server received.
type seen struct {
	Method      string
	Path        string
	RawPath     string
	RawQuery    string
	Body        string
	ContentType string
	Auth        string
	Header      http.Header
}

// recorder is an httptest server that records requests and answers with
// handler.
func recorder(t *testing.T, handler http.HandlerFunc) (*httptest.Server, *atomic.Pointer[seen], *atomic.Int32) {
	t.Helper()
	var last atomic.Pointer[seen]
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		last.Store(&seen{Method: r.Method, Path: r.URL.Path, RawPath: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, Body: string(b),
			ContentType: r.Header.Get("Content-Type"), Auth: r.Header.Get("Authorization"), Header: r.Header.Clone()})
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &last, &hits
}

func newConnector(t *testing.T, cfg httptarget.Config, log *zap.Logger) *httptarget.Connector {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "billing"
	}
	if cfg.Headers == nil {
		cfg.Headers = map[string]string{"Authorization": secret}
	}
	c, err := httptarget.New(cfg, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func op(method, path string, query url.Values, body string) broker.Operation {
	h := &broker.HTTPOperation{Method: method, Path: path, Query: query}
	if body != "" {
		h.Body = json.RawMessage(body)
	}
	return broker.Operation{Target: "billing", HTTP: h}
}

func jsonHandler(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func TestResults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		method  string
		want    string
	}{
		{"json body keeps key order", jsonHandler(200, `{"z":1,"a":{"y":[1,2],"b":null}}`), "GET", `{"status":200,"body":{"z":1,"a":{"y":[1,2],"b":null}}}`},
		{"non-JSON body is a string", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "plain <b>text</b>\n") }, "GET", `{"status":200,"body":"plain \u003cb\u003etext\u003c/b\u003e\n"}`},
		{"empty body is null", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }, "DELETE", `{"status":204,"body":null}`},
		{"4xx is a result", jsonHandler(404, `{"error":"no such order"}`), "GET", `{"status":404,"body":{"error":"no such order"}}`},
		{"422 is a result", jsonHandler(422, `{"error":"amount too high"}`), "POST", `{"status":422,"body":{"error":"amount too high"}}`},
		{"HEAD", func(w http.ResponseWriter, r *http.Request) { w.Header().Set("Content-Length", "5") }, "HEAD", `{"status":200,"body":null}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _, _ := recorder(t, tc.handler)
			c := newConnector(t, httptarget.Config{BaseURL: srv.URL}, nil)
			out, err := c.Execute(context.Background(), op(tc.method, "/orders/1", nil, ""))
			if err != nil {
				t.Fatal(err)
			}
			if string(out.Value) != tc.want {
				t.Errorf("value\n got %s\nwant %s", out.Value, tc.want)
			}
			if out.Bytes != len(out.Value) {
				t.Errorf("Bytes = %d, want %d", out.Bytes, len(out.Value))
			}
		})
	}
}

func TestRequestEncoding(t *testing.T) {
	srv, last, _ := recorder(t, jsonHandler(200, `{}`))
	c := newConnector(t, httptarget.Config{BaseURL: srv.URL + "/api/v1/", Headers: map[string]string{"Authorization": secret, "X-Tenant": "acme"}}, nil)
	q := url.Values{"q": {"a b&c=d", "é"}, "evil": {"x\r\nX-Injected: 1"}}
	body := `{"amount": 12.5, "note": "a\"b", "nested": {"k": [1, null]}}`
	if _, err := c.Execute(context.Background(), op("post", "/refunds/ord%2F1%3Fx", q, body)); err != nil {
		t.Fatal(err)
	}
	got := last.Load()
	want := &seen{Method: "POST", Path: "/api/v1/refunds/ord/1?x", RawPath: "/api/v1/refunds/ord%2F1%3Fx",
		RawQuery: "evil=x%0D%0AX-Injected%3A+1&q=a+b%26c%3Dd&q=%C3%A9", Body: body, ContentType: "application/json", Auth: secret}
	for _, f := range []struct{ name, got, want string }{
		{"method", got.Method, want.Method}, {"path", got.Path, want.Path}, {"raw path", got.RawPath, want.RawPath},
		{"query", got.RawQuery, want.RawQuery}, {"body", got.Body, want.Body},
		{"content type", got.ContentType, want.ContentType}, {"authorization", got.Auth, want.Auth},
		{"configured header", got.Header.Get("X-Tenant"), "acme"},
		{"injected header", got.Header.Get("X-Injected"), ""},
	} {
		if f.got != f.want {
			t.Errorf("%s = %q, want %q", f.name, f.got, f.want)
		}
	}
	// GET without a body sends no Content-Type.
	if _, err := c.Execute(context.Background(), op("", "/x", nil, "")); err != nil {
		t.Fatal(err)
	}
	if got := last.Load(); got.Method != "GET" || got.ContentType != "" || got.Body != "" {
		t.Errorf("bodyless GET sent method %q, content type %q, body %q", got.Method, got.ContentType, got.Body)
	}
}

// TestTraceContext: the target receives the trace context of ctx (the
// broker's connector span) as traceparent and tracestate, and none
// without one.
func TestTraceContext(t *testing.T) {
	srv, last, _ := recorder(t, jsonHandler(200, `{}`))
	c := newConnector(t, httptarget.Config{BaseURL: srv.URL}, nil)
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ts, _ := trace.ParseTraceState("rojo=00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, TraceState: ts}))
	if _, err := c.Execute(ctx, op("GET", "/x", nil, "")); err != nil {
		t.Fatal(err)
	}
	h := last.Load().Header
	if h.Get("traceparent") != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" || h.Get("tracestate") != "rojo=00f067aa0ba902b7" {
		t.Errorf("traceparent %q, tracestate %q", h.Get("traceparent"), h.Get("tracestate"))
	}
	if _, err := c.Execute(context.Background(), op("GET", "/x", nil, "")); err != nil {
		t.Fatal(err)
	}
	if h := last.Load().Header; h.Get("traceparent") != "" {
		t.Errorf("traceparent %q sent without a trace", h.Get("traceparent"))
	}
}

func TestServerError(t *testing.T) {
	srv, _, _ := recorder(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "panic: db password=hunter2 at line 3", http.StatusBadGateway)
	})
	c := newConnector(t, httptarget.Config{BaseURL: srv.URL}, nil)
	_, err := c.Execute(context.Background(), op("GET", "/x", nil, ""))
	if code := broker.CodeOf(err); code != broker.CodeTargetError {
		t.Fatalf("code = %s, want target_error (%v)", code, err)
	}
	if want := "target_error: target billing answered HTTP 502 Bad Gateway"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Error("the 5xx body was echoed")
	}
}

func TestResponseCap(t *testing.T) {
	big := strings.Repeat("x", 2048)
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"content length", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, big) }},
		{"chunked", func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i < 4; i++ {
				io.WriteString(w, big[:600])
				w.(http.Flusher).Flush()
			}
		}},
		{"gzip bomb", func(w http.ResponseWriter, r *http.Request) {
			// 512 KiB of JSON that compresses to under 1 KiB: the cap applies
			// to the decoded body.
			if r.Header.Get("Accept-Encoding") != "gzip" {
				t.Errorf("Accept-Encoding = %q; the transport should ask for gzip", r.Header.Get("Accept-Encoding"))
			}
			var zb bytes.Buffer
			zw := gzip.NewWriter(&zb)
			io.WriteString(zw, `"`+strings.Repeat("a", 512<<10)+`"`)
			zw.Close()
			if zb.Len() > 1024 {
				t.Errorf("compressed body is %d bytes; the test needs it under the cap", zb.Len())
			}
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Content-Type", "application/json")
			w.Write(zb.Bytes())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _, _ := recorder(t, tc.handler)
			c := newConnector(t, httptarget.Config{BaseURL: srv.URL, MaxResponseBytes: 1024}, nil)
			_, err := c.Execute(context.Background(), op("GET", "/big", nil, ""))
			if code := broker.CodeOf(err); code != broker.CodeTargetError {
				t.Fatalf("code = %s, want target_error (%v)", code, err)
			}
			if !strings.Contains(err.Error(), "response larger than 1024 bytes") {
				t.Errorf("err = %q", err)
			}
		})
	}
	// Exactly at the cap is fine.
	srv, _, _ := recorder(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `"`+strings.Repeat("y", 1022)+`"`) })
	c := newConnector(t, httptarget.Config{BaseURL: srv.URL, MaxResponseBytes: 1024}, nil)
	if _, err := c.Execute(context.Background(), op("GET", "/", nil, "")); err != nil {
		t.Errorf("a body of exactly the cap: %v", err)
	}
}

func TestSlowServerTimesOut(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv, _, _ := recorder(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	c := newConnector(t, httptarget.Config{BaseURL: srv.URL, Timeout: 200 * time.Millisecond}, nil)
	start := time.Now()
	_, err := c.Execute(context.Background(), op("GET", "/slow", nil, ""))
	if code := broker.CodeOf(err); code != broker.CodeTimeout {
		t.Fatalf("code = %s, want timeout (%v)", code, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s", d)
	}
	if !strings.Contains(err.Error(), "200ms") {
		t.Errorf("err = %q does not name the timeout", err)
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	other, _, otherHits := recorder(t, jsonHandler(200, `{"stolen":true}`))
	srv, _, _ := recorder(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/collect", http.StatusFound)
	})
	c := newConnector(t, httptarget.Config{BaseURL: srv.URL}, nil)
	out, err := c.Execute(context.Background(), op("GET", "/x", nil, ""))
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Status int }
	if err := json.Unmarshal(out.Value, &v); err != nil || v.Status != http.StatusFound {
		t.Errorf("value = %s, want status 302", out.Value)
	}
	if n := otherHits.Load(); n != 0 {
		t.Errorf("the other host got %d requests", n)
	}
}

func TestPathCannotLeaveTarget(t *testing.T) {
	srv, _, hits := recorder(t, jsonHandler(200, `{}`))
	c := newConnector(t, httptarget.Config{BaseURL: srv.URL + "/api"}, nil)
	for _, p := range []string{
		"no-slash",
		"/../admin",
		"/a/./b",
		"/a/%2e%2e/admin",
		"/a/%2E%2E%2Fadmin",
		"/a/..%2fadmin",
		"/a/..",
		"/x?admin=1",
		"/x#frag",
		"/x y",
		"/x\r\nHost: evil",
		"/a\\..\\b",
		"/%zz",
	} {
		_, err := c.Execute(context.Background(), op("GET", p, nil, ""))
		if code := broker.CodeOf(err); code != broker.CodeInvalidRequest {
			t.Errorf("path %q: code = %s, want invalid_request (%v)", p, code, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("refused paths still sent %d requests", n)
	}
	// A path that looks like an authority stays on the target's host.
	for _, p := range []string{"//evil.example/x", "/@evil.example/x", "/:80@evil.example"} {
		u, err := c.URL(&broker.HTTPOperation{Path: p})
		if err != nil {
			continue // refusing is fine too
		}
		base, _ := url.Parse(srv.URL)
		if u.Host != base.Host {
			t.Errorf("path %q goes to host %q", p, u.Host)
		}
	}
}

func TestRefusals(t *testing.T) {
	srv, _, hits := recorder(t, jsonHandler(200, `{}`))
	c := newConnector(t, httptarget.Config{BaseURL: srv.URL}, nil)
	for _, tc := range []struct {
		name string
		op   broker.Operation
	}{
		{"not HTTP", broker.Operation{SQL: &broker.SQLOperation{Statement: "SELECT 1"}}},
		{"method CONNECT", op("CONNECT", "/", nil, "")},
		{"method TRACE", op("TRACE", "/", nil, "")},
		{"method with space", op("GET /x HTTP/1.1\r\n", "/", nil, "")},
		{"body not JSON", op("POST", "/", nil, "{not json")},
	} {
		_, err := c.Execute(context.Background(), tc.op)
		if code := broker.CodeOf(err); code != broker.CodeInvalidRequest {
			t.Errorf("%s: code = %s, want invalid_request (%v)", tc.name, code, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("refused operations sent %d requests", n)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  httptarget.Config
		want string
	}{
		{"no name", httptarget.Config{BaseURL: "https://x"}, "name is required"},
		{"no base", httptarget.Config{Name: "b"}, "base_url is required"},
		{"bad scheme", httptarget.Config{Name: "b", BaseURL: "ftp://x"}, "http:// or https://"},
		{"no host", httptarget.Config{Name: "b", BaseURL: "https:///x"}, "no host"},
		{"userinfo", httptarget.Config{Name: "b", BaseURL: "https://user:TOPSECRET@x"}, "must not"},
		{"query", httptarget.Config{Name: "b", BaseURL: "https://x/?token=1"}, "query"},
		{"header CRLF", httptarget.Config{Name: "b", BaseURL: "https://x", Headers: map[string]string{"Authorization": secret + "\r\nX-Evil: 1"}}, "line break"},
		{"header name", httptarget.Config{Name: "b", BaseURL: "https://x", Headers: map[string]string{"Bad Name": secret}}, "not a valid HTTP header name"},
		{"host header", httptarget.Config{Name: "b", BaseURL: "https://x", Headers: map[string]string{"Host": "evil"}}, "cannot be configured"},
		{"negative timeout", httptarget.Config{Name: "b", BaseURL: "https://x", Timeout: -1}, "timeout"},
		{"negative cap", httptarget.Config{Name: "b", BaseURL: "https://x", MaxResponseBytes: -1}, "max_response_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "TOPSECRET") {
				t.Errorf("error leaks the secret: %v", err)
			}
			if _, err := httptarget.New(tc.cfg, nil); err == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}

// TestSecretNeverInErrorsOrLogs drives every error path with a secret in
// the configured headers and checks neither the error nor the log holds it.
func TestSecretNeverInErrorsOrLogs(t *testing.T) {
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr
	}()
	echo := func(w http.ResponseWriter, r *http.Request) {
		// A hostile or buggy target echoing the credential back.
		w.WriteHeader(500)
		io.WriteString(w, r.Header.Get("Authorization"))
	}
	slow := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	huge := func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, strings.Repeat(secret, 100)) }
	reset := func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}
	redirect := func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "http://127.0.0.1:1/", 302) }

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name    string
		base    string
		handler http.HandlerFunc
		ctx     context.Context
		op      broker.Operation
		code    broker.Code
	}{
		{name: "connection refused", base: closed, code: broker.CodeTargetUnavailable},
		{name: "dns failure", base: "http://no-such-host.invalid", code: broker.CodeTargetUnavailable},
		{name: "5xx echoing the secret", handler: echo, code: broker.CodeTargetError},
		{name: "timeout", handler: slow, code: broker.CodeTimeout},
		{name: "too large", handler: huge, code: broker.CodeTargetError},
		{name: "connection reset", handler: reset, code: broker.CodeTargetUnavailable},
		{name: "cancelled", handler: echo, ctx: cancelled, code: broker.CodeUnavailable},
		{name: "bad path", handler: echo, op: op("GET", "/../x", nil, ""), code: broker.CodeInvalidRequest},
		{name: "bad method", handler: echo, op: op("TRACE", "/", nil, ""), code: broker.CodeInvalidRequest},
		{name: "bad body", handler: echo, op: op("POST", "/", nil, "{"), code: broker.CodeInvalidRequest},
		{name: "redirect (a result)", handler: redirect, code: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := tc.base
			if tc.handler != nil {
				srv, _, _ := recorder(t, tc.handler)
				base = srv.URL
			}
			core, logs := observer.New(zap.DebugLevel)
			c := newConnector(t, httptarget.Config{BaseURL: base, Timeout: 300 * time.Millisecond, MaxResponseBytes: 512,
				Headers: map[string]string{"Authorization": secret, "X-Api-Key": "TOPSECRET-key"}}, zap.New(core))
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			o := tc.op
			if o.HTTP == nil {
				o = op("POST", "/refunds", url.Values{"a": {"1"}}, `{"amount":1}`)
			}
			start := time.Now()
			out, err := c.Execute(ctx, o)
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %s", d)
			}
			if code := broker.CodeOf(err); code != tc.code {
				t.Fatalf("code = %q, want %q (%v)", code, tc.code, err)
			}
			var texts []string
			if err != nil {
				texts = append(texts, err.Error(), fmt.Sprintf("%+v", err))
				var be *broker.Error
				if errors.As(err, &be) && be.Cause != nil {
					texts = append(texts, be.Cause.Error())
				}
			}
			texts = append(texts, string(out.Value))
			for _, e := range logs.All() {
				texts = append(texts, fmt.Sprint(e.Message, e.ContextMap()))
			}
			for _, s := range texts {
				if strings.Contains(s, "TOPSECRET") {
					t.Errorf("secret leaked: %s", s)
				}
			}
			if tc.name == "cancelled" && !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want one wrapping context.Canceled", err)
			}
		})
	}
}
