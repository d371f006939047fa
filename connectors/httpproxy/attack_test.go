package httpproxy_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/toolgate/toolgate/broker"
)

const (
	cardA = "4242424242424242"
	cardB = "4111111111111111"
)

// hits counts and remembers what reached a test target.
type hits struct {
	mu   sync.Mutex
	reqs []string // "METHOD path"
}

func (h *hits) add(r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reqs = append(h.reqs, r.Method+" "+r.URL.Path)
}

func (h *hits) list() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.reqs...)
}

// call sends an authenticated request through the proxy and returns the
// status, the error code of a refusal, the body and the headers.
func call(t *testing.T, srv, key string, req *http.Request) (int, string, []byte, http.Header) {
	t.Helper()
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("X-Toolgate-Graph", "g")
	req.Header.Set("X-Toolgate-Node", "n")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return resp.StatusCode, e.Error.Code, body, resp.Header
}

// TestHTTPProxyRefusesOverrides: method and path override headers (any
// case, underscores for dashes), a _method query parameter or form field,
// and an encoded request body are refused with 400 invalid_request before
// policy runs: the target sees nothing and nothing is recorded as run.
func TestHTTPProxyRefusesOverrides(t *testing.T) {
	var seen hits
	srv, key, rec := setupWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen.add(r) }), nil)
	url := srv.URL + "/proxy/billing/v1/invoices/7"
	form := func(ct, body string) *http.Request {
		r, _ := http.NewRequest("POST", url, strings.NewReader(body))
		r.Header.Set("Content-Type", ct)
		return r
	}
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("amount", "5")
	_ = mw.WriteField("_METHOD", "DELETE")
	_ = mw.Close()
	cases := map[string]*http.Request{}
	for _, h := range []string{"X-HTTP-Method-Override", "x-method-override", "X-Http-Method", "X_HTTP_Method_Override", "X-Original-URL", "X-Rewrite-Url"} {
		r, _ := http.NewRequest("GET", url, nil)
		r.Header[h] = []string{"DELETE"}
		cases["header "+h] = r
	}
	for _, q := range []string{"_method=DELETE", "a=1&_METHOD=put", "%5Fmethod=delete", "x=1;_method=delete"} {
		r, _ := http.NewRequest("GET", url+"?"+q, nil)
		cases["query "+q] = r
	}
	cases["urlencoded form"] = form("application/x-www-form-urlencoded", "amount=5&_method=DELETE")
	cases["multipart form"] = form(mw.FormDataContentType(), mp.String())
	gz := form("application/json", `{"a":1}`)
	gz.Header.Set("Content-Encoding", "gzip")
	cases["encoded request body"] = gz
	for name, req := range cases {
		t.Run(name, func(t *testing.T) {
			status, code, body, _ := call(t, srv.URL, key, req)
			if status != 400 || code != string(broker.CodeInvalidRequest) {
				t.Fatalf("status %d code %q, want 400 invalid_request: %s", status, code, body)
			}
		})
	}
	if got := seen.list(); len(got) != 0 {
		t.Fatalf("refused requests reached the target: %v", got)
	}
	for _, ev := range rec.OfKind(broker.EventStatement) {
		if ev.Status == broker.StatusOK {
			t.Fatalf("a refused request was recorded as run: %+v", ev)
		}
	}
	// The same requests without the override pass.
	ok, _ := http.NewRequest("GET", url+"?method=x", nil)
	if status, _, body, _ := call(t, srv.URL, key, ok); status != 200 || len(seen.list()) != 1 {
		t.Fatalf("plain request: %d %s, hits %v", status, body, seen.list())
	}
	plainForm := form("application/x-www-form-urlencoded", "amount=5&method=x")
	if status, _, body, _ := call(t, srv.URL, key, plainForm); status != 200 || len(seen.list()) != 2 {
		t.Fatalf("plain form: %d %s, hits %v", status, body, seen.list())
	}
}

// TestHTTPProxyMasksHeaders: a card in Location or a custom header is
// masked, a header whose name holds one is dropped.
func TestHTTPProxyMasksHeaders(t *testing.T) {
	srv, key, _ := setupWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "/v1/cards/"+cardA+"?next=1")
		w.Header().Set("X-Card", "card 4111 1111 1111 1111 on file")
		w.Header().Set("X-"+cardB, "1")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusFound)
		_, _ = w.Write([]byte(`{}`))
	}), nil)
	req, _ := http.NewRequest("GET", srv.URL+"/proxy/billing/v1/invoices/7", nil)
	status, _, _, hdr := call(t, srv.URL, key, req)
	if status != http.StatusFound {
		t.Fatalf("status %d", status)
	}
	if loc := hdr.Get("Location"); loc != "/v1/cards/************4242?next=1" {
		t.Errorf("Location = %q", loc)
	}
	if c := hdr.Get("X-Card"); c != "card ************1111 on file" {
		t.Errorf("X-Card = %q", c)
	}
	for k, vs := range hdr {
		if strings.Contains(k+strings.Join(vs, ","), cardB) || strings.Contains(k+strings.Join(vs, ","), cardA) {
			t.Errorf("header %s: %v leaks a card", k, vs)
		}
	}
}

// encoded compresses s with gzip, zlib (deflate as RFC 9110 means it) or
// raw deflate.
func encoded(kind, s string) []byte {
	var b bytes.Buffer
	var w io.WriteCloser
	switch kind {
	case "gzip":
		w = gzip.NewWriter(&b)
	case "zlib":
		w = zlib.NewWriter(&b)
	default:
		w, _ = flate.NewWriter(&b, flate.BestSpeed)
	}
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.Bytes()
}

// TestHTTPProxyContentEncodings: an encoded response is decoded before it
// is masked (gzip, x-gzip, deflate either way, stacked codings), one
// toolgate cannot decode or that decodes past the size cap is withheld
// with 502 target_error, and no encoded body passes with its header
// stripped.
func TestHTTPProxyContentEncodings(t *testing.T) {
	doc := `{"card":"` + cardA + `","note":"x` + cardB + `"}`
	bomb := string(bytes.Repeat([]byte("0"), 11<<20))
	bodies := map[string]struct {
		coding string
		body   []byte
	}{
		"/gzip":      {"gzip", encoded("gzip", doc)},
		"/x-gzip":    {"x-gzip", encoded("gzip", doc)},
		"/deflate":   {"deflate", encoded("zlib", doc)},
		"/rawdeflat": {"deflate", encoded("flate", doc)},
		"/stacked":   {"gzip, deflate", encoded("zlib", string(encoded("gzip", doc)))},
		"/text":      {"deflate", encoded("zlib", "card "+cardA)},
		"/br":        {"br", []byte("\x1b\x00\x00not really brotli " + cardA)},
		"/zstd":      {"zstd", []byte(doc)},
		"/bomb":      {"deflate", encoded("zlib", bomb)},
		"/corrupt":   {"gzip, deflate", []byte("not deflate " + cardA)},
		"/empty":     {"deflate", nil},
	}
	srv, key, _ := setupWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := bodies[strings.TrimPrefix(r.URL.Path, "/v1/invoices")]
		if b.coding == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Encoding", b.coding)
		if r.URL.Path != "/v1/invoices/text" {
			w.Header().Set("Content-Type", "application/json")
		}
		if b.body == nil {
			w.WriteHeader(http.StatusNoContent)
		}
		_, _ = w.Write(b.body)
	}), nil)
	empty, _ := http.NewRequest("GET", srv.URL+"/proxy/billing/v1/invoices/empty", nil)
	if status, _, body, _ := call(t, srv.URL, key, empty); status != http.StatusNoContent {
		t.Fatalf("an encoded response without a body: %d %s", status, body)
	}
	for path, want := range map[string]int{"/gzip": 200, "/x-gzip": 200, "/deflate": 200, "/rawdeflat": 200, "/stacked": 200,
		"/text": 200, "/br": 502, "/zstd": 502, "/bomb": 502, "/corrupt": 502} {
		t.Run(path, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+"/proxy/billing/v1/invoices"+path, nil)
			status, code, body, hdr := call(t, srv.URL, key, req)
			if status != want {
				t.Fatalf("status %d, want %d: %.200s", status, want, body)
			}
			if bytes.Contains(body, []byte(cardA)) || bytes.Contains(body, []byte(cardB)) {
				t.Fatalf("body leaks a card: %s", body)
			}
			if want == 502 {
				if code != string(broker.CodeTargetError) {
					t.Fatalf("code %q, want target_error: %s", code, body)
				}
				return
			}
			if hdr.Get("Content-Encoding") != "" || !bytes.Contains(body, []byte("************4242")) {
				t.Fatalf("not decoded and masked: %v %s", hdr, body)
			}
		})
	}
}

// pngBytes is the start of a PNG file: binary, not text.
var pngBytes = append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"), bytes.Repeat([]byte{0xff, 0x00, 0x9c}, 200)...)

// TestHTTPProxyBinaryTypes: a body toolgate cannot mask passes only when
// the route declares its content type; a declared type whose body sniffs
// as text or JSON is masked instead.
func TestHTTPProxyBinaryTypes(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/invoices/png":
			w.Header().Set("Content-Type", "image/png")
			_, _ = w.Write(pngBytes)
		case "/v1/invoices/fake-png":
			w.Header().Set("Content-Type", "image/png")
			_, _ = w.Write([]byte(`{"card":"` + cardA + `"}`))
		case "/v1/invoices/pdf":
			w.Header().Set("Content-Type", "application/pdf")
			_, _ = w.Write(append([]byte("%PDF-1.7\n"), pngBytes[8:]...))
		case "/v1/invoices/octet-text":
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write([]byte("id,card\n1," + cardA + "\n"))
		case "/v1/invoices/untyped":
			w.Header()["Content-Type"] = nil
			_, _ = w.Write(pngBytes)
		}
	})
	for _, tc := range []struct {
		name  string
		pass  []string
		path  string
		want  int
		exact []byte // the body must be exactly this
	}{
		{"png undeclared", nil, "png", 502, nil},
		{"png declared", []string{"image/png"}, "png", 200, pngBytes},
		{"png declared by type", []string{"image/*"}, "png", 200, pngBytes},
		{"json labelled as a declared type", []string{"image/*"}, "fake-png", 200, []byte(`{"card":"************4242"}`)},
		{"pdf undeclared", []string{"image/*"}, "pdf", 502, nil},
		{"text labelled binary", nil, "octet-text", 200, []byte("id,card\n1,************4242\n")},
		{"binary without a type", []string{"image/png"}, "untyped", 502, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, key, _ := setupWith(t, handler, tc.pass)
			req, _ := http.NewRequest("GET", srv.URL+"/proxy/billing/v1/invoices/"+tc.path, nil)
			status, code, body, _ := call(t, srv.URL, key, req)
			if status != tc.want {
				t.Fatalf("status %d, want %d: %.200q", status, tc.want, body)
			}
			if tc.want == 502 {
				if code != string(broker.CodeTargetError) || !strings.Contains(string(body), "pass_content_types") {
					t.Fatalf("refusal %q: %s", code, body)
				}
				return
			}
			if !bytes.Equal(body, tc.exact) {
				t.Fatalf("body %.200q, want %.200q", body, tc.exact)
			}
		})
	}
}

// TestHTTPProxyRequestFraming: a request that frames its body two ways
// (Content-Length and Transfer-Encoding) or hides a second request in its
// body never gets a request past policy to the target.
func TestHTTPProxyRequestFraming(t *testing.T) {
	var seen hits
	srv, key, _ := setupWith(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		seen.add(r)
	}), nil)
	smuggled := "GET /proxy/billing/v1/admin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key + "\r\nX-Toolgate-Graph: g\r\nX-Toolgate-Node: n\r\n\r\n"
	head := "POST /proxy/billing/v1/invoices/7 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key + "\r\nX-Toolgate-Graph: g\r\nX-Toolgate-Node: n\r\n"
	for name, raw := range map[string]string{
		"cl and te":     head + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
		"te gzip":       head + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + smuggled,
		"two lengths":   head + "Content-Length: 0\r\nContent-Length: 120\r\n\r\n" + smuggled,
		"te obfuscated": head + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + smuggled,
	} {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprint(c, raw)
			br := bufio.NewReader(c)
			for i := 0; i < 2; i++ {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					break
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if i == 1 && resp.StatusCode != 403 {
					t.Errorf("the smuggled request was answered %d, want 403 from policy", resp.StatusCode)
				}
			}
			for _, h := range seen.list() {
				if h != "POST /v1/invoices/7" {
					t.Fatalf("target saw %q", h)
				}
			}
		})
	}
}
