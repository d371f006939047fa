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

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/httpapi"
	"github.com/toolgate/toolgate/broker/httpapi/doortest"
)

const fakeKey = "tgk_fake_new_key_do_not_echo_0123456789"

// fakeKeys is a KeyService where only key:alpha is an admin; it remembers
// what it was asked so refusals can prove it never was.
type fakeKeys struct {
	mu    sync.Mutex
	calls []string
	ttl   time.Duration
}

func (f *fakeKeys) call(what string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, what)
}

func admin(p broker.Principal) error {
	if p.Subject != "key:alpha" {
		return broker.Errorf(broker.CodeForbidden, "principal %s is not an admin", p.Subject)
	}
	return nil
}

func (f *fakeKeys) CreateKey(_ context.Context, p broker.Principal, req httpapi.KeyRequest) (string, broker.KeyInfo, error) {
	f.call("create")
	f.mu.Lock()
	f.ttl = req.ExpiresIn
	f.mu.Unlock()
	if err := admin(p); err != nil {
		return "", broker.KeyInfo{}, err
	}
	return fakeKey, broker.KeyInfo{Name: req.Name, Source: "api", Owner: req.Owner, Status: "active"}, nil
}

func (f *fakeKeys) Keys(_ context.Context, p broker.Principal) ([]broker.KeyInfo, error) {
	f.call("list")
	return []broker.KeyInfo{{Name: "a", Source: "api", Status: "active"}}, admin(p)
}

func (f *fakeKeys) RevokeKey(_ context.Context, p broker.Principal, name string) error {
	f.call("revoke " + name)
	return admin(p)
}

// TestKeysAPI: the admin makes (the key only in the 201), lists and revokes
// keys; bad requests are refused before the service is asked, and a
// non-admin gets the service's 403.
func TestKeysAPI(t *testing.T) {
	env := doortest.New(t)
	svc := &fakeKeys{}
	srv := httptest.NewServer(httpapi.NewKeys(env.Broker, svc, httpapi.Options{}))
	defer srv.Close()
	do := func(method, path, token, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, body := do("POST", "/v1/keys", doortest.TokenAlpha, `{"name":"k","owner":"user:ana@example.com","expires_in":"30d"}`)
	var created struct{ Name, Key, Owner string }
	if status != 201 || json.Unmarshal([]byte(body), &created) != nil || created.Key != fakeKey || svc.ttl != 30*24*time.Hour {
		t.Fatalf("create: %d %s (ttl %s)", status, body, svc.ttl)
	}
	if status, body = do("GET", "/v1/keys", doortest.TokenAlpha, ""); status != 200 || strings.Contains(body, fakeKey) {
		t.Fatalf("list: %d %s", status, body)
	}
	if status, _ = do("DELETE", "/v1/keys/k", doortest.TokenAlpha, ""); status != 204 {
		t.Fatalf("revoke: %d", status)
	}
	svc.calls = nil
	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
		code                            string
		asked                           bool
	}{
		{"no token", "POST", "/v1/keys", "", `{"name":"k","owner":"user:a@x"}`, 401, "unauthenticated", false},
		{"unknown field", "POST", "/v1/keys", doortest.TokenAlpha, `{"name":"k","owner":"user:a@x","key":"tgk_chosen"}`, 400, "invalid_request", false},
		{"not JSON", "POST", "/v1/keys", doortest.TokenAlpha, `{`, 400, "invalid_request", false},
		{"bad expires_in", "POST", "/v1/keys", doortest.TokenAlpha, `{"name":"k","owner":"user:a@x","expires_in":"soon"}`, 400, "invalid_arguments", false},
		{"negative expires_in", "POST", "/v1/keys", doortest.TokenAlpha, `{"name":"k","owner":"user:a@x","expires_in":-5}`, 400, "invalid_arguments", false},
		{"not an admin: create", "POST", "/v1/keys", doortest.TokenBeta, `{"name":"k","owner":"user:a@x"}`, 403, "forbidden", true},
		{"not an admin: list", "GET", "/v1/keys", doortest.TokenBeta, "", 403, "forbidden", true},
		{"not an admin: revoke", "DELETE", "/v1/keys/k", doortest.TokenBeta, "", 403, "forbidden", true},
		{"wrong method", "PUT", "/v1/keys/k", doortest.TokenAlpha, "", 405, "invalid_request", false},
	} {
		svc.calls = nil
		status, body := do(tc.method, tc.path, tc.token, tc.body)
		if status != tc.status || !strings.Contains(body, `"code":"`+tc.code+`"`) {
			t.Errorf("%s: %d %s", tc.name, status, body)
		}
		if asked := len(svc.calls) > 0; asked != tc.asked {
			t.Errorf("%s: service asked = %v", tc.name, asked)
		}
	}
}
