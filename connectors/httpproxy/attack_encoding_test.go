package httpproxy_test

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/toolgate/toolgate/broker"
)

// utf16LE spells s in UTF-16LE, as a target answering Accept-Charset:
// utf-16 does: every ASCII character followed by a NUL byte.
func utf16LE(s string, bom bool) []byte {
	var out []byte
	if bom {
		out = append(out, 0xff, 0xfe)
	}
	for _, c := range utf16.Encode([]rune(s)) {
		out = binary.LittleEndian.AppendUint16(out, c)
	}
	return out
}

// TestAttackHTTPProxyCharsetHidesCard: a target that answers in a charset
// where digits are not ASCII bytes (UTF-16, UTF-7, EBCDIC; an agent can
// ask for one with Accept-Charset) hands the client a card the detectors
// never saw: "4\x002\x00…" has no run of digits, yet the client decodes it
// to 4242…. Such bodies are withheld with 502 target_error; the same card
// in UTF-8 or Latin-1 is masked as before.
func TestAttackHTTPProxyCharsetHidesCard(t *testing.T) {
	bodies := map[string]struct {
		ct   string
		body []byte
	}{
		"utf16-text":     {"text/plain; charset=utf-16le", utf16LE("card "+cardA, false)},
		"utf16-json":     {"application/json; charset=UTF-16", utf16LE(`{"card":"`+cardA+`"}`, true)},
		"utf16-bom-json": {"application/json", utf16LE(`{"card":"`+cardA+`"}`, true)},
		"utf16-untyped":  {"", utf16LE("card "+cardA, true)},
		"utf32-xml":      {"application/xml; charset=utf-32", []byte("<c>4\x00\x00\x002\x00\x00\x00</c>")},
		"utf7-text":      {"text/plain; charset=utf-7", []byte("+ADQAMgA0ADIANAAyADQAMgA0ADIANAAyADQAMgA0ADI-")},
		"ebcdic-text":    {"text/csv; charset=cp037", []byte{0xf4, 0xf2, 0xf4, 0xf2, 0xf4, 0xf2, 0xf4, 0xf2, 0xf4, 0xf2, 0xf4, 0xf2, 0xf4, 0xf2, 0xf4, 0xf2}},
		"utf8-text":      {"text/plain; charset=UTF-8", []byte("card " + cardA)},
		"latin1-text":    {"text/plain; charset=ISO-8859-1", []byte("card " + cardA + " \xe9")},
	}
	srv, key, _ := setupWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := bodies[strings.TrimPrefix(r.URL.Path, "/v1/invoices/")]
		w.Header()["Content-Type"] = []string{b.ct}
		_, _ = w.Write(b.body)
	}), []string{"image/*"})
	for name, b := range bodies {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+"/proxy/billing/v1/invoices/"+name, nil)
			req.Header.Set("Accept-Charset", "utf-16")
			status, code, body, _ := call(t, srv.URL, key, req)
			if strings.HasPrefix(name, "utf8") || strings.HasPrefix(name, "latin1") {
				if status != 200 || !bytes.Contains(body, []byte("************4242")) {
					t.Fatalf("ASCII-compatible text: %d %q", status, body)
				}
				return
			}
			if status != 502 || code != string(broker.CodeTargetError) {
				t.Fatalf("status %d code %q, want 502 target_error: %q (sent %q)", status, code, body, b.body)
			}
			if bytes.Contains(body, b.body[:8]) || bytes.Contains(bytes.ReplaceAll(body, []byte{0}, nil), []byte(cardA)) {
				t.Fatalf("refusal carries the body: %q", body)
			}
		})
	}
}

// TestAttackHTTPProxyServletDotSegment: servlet containers drop a
// segment's ";parameters" before resolving dot segments, so
// /v1/invoices/..;/admin reaches /v1/admin on Tomcat while policy matched
// /v1/invoices/* on the literal segment "..;". Such paths are refused with
// 400 invalid_request before policy, and the target sees nothing.
func TestAttackHTTPProxyServletDotSegment(t *testing.T) {
	var seen hits
	srv, key, _ := setupWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen.add(r) }), nil)
	for _, p := range []string{"..;", "..;jsessionid=1", ".;", "%2e%2e;x", "..%3bx", "7/..;"} {
		req, _ := http.NewRequest("GET", srv.URL+"/proxy/billing/v1/invoices/"+p, nil)
		status, code, body, _ := call(t, srv.URL, key, req)
		if status != 400 || code != string(broker.CodeInvalidRequest) {
			t.Errorf("%s: status %d code %q, want 400 invalid_request: %s", p, status, code, body)
		}
	}
	if got := seen.list(); len(got) != 0 {
		t.Fatalf("the target saw %v", got)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/proxy/billing/v1/invoices/7;v=2", nil)
	if status, _, body, _ := call(t, srv.URL, key, req); status != 200 || len(seen.list()) != 1 {
		t.Fatalf("a plain ;parameter: %d %s", status, body)
	}
}

// TestAttackHTTPProxyJSONMethodField: Laravel reads the members of a JSON
// body as its form fields, so a POST allowed by policy whose JSON body
// says {"_method": "DELETE"} is routed as a DELETE. Such a body (any
// JSON media type, the member in any case or \u-escaped) is refused with
// 400 invalid_request and the target sees nothing; "_method" nested
// deeper, or in a body that is not JSON, is not a field and passes.
func TestAttackHTTPProxyJSONMethodField(t *testing.T) {
	var seen hits
	srv, key, _ := setupWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen.add(r) }), nil)
	post := func(ct, body string) *http.Request {
		r, _ := http.NewRequest("POST", srv.URL+"/proxy/billing/v1/invoices/7", strings.NewReader(body))
		r.Header.Set("Content-Type", ct)
		return r
	}
	for _, req := range []*http.Request{
		post("application/json", `{"amount": 5, "_method": "DELETE"}`),
		post("application/json; charset=utf-8", `{"_METHOD": "delete"}`),
		post("application/vnd.api+json", `{"\u005fmethod": "DELETE"}`),
		post("text/json", `{"_method": "PUT"}`),
	} {
		status, code, body, _ := call(t, srv.URL, key, req)
		if status != 400 || code != string(broker.CodeInvalidRequest) || !strings.Contains(string(body), "_method") {
			t.Errorf("status %d code %q, want 400 invalid_request naming _method: %s", status, code, body)
		}
	}
	if got := seen.list(); len(got) != 0 {
		t.Fatalf("the target saw %v", got)
	}
	for _, req := range []*http.Request{
		post("application/json", `{"order": {"_method": "x"}, "amount": 5}`),
		post("application/json", `["_method"]`),
		post("text/plain", `{"_method": "DELETE"}`),
	} {
		if status, _, body, _ := call(t, srv.URL, key, req); status != 200 {
			t.Errorf("a body without a _method field: %d %s", status, body)
		}
	}
	if got := seen.list(); len(got) != 3 {
		t.Fatalf("the target saw %v", got)
	}
}
