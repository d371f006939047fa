package door_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/toolgate/toolgate/broker/door"
)

// TestOriginsCheck: requests without Origin and from the public URL's or a
// configured origin (in any letter case, with or without the default
// port) are served; any other origin, "null", or several Origin headers
// get 403 forbidden naming the origin, and the handler never runs.
func TestOriginsCheck(t *testing.T) {
	o, err := door.NewOrigins("http://127.0.0.1:8080/", "https://Agents.Example.com:443", "http://[::1]:3000")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		origins []string
		served  bool
	}{
		{nil, true},
		{[]string{"http://127.0.0.1:8080"}, true},
		{[]string{"https://agents.example.com"}, true},
		{[]string{"HTTPS://AGENTS.EXAMPLE.COM:443"}, true},
		{[]string{"http://[::1]:3000"}, true},
		{[]string{"http://evil.example.com"}, false},
		{[]string{"null"}, false},
		{[]string{"http://127.0.0.1:8081"}, false},
		{[]string{"http://localhost:8080"}, false},
		{[]string{"https://127.0.0.1:8080"}, false},
		{[]string{"http://agents.example.com"}, false},
		{[]string{"https://agents.example.com.evil.example"}, false},
		{[]string{"http://127.0.0.1:8080/mcp"}, false},
		{[]string{"http://127.0.0.1:8080", "http://evil.example.com"}, false},
	} {
		ran := false
		h := o.Check(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran = true }))
		r := httptest.NewRequest("POST", "/mcp", nil)
		r.Host = "127.0.0.1:8080" // a rebinding page controls Host: never consulted
		for _, v := range c.origins {
			r.Header.Add("Origin", v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if ran != c.served {
			t.Errorf("Origin %v: served = %v, want %v", c.origins, ran, c.served)
		}
		if c.served {
			continue
		}
		var body door.ErrorBody
		if w.Code != http.StatusForbidden || json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Error.Code != "forbidden" || !strings.Contains(body.Error.Message, "allowed_origins") {
			t.Errorf("Origin %v: %d %s, want 403 forbidden", c.origins, w.Code, w.Body)
		}
	}
}

func TestNewOriginsRefusesNonOrigins(t *testing.T) {
	for _, s := range []string{"*", "null", "https://agents.example.com/app", "ftp://agents.example.com", "https://user@agents.example.com", "https://", "agents.example.com"} {
		if _, err := door.NewOrigins("http://127.0.0.1:8080", s); err == nil {
			t.Errorf("NewOrigins accepted %q", s)
		}
	}
}

// TestCapHeaders: a head over the cap is 431 headers_too_large and the
// handler never runs; one within it is served.
func TestCapHeaders(t *testing.T) {
	const max = 8 << 10
	for _, c := range []struct {
		pad    int
		served bool
	}{{1 << 10, true}, {max, false}, {200 << 10, false}} {
		ran := false
		h := door.CapHeaders(max, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran = true }))
		r := httptest.NewRequest("GET", "/v1/tools", nil)
		r.Header.Set("X-Pad", strings.Repeat("a", c.pad))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if ran != c.served {
			t.Errorf("pad %d: served = %v, want %v", c.pad, ran, c.served)
		}
		if !c.served && (w.Code != http.StatusRequestHeaderFieldsTooLarge || !strings.Contains(w.Body.String(), `"code":"headers_too_large"`)) {
			t.Errorf("pad %d: %d %s, want 431 headers_too_large", c.pad, w.Code, w.Body)
		}
	}
}
