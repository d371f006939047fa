package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// otlpSink is an in-process OTLP receiver: it keeps every export's bytes
// as they arrived (decompressed) and the spans decoded from them.
type otlpSink struct {
	mu      sync.Mutex
	raw     [][]byte
	spans   []*tracepb.Span
	service []string
	headers []string
}

func (s *otlpSink) take(raw []byte, req *collectorpb.ExportTraceServiceRequest, apiKey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw = append(s.raw, raw)
	s.headers = append(s.headers, apiKey)
	for _, rs := range req.GetResourceSpans() {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				s.service = append(s.service, kv.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			s.spans = append(s.spans, ss.GetSpans()...)
		}
	}
}

// newHTTPSink serves OTLP/HTTP protobuf on /v1/traces.
func newHTTPSink(t *testing.T) (*otlpSink, string) {
	s := &otlpSink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		raw, _ := io.ReadAll(body)
		req := &collectorpb.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(raw, req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.take(raw, req, r.Header.Get("X-Test-Key"))
		out, _ := proto.Marshal(&collectorpb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return s, srv.URL
}

// grpcSink is the collector's trace service over gRPC.
type grpcSink struct {
	collectorpb.UnimplementedTraceServiceServer
	sink *otlpSink
}

func (g grpcSink) Export(ctx context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	raw, _ := proto.Marshal(req)
	md, _ := metadata.FromIncomingContext(ctx)
	key := ""
	if v := md.Get("x-test-key"); len(v) > 0 {
		key = v[0]
	}
	g.sink.take(raw, req, key)
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

func newGRPCSink(t *testing.T) (*otlpSink, string) {
	s := &otlpSink{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	collectorpb.RegisterTraceServiceServer(srv, grpcSink{sink: s})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return s, "http://" + ln.Addr().String()
}

// wait returns the spans once one is named name, failing after 20s.
func (s *otlpSink) wait(t *testing.T, name string) []*tracepb.Span {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s.mu.Lock()
		spans := append([]*tracepb.Span(nil), s.spans...)
		s.mu.Unlock()
		for _, sp := range spans {
			if sp.GetName() == name {
				return spans
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no span %q exported; got %v", name, spanNames(spans))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *otlpSink) allRaw() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Join(s.raw, nil)
}

func spanNames(spans []*tracepb.Span) []string {
	var out []string
	for _, sp := range spans {
		out = append(out, sp.GetName())
	}
	return out
}

// attr returns a span's string (or string-array, joined) attribute.
func attr(sp *tracepb.Span, key string) string {
	for _, kv := range sp.GetAttributes() {
		if kv.GetKey() == key {
			if arr := kv.GetValue().GetArrayValue(); arr != nil {
				var parts []string
				for _, v := range arr.GetValues() {
					parts = append(parts, v.GetStringValue())
				}
				return strings.Join(parts, ",")
			}
			return anyString(kv.GetValue())
		}
	}
	return ""
}

func anyString(v *commonpb.AnyValue) string {
	if _, ok := v.GetValue().(*commonpb.AnyValue_IntValue); ok {
		return fmt.Sprint(v.GetIntValue())
	}
	return v.GetStringValue()
}

// root finds the span named name whose record id is id (any when "").
func root(t *testing.T, spans []*tracepb.Span, name, id string) *tracepb.Span {
	t.Helper()
	for _, sp := range spans {
		if sp.GetName() == name && (id == "" || attr(sp, "toolgate.record.id") == id) {
			return sp
		}
	}
	t.Fatalf("no span %q for record %q among %v", name, id, spanNames(spans))
	return nil
}

// byAttr finds the span whose attribute key is v.
func byAttr(t *testing.T, spans []*tracepb.Span, key, v string) *tracepb.Span {
	t.Helper()
	for _, sp := range spans {
		if attr(sp, key) == v {
			return sp
		}
	}
	t.Fatalf("no span with %s = %q", key, v)
	return nil
}

// children are the names of parent's children, in start order.
func children(spans []*tracepb.Span, parent *tracepb.Span) map[string]*tracepb.Span {
	out := map[string]*tracepb.Span{}
	for _, sp := range spans {
		if bytes.Equal(sp.GetParentSpanId(), parent.GetSpanId()) && bytes.Equal(sp.GetTraceId(), parent.GetTraceId()) {
			out[sp.GetName()] = sp
		}
	}
	return out
}

func wantChildren(t *testing.T, spans []*tracepb.Span, parent *tracepb.Span, want, not []string) map[string]*tracepb.Span {
	t.Helper()
	got := children(spans, parent)
	for _, n := range want {
		if got[n] == nil {
			t.Errorf("%s: no child %s (children: %v)", parent.GetName(), n, keys(got))
		}
	}
	for _, n := range not {
		if got[n] != nil {
			t.Errorf("%s: child %s should not exist", parent.GetName(), n)
		}
	}
	return got
}

func keys(m map[string]*tracepb.Span) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// traceTarget is the HTTP target of the tracing tests: it keeps the
// traceparent header of every request.
type traceTarget struct {
	URL         string
	mu          sync.Mutex
	traceparent []string
}

func newTraceTarget(t *testing.T) *traceTarget {
	tt := &traceTarget{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tt.mu.Lock()
		tt.traceparent = append(tt.traceparent, r.Header.Get("traceparent"))
		tt.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "you said %s", strings.TrimPrefix(r.URL.Path, "/text/"))
	}))
	t.Cleanup(srv.Close)
	tt.URL = srv.URL
	return tt
}

func (tt *traceTarget) last() string {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if len(tt.traceparent) == 0 {
		return ""
	}
	return tt.traceparent[len(tt.traceparent)-1]
}

// tracedConfig adds to the e2e config: HTTP passthrough for triage, a
// node whose calls need approval, and telemetry exporting to endpoint.
func tracedConfig(endpoint, protocol string) func(string) string {
	return func(y string) string {
		y = strings.Replace(y, "      triage: {allow: [crm_find_customer, down_ping, api_*]}",
			"      triage:\n        allow: [crm_find_customer, down_ping, api_*]\n        passthrough:\n"+
				"          api: {methods: [GET], paths: [\"/text/*\"]}\n"+
				"      review:\n        allow: [crm_find_customer]\n"+
				"        rules: [{tool: crm_find_customer, effect: approve, approvers: [\"key:other\"]}]", 1)
		return y + "approvals: {wait: 1s}\npassthrough:\n  http: [{path_prefix: /proxy/api, target: api}]\n" +
			"telemetry:\n  otlp: {endpoint: \"" + endpoint + "\", protocol: " + protocol + ", headers: {x-test-key: \"${E2E_OTLP_KEY}\"}}\n"
	}
}

const (
	callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan  = "00f067aa0ba902b7"
	callerTP    = "00-" + callerTrace + "-" + callerSpan + "-01"
)

var sqlTraceparent = regexp.MustCompile(`traceparent='00-([0-9a-f]{32})-([0-9a-f]{16})-01'`)

// TestE2ETracesOverOTLPHTTP: toolgate with telemetry over OTLP/HTTP
// continues the caller's trace: one span per call with its gate steps as
// children (allowed, refused, held and approved), the statement PostgreSQL
// ran carries the connector span's traceparent, the HTTP target gets it,
// an HTTP passthrough request is a span, the audit record has the
// caller's trace id, and no argument, result or secret is in any byte
// exported.
func TestE2ETracesOverOTLPHTTP(t *testing.T) {
	sink, url := newHTTPSink(t)
	target := newTraceTarget(t)
	e := prepareE2E(t, tracedConfig(url, "http/protobuf"))
	e.env = append(e.env, "E2E_API_URL="+target.URL, "E2E_OTLP_KEY=otlp-key-1", "OTEL_BSP_SCHEDULE_DELAY=50", "OTEL_SERVICE_NAME=toolgate-e2e")
	e.tgProcess = e.start(t)

	// Allowed: the SQL carries the connector span's context.
	st, out := e.callHTTP(t, e.BotKey, "triage", "crm_find_customer", `{"email":"ada@example.com"}`, "traceparent", callerTP, "X-Toolgate-Run", "run-otel")
	if st != 200 {
		t.Fatalf("allowed call: %d %v", st, out["_raw"])
	}
	allowedID, _ := out["call_id"].(string)
	sqlTrace, sqlSpan := statementTraceparent(t, e.CRMDSN)
	// Refused: forbidden for node billing.
	st, out = e.callHTTP(t, e.BotKey, "billing", "crm_find_customer", `{"email":"grace@example.com"}`, "traceparent", callerTP)
	if st != 403 {
		t.Fatalf("refused call: %d %v", st, out["_raw"])
	}
	// The HTTP target.
	if st, out = e.callHTTP(t, e.BotKey, "triage", "api_text", `{"word":"secretword"}`, "traceparent", callerTP); st != 200 {
		t.Fatalf("api call: %d %v", st, out["_raw"])
	}
	apiTP := target.last()
	heldID, approvedID := approveAndRun(t, e)
	passthroughGet(t, e)

	spans := sink.wait(t, "GET /proxy/api")
	spans = sink.wait(t, "execute_tool crm_find_customer")
	allowed := root(t, spans, "execute_tool crm_find_customer", allowedID)
	if hex.EncodeToString(allowed.GetTraceId()) != callerTrace || hex.EncodeToString(allowed.GetParentSpanId()) != callerSpan {
		t.Errorf("allowed call span: trace %x parent %x, want the caller's %s %s", allowed.GetTraceId(), allowed.GetParentSpanId(), callerTrace, callerSpan)
	}
	if allowed.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("call span kind %v, want server", allowed.GetKind())
	}
	for k, v := range map[string]string{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "crm_find_customer", "toolgate.graph": "support-bot",
		"toolgate.node": "triage", "toolgate.run": "run-otel", "toolgate.decision": "allow", "toolgate.status": "ok", "toolgate.target": "crm",
		"toolgate.door": "http", "toolgate.auth.method": "api_key"} {
		if got := attr(allowed, k); got != v {
			t.Errorf("allowed call span %s = %q, want %q", k, got, v)
		}
	}
	steps := wantChildren(t, spans, allowed, []string{"toolgate.identify", "toolgate.policy", "toolgate.connector", "toolgate.mask", "toolgate.record"}, []string{"toolgate.approval"})
	if c := steps["toolgate.connector"]; c == nil || hex.EncodeToString(c.GetSpanId()) != sqlSpan || sqlTrace != callerTrace {
		t.Errorf("the SQL comment carries %s-%s, want the connector span of the caller's trace", sqlTrace, sqlSpan)
	}

	refused := byAttr(t, spans, "toolgate.node", "billing")
	if attr(refused, "toolgate.error.code") != "forbidden" || attr(refused, "error.type") != "forbidden" || refused.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("refused call span: attrs %v status %v", refused.GetAttributes(), refused.GetStatus())
	}
	wantChildren(t, spans, refused, []string{"toolgate.identify", "toolgate.record"}, []string{"toolgate.connector", "toolgate.mask"})

	api := root(t, spans, "execute_tool api_text", "")
	apiConn := children(spans, api)["toolgate.connector"]
	if apiConn == nil || apiTP != "00-"+callerTrace+"-"+hex.EncodeToString(apiConn.GetSpanId())+"-01" {
		t.Errorf("HTTP target got traceparent %q, want the connector span's", apiTP)
	}

	held := root(t, spans, "execute_tool crm_find_customer", heldID)
	hs := wantChildren(t, spans, held, []string{"toolgate.policy", "toolgate.approval", "toolgate.record"}, []string{"toolgate.connector"})
	if attr(held, "toolgate.status") != "pending" || attr(held, "toolgate.decision") != "approve" || attr(hs["toolgate.approval"], "toolgate.approval.id") == "" {
		t.Errorf("held call span: %v / approval %v", held.GetAttributes(), hs["toolgate.approval"].GetAttributes())
	}
	approved := root(t, spans, "execute_tool crm_find_customer", approvedID)
	wantChildren(t, spans, approved, []string{"toolgate.approval", "toolgate.connector", "toolgate.mask", "toolgate.record"}, nil)
	if attr(approved, "toolgate.approval.id") != attr(held, "toolgate.approval.id") || attr(approved, "toolgate.status") != "ok" {
		t.Errorf("approved call span: %v", approved.GetAttributes())
	}

	checkPassthroughSpan(t, spans)
	checkRecordedTrace(t, e, allowedID)
	checkNothingSecretExported(t, e, sink)
}

// statementTraceparent reads the traceparent of the last statement
// toolgate's connector ran, from pg_stat_activity (an idle backend shows
// its last statement).
func statementTraceparent(t *testing.T, dsn string) (traceID, spanID string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var q string
	err = conn.QueryRow(ctx, `SELECT query FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%FROM customers%traceparent=%'`).Scan(&q)
	if err != nil {
		t.Fatalf("no statement with a traceparent in pg_stat_activity: %v", err)
	}
	m := sqlTraceparent.FindStringSubmatch(q)
	if m == nil {
		t.Fatalf("statement %q carries no traceparent", q)
	}
	return m[1], m[2]
}

// approveAndRun calls node review's crm_find_customer (held), approves it
// with key:other and calls again (runs); it returns both record ids.
func approveAndRun(t *testing.T, e *e2eEnv) (string, string) {
	t.Helper()
	body := `{"email":"alan@example.com"}`
	st, out := e.callHTTP(t, e.BotKey, "review", "crm_find_customer", body, "X-Toolgate-Run", "run-held", "traceparent", callerTP)
	id, _ := out["approval_id"].(string)
	if st != 202 || id == "" {
		t.Fatalf("held call: %d %v", st, out["_raw"])
	}
	heldID, _ := out["call_id"].(string)
	req, _ := http.NewRequest(http.MethodPost, e.URL+"/v1/approvals/"+id+"/approve", strings.NewReader(`{"reason":"ok"}`))
	req.Header.Set("Authorization", "Bearer "+e.OtherKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("approve: %d", resp.StatusCode)
	}
	st, out = e.callHTTP(t, e.BotKey, "review", "crm_find_customer", body, "X-Toolgate-Run", "run-held", "traceparent", callerTP)
	if st != 200 {
		t.Fatalf("approved call: %d %v", st, out["_raw"])
	}
	approvedID, _ := out["call_id"].(string)
	return heldID, approvedID
}

// passthroughGet sends one HTTP passthrough request with the caller's
// trace context.
func passthroughGet(t *testing.T, e *e2eEnv) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.URL+"/proxy/api/text/passthroughword", nil)
	req.Header.Set("Authorization", "Bearer "+e.BotKey)
	req.Header.Set("X-Toolgate-Graph", "support-bot")
	req.Header.Set("X-Toolgate-Node", "triage")
	req.Header.Set("traceparent", callerTP)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("passthrough GET: %d", resp.StatusCode)
	}
}

// checkPassthroughSpan: the passthrough request is a server span of the
// caller's trace, with the statement at the gate under it.
func checkPassthroughSpan(t *testing.T, spans []*tracepb.Span) {
	t.Helper()
	pt := root(t, spans, "GET /proxy/api", "")
	if hex.EncodeToString(pt.GetTraceId()) != callerTrace || attr(pt, "http.route") != "/proxy/api" || attr(pt, "http.response.status_code") != "200" {
		t.Errorf("passthrough span: trace %x attrs %v", pt.GetTraceId(), pt.GetAttributes())
	}
	gate := children(spans, pt)["toolgate.statement http:api"]
	if gate == nil {
		t.Fatalf("passthrough span has no statement child: %v", keys(children(spans, pt)))
	}
	if attr(gate, "toolgate.http.method") != "GET" || attr(gate, "toolgate.decision") != "allow" {
		t.Errorf("statement span: %v", gate.GetAttributes())
	}
	wantChildren(t, spans, gate, []string{"toolgate.policy", "toolgate.record"}, nil)
}

// checkRecordedTrace: the call's audit record carries the caller's trace
// id.
func checkRecordedTrace(t *testing.T, e *e2eEnv, id string) {
	t.Helper()
	code, stdout, stderr := runToolgate(t, e.dir, e.env, "audit", "export", "--config", "toolgate.yaml", "--run", "run-otel")
	if code != 0 || !strings.Contains(stdout, id) {
		t.Fatalf("audit export: %d %s %s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, `"trace_id":"`+callerTrace+`"`) {
		t.Errorf("the record does not carry the caller's trace id:\n%s", stdout)
	}
}

// checkNothingSecretExported greps every exported byte for the calls'
// arguments, results and credentials.
func checkNothingSecretExported(t *testing.T, e *e2eEnv, sink *otlpSink) {
	t.Helper()
	raw := sink.allRaw()
	for _, s := range []string{"ada@example.com", "grace@example.com", "alan@example.com", "4242424242424242", "************4242",
		"Ada Lovelace", "Alan Turing", "123-45-6789", "secretword", "passthroughword", "you said", "SELECT", e.BotKey, e.OtherKey, e.APISecret, "otlp-key-1"} {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("the exported spans contain %q", s)
		}
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.headers) == 0 || sink.headers[0] != "otlp-key-1" || sink.service[0] != "toolgate-e2e" {
		t.Errorf("export headers %v, service %v: want the configured header and OTEL_SERVICE_NAME", sink.headers, sink.service)
	}
}

// TestE2ETracesOverOTLPGRPC: over gRPC, configured by the standard
// environment variables alone, an MCP tools/call continues the trace
// context of params._meta, which wins over the HTTP header's.
func TestE2ETracesOverOTLPGRPC(t *testing.T) {
	sink, url := newGRPCSink(t)
	e := prepareE2E(t, nil)
	e.env = append(e.env, "OTEL_EXPORTER_OTLP_ENDPOINT="+url, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_HEADERS=x-test-key=grpc-key",
		"OTEL_BSP_SCHEDULE_DELAY=50")
	e.tgProcess = e.start(t)

	c := mcpClient(t, e.tgProcess, e.BotKey)
	req := mcpgo.CallToolRequest{}
	req.Params.Name = "crm_find_customer"
	req.Params.Arguments = map[string]any{"email": "ada@example.com"}
	req.Params.Meta = &mcpgo.Meta{AdditionalFields: map[string]any{"traceparent": callerTP, "tracestate": "rojo=00f067aa0ba902b7"}}
	res, err := c.CallTool(context.Background(), req)
	if err != nil || res.IsError {
		t.Fatalf("tools/call: %v %v", err, res)
	}
	spans := sink.wait(t, "tools/call crm_find_customer")
	call := root(t, spans, "tools/call crm_find_customer", "")
	if hex.EncodeToString(call.GetTraceId()) != callerTrace || hex.EncodeToString(call.GetParentSpanId()) != callerSpan || call.GetTraceState() != "rojo=00f067aa0ba902b7" {
		t.Errorf("tools/call span: trace %x parent %x state %q, want the _meta context", call.GetTraceId(), call.GetParentSpanId(), call.GetTraceState())
	}
	for k, v := range map[string]string{"mcp.method.name": "tools/call", "gen_ai.tool.name": "crm_find_customer", "gen_ai.operation.name": "execute_tool",
		"network.transport": "tcp", "toolgate.door": "mcp", "toolgate.run": "run-mcp"} {
		if got := attr(call, k); got != v {
			t.Errorf("tools/call span %s = %q, want %q", k, got, v)
		}
	}
	if !strings.HasPrefix(attr(call, "mcp.session.id"), "mcp-session-") || attr(call, "mcp.protocol.version") == "" {
		t.Errorf("tools/call span has no MCP session or protocol: %v", call.GetAttributes())
	}
	wantChildren(t, spans, call, []string{"toolgate.identify", "toolgate.policy", "toolgate.connector", "toolgate.mask", "toolgate.record"}, nil)
	raw := sink.allRaw()
	for _, s := range []string{"ada@example.com", "4242424242424242", "Ada Lovelace", e.BotKey} {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("the exported spans contain %q", s)
		}
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.headers[0] != "grpc-key" {
		t.Errorf("OTEL_EXPORTER_OTLP_HEADERS not sent: %v", sink.headers)
	}
}
