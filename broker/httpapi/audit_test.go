package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/httpapi"
	"github.com/toolgate/toolgate/broker/httpapi/doortest"
	"github.com/toolgate/toolgate/recordings"
)

// auditFake is an AuditStore over a fixed list of events. It records every
// query it was asked, so refusals can check that nothing was read.
type auditFake struct {
	events []broker.Event
	// failAfter > 0 makes ExportEvents fail after writing that many records.
	failAfter int

	mu      sync.Mutex
	queries []httpapi.AuditQuery
	traces  []string
}

// Auditor is the real access rule of the audit trail.
func (f *auditFake) Auditor(p broker.Principal) error {
	return recordings.Auditors{"key:alpha", "group:security"}.Check(p)
}

func (f *auditFake) ExportEvents(ctx context.Context, viewer broker.Principal, q httpapi.AuditQuery, w io.Writer) (int, error) {
	if err := f.Auditor(viewer); err != nil {
		return 0, err
	}
	f.mu.Lock()
	f.queries = append(f.queries, q)
	f.mu.Unlock()
	n := 0
	for _, ev := range f.events {
		if q.Run != "" && ev.Run != q.Run || q.Node != "" && ev.Node != q.Node {
			continue
		}
		if q.Limit > 0 && n == q.Limit {
			break
		}
		if f.failAfter > 0 && n == f.failAfter {
			return n, errors.New("store went away")
		}
		var line []byte
		if q.Format == httpapi.AuditCSV {
			line = []byte(fmt.Sprintf("%s,%s,%s\n", ev.ID, ev.Node, ev.Tool))
		} else {
			line, _ = json.Marshal(ev)
			line = append(line, '\n')
		}
		if _, err := w.Write(line); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (f *auditFake) RunTrace(ctx context.Context, viewer broker.Principal, run string) ([]broker.Event, error) {
	if err := f.Auditor(viewer); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.traces = append(f.traces, run)
	f.mu.Unlock()
	var out []broker.Event
	for _, ev := range f.events {
		if ev.Run == run {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (f *auditFake) reads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.queries) + len(f.traces)
}

func auditEvents() []broker.Event {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	return []broker.Event{
		{ID: "ev1", Time: t0, Kind: broker.EventToolCall, Principal: "key:bot", Graph: "support-bot", Node: "triage", Run: "r1", Tool: "crm_find_customer", Decision: "allow", Rule: "allow", Status: broker.StatusOK, Rows: 1, DurationMS: 1.5},
		{ID: "ev2", Time: t0.Add(time.Second), Kind: broker.EventToolCall, Principal: "key:bot", Graph: "support-bot", Node: "billing", Run: "r1", Tool: "crm_list_orders", Decision: "deny", Rule: "default", Status: broker.StatusDenied, ErrorCode: "forbidden"},
		{ID: "ev3", Time: t0.Add(2 * time.Second), Kind: broker.EventToolCall, Principal: "key:bot", Graph: "support-bot", Node: "triage", Run: "r2", Tool: "crm_find_customer", Status: broker.StatusOK},
	}
}

func newAuditServer(t *testing.T, store *auditFake) *httptest.Server {
	t.Helper()
	env := doortest.New(t)
	srv := httptest.NewServer(httpapi.NewAudit(env.Broker, store, httpapi.Options{ResourceMetadataURL: metaURL}))
	t.Cleanup(srv.Close)
	return srv
}

func auditGet(t *testing.T, srv *httptest.Server, method, path, token string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func errorOf(t *testing.T, b []byte) (code, field string) {
	t.Helper()
	var env struct {
		Error struct{ Code, Field, Message string }
	}
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatalf("not an error envelope: %s", b)
	}
	if env.Error.Message == "" {
		t.Fatalf("error without a message: %s", b)
	}
	return env.Error.Code, env.Error.Field
}

// TestAuditRefusals: every refusal answers with its code and reads nothing.
func TestAuditRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, method, path, token string
		status                    int
		code, field               string
	}{
		{"no token", "GET", "/v1/audit/events", "", 401, "unauthenticated", ""},
		{"bad token", "GET", "/v1/audit/events", "tgk_nope", 401, "unauthenticated", ""},
		{"not an auditor", "GET", "/v1/audit/events", doortest.TokenBeta, 403, "forbidden", ""},
		{"not an auditor, trace", "GET", "/v1/runs/r1/trace", doortest.TokenBeta, 403, "forbidden", ""},
		{"unparseable since", "GET", "/v1/audit/events?since=yesterday", doortest.TokenAlpha, 400, "invalid_request", "since"},
		{"unparseable until", "GET", "/v1/audit/events?until=2026-13-45", doortest.TokenAlpha, 400, "invalid_request", "until"},
		{"until before since", "GET", "/v1/audit/events?since=2026-03-02&until=2026-03-01", doortest.TokenAlpha, 400, "invalid_request", "until"},
		{"unknown format", "GET", "/v1/audit/events?format=xml", doortest.TokenAlpha, 400, "invalid_request", "format"},
		{"negative limit", "GET", "/v1/audit/events?limit=-1", doortest.TokenAlpha, 400, "invalid_request", "limit"},
		{"misspelt filter", "GET", "/v1/audit/events?runn=r1", doortest.TokenAlpha, 400, "invalid_request", "runn"},
		{"repeated filter", "GET", "/v1/audit/events?run=r1&run=r2", doortest.TokenAlpha, 400, "invalid_request", "run"},
		{"wrong method", "POST", "/v1/audit/events", doortest.TokenAlpha, 405, "invalid_request", ""},
		{"unknown path", "GET", "/v1/audit/nope", doortest.TokenAlpha, 404, "not_found", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &auditFake{events: auditEvents()}
			srv := newAuditServer(t, store)
			resp, b := auditGet(t, srv, tc.method, tc.path, tc.token)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			code, field := errorOf(t, b)
			if code != tc.code || field != tc.field {
				t.Fatalf("error %s (field %q), want %s (field %q): %s", code, field, tc.code, tc.field, b)
			}
			if tc.status == 401 && !strings.Contains(resp.Header.Get("WWW-Authenticate"), metaURL) {
				t.Errorf("401 without the resource metadata challenge: %q", resp.Header.Get("WWW-Authenticate"))
			}
			if n := store.reads(); n != 0 {
				t.Fatalf("the store was read %d times on a refusal", n)
			}
		})
	}
}

func TestAuditExport(t *testing.T) {
	store := &auditFake{events: auditEvents()}
	srv := newAuditServer(t, store)
	resp, b := auditGet(t, srv, "GET", "/v1/audit/events?run=r1&node=triage&graph=support-bot&thread=th&tool=crm_find_customer&kind=tool_call&since=2026-11-30T11:00:00Z&until=2026-11-30&limit=5", doortest.TokenAlpha)
	// until (midnight) is before since: refused.
	if resp.StatusCode != 400 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	resp, b = auditGet(t, srv, "GET", "/v1/audit/events?run=r1&node=triage&graph=support-bot&thread=th&tool=crm_find_customer&kind=tool_call&since=2026-11-30T11:00:00Z&until=2026-12-01&limit=5", doortest.TokenAlpha)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d, type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	want := httpapi.AuditQuery{Graph: "support-bot", Node: "triage", Run: "r1", Thread: "th", Tool: "crm_find_customer", Kind: "tool_call",
		Since: time.Date(2026, 11, 30, 11, 0, 0, 0, time.UTC), Until: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Limit: 5, Format: "jsonl"}
	if got := store.queries[0]; got != want {
		t.Fatalf("query\n got %+v\nwant %+v", got, want)
	}
	if lines := strings.Count(string(b), "\n"); lines != 1 || !strings.Contains(string(b), `"id":"ev1"`) {
		t.Fatalf("export:\n%s", b)
	}

	resp, b = auditGet(t, srv, "GET", "/v1/audit/events?format=csv", doortest.TokenAlpha)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || string(b) != "ev1,triage,crm_find_customer\nev2,billing,crm_list_orders\nev3,triage,crm_find_customer\n" {
		t.Fatalf("csv: %d %q\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}

	// A filter that matches nothing is an empty 200, not an error.
	resp, b = auditGet(t, srv, "GET", "/v1/audit/events?run=none", doortest.TokenAlpha)
	if resp.StatusCode != 200 || len(b) != 0 {
		t.Fatalf("empty export: %d %q", resp.StatusCode, b)
	}
}

// TestAuditExportRelativeSince: since=24h means 24 hours before now.
func TestAuditExportRelativeSince(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	q, err := httpapi.ParseAuditQuery(url.Values{"since": {"24h"}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !q.Since.Equal(now.Add(-24*time.Hour)) || q.Format != "jsonl" {
		t.Fatalf("%+v", q)
	}
}

// TestAuditExportFailsMidStream: a store error after records went out
// aborts the connection instead of ending a short export cleanly.
func TestAuditExportFailsMidStream(t *testing.T) {
	store := &auditFake{events: auditEvents(), failAfter: 1}
	srv := newAuditServer(t, store)
	req, _ := http.NewRequest("GET", srv.URL+"/v1/audit/events", nil)
	req.Header.Set("Authorization", "Bearer "+doortest.TokenAlpha)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return // aborted before the headers arrived: also a visible failure
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("a failed export ended like a complete one")
	}
}

// TestAuditStoreErrorBeforeStream: a store error before any record is a
// clean JSON error with the store's code.
func TestAuditStoreErrorBeforeStream(t *testing.T) {
	store := &auditFake{events: auditEvents()}
	srv := httptest.NewServer(httpapi.NewAudit(doortest.New(t).Broker, refusingStore{store}, httpapi.Options{}))
	defer srv.Close()
	resp, b := auditGet(t, srv, "GET", "/v1/audit/events", doortest.TokenAlpha)
	if code, _ := errorOf(t, b); resp.StatusCode != 503 || code != "audit_unavailable" {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}

type refusingStore struct{ *auditFake }

func (refusingStore) ExportEvents(context.Context, broker.Principal, httpapi.AuditQuery, io.Writer) (int, error) {
	return 0, broker.Errorf(broker.CodeAuditUnavailable, "the audit store does not answer")
}

// TestAuditTrace pins the trace JSON (golden file, -update).
func TestAuditTrace(t *testing.T) {
	store := &auditFake{events: auditEvents()}
	srv := newAuditServer(t, store)
	resp, b := auditGet(t, srv, "GET", "/v1/runs/r1/trace", doortest.TokenAlpha)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "audit_trace_r1.json")
	if *update {
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("trace differs:\ngot:\n%s\nwant:\n%s", pretty.Bytes(), want)
	}

	resp, b = auditGet(t, srv, "GET", "/v1/runs/nope/trace", doortest.TokenAlpha)
	if code, _ := errorOf(t, b); resp.StatusCode != 404 || code != "not_found" {
		t.Fatalf("unknown run: %d %s", resp.StatusCode, b)
	}
}
