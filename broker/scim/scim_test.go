package scim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/toolgate/toolgate/broker"
)

const token = "scim-token-0123456789abcdefghijklmnop"

// directory is an in-memory Directory that keeps every activation change.
type directory struct {
	mu      sync.Mutex
	users   map[string]User
	next    int
	changes []string // "<userName> active=<bool>"
}

func (d *directory) CreateUser(_ context.Context, u User) (User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, o := range d.users {
		if strings.EqualFold(o.UserName, u.UserName) {
			return User{}, &broker.Error{Code: broker.CodeInvalidArguments, Field: "userName", Message: "a user with userName " + u.UserName + " exists"}
		}
	}
	d.next++
	u.ID = fmt.Sprintf("u-%d", d.next)
	d.users[u.ID] = u
	d.changes = append(d.changes, fmt.Sprintf("%s active=%v", u.UserName, u.Active))
	return u, nil
}

func (d *directory) User(_ context.Context, id string) (User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.users[id]
	if !ok {
		return User{}, broker.Errorf(broker.CodeNotFound, "no user %q", id)
	}
	return u, nil
}

func (d *directory) FindUsers(_ context.Context, attr, value string) ([]User, error) {
	if !strings.EqualFold(attr, "userName") {
		return nil, &broker.Error{Code: broker.CodeInvalidRequest, Field: "filter", Message: "unsupported"}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []User
	for _, u := range d.users {
		if strings.EqualFold(u.UserName, value) {
			out = append(out, u)
		}
	}
	return out, nil
}

func (d *directory) Users(_ context.Context, offset, limit int) ([]User, int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []User
	for i := 1; i <= d.next; i++ {
		if u, ok := d.users[fmt.Sprintf("u-%d", i)]; ok {
			out = append(out, u)
		}
	}
	total := len(out)
	return page(out, offset, limit), total, nil
}

func (d *directory) ReplaceUser(_ context.Context, u User) (User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	old, ok := d.users[u.ID]
	if !ok {
		return User{}, broker.Errorf(broker.CodeNotFound, "no user %q", u.ID)
	}
	if old.Active != u.Active {
		d.changes = append(d.changes, fmt.Sprintf("%s active=%v", u.UserName, u.Active))
	}
	d.users[u.ID] = u
	return u, nil
}

func (d *directory) DeleteUser(_ context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.users[id]
	if !ok {
		return broker.Errorf(broker.CodeNotFound, "no user %q", id)
	}
	d.changes = append(d.changes, u.UserName+" deleted")
	delete(d.users, id)
	return nil
}

func newServer(t *testing.T) (*httptest.Server, *directory) {
	t.Helper()
	d := &directory{users: map[string]User{}}
	h, err := New(d, Options{Token: token, BaseURL: "https://tg.example.com/scim/v2"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, d
}

func do(t *testing.T, srv *httptest.Server, method, path, body, tok string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s %s: not JSON: %s", method, path, b)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/scim+json" {
			t.Fatalf("%s %s: content type %q", method, path, ct)
		}
	}
	return resp.StatusCode, out
}

// TestOktaProvisioning follows Okta's SCIM 2.0 flow: look the user up by
// userName, create it, then deactivate it with a PATCH whose value is
// {"active": false}.
func TestOktaProvisioning(t *testing.T) {
	srv, d := newServer(t)
	status, list := do(t, srv, "GET", `/scim/v2/Users?filter=userName%20eq%20%22ana%40example.com%22&startIndex=1&count=100`, "", token)
	if status != 200 || list["totalResults"] != float64(0) {
		t.Fatalf("lookup: %d %v", status, list)
	}
	status, u := do(t, srv, "POST", "/scim/v2/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
		"userName":"ana@example.com","name":{"givenName":"Ana","familyName":"Lima"},
		"emails":[{"primary":true,"value":"ana@example.com","type":"work"}],"active":true,"password":"ignored","groups":[]}`, token)
	if status != 201 || u["id"] == "" || u["active"] != true || u["displayName"] != "Ana Lima" {
		t.Fatalf("create: %d %v", status, u)
	}
	id := u["id"].(string)
	if status, list = do(t, srv, "GET", `/scim/v2/Users?filter=userName+eq+%22ANA%40example.com%22`, "", token); status != 200 || list["totalResults"] != float64(1) {
		t.Fatalf("lookup after create: %d %v", status, list)
	}
	status, u = do(t, srv, "PATCH", "/scim/v2/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations":[{"op":"replace","value":{"active":false}}]}`, token)
	if status != 200 || u["active"] != false {
		t.Fatalf("deactivate: %d %v", status, u)
	}
	if want := []string{"ana@example.com active=true", "ana@example.com active=false"}; strings.Join(d.changes, "|") != strings.Join(want, "|") {
		t.Fatalf("changes: %v", d.changes)
	}
	if status, _ = do(t, srv, "POST", "/scim/v2/Users", `{"userName":"ana@example.com","active":true}`, token); status != 409 {
		t.Fatalf("duplicate userName: %d", status)
	}
}

// TestEntraProvisioning follows Entra ID's flow: a PATCH with capitalised
// ops and "False" as a string, a PUT, then a DELETE.
func TestEntraProvisioning(t *testing.T) {
	srv, d := newServer(t)
	_, u := do(t, srv, "POST", "/scim/v2/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
		"externalId":"bo","userName":"bo@contoso.com","active":true,"displayName":"Bo",
		"emails":[{"primary":true,"type":"work","value":"bo@contoso.com"}],
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Agents"}}`, token)
	id, _ := u["id"].(string)
	status, u := do(t, srv, "PATCH", "/scim/v2/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations":[{"op":"Replace","path":"active","value":"False"},{"op":"Add","path":"emails[type eq \"work\"].value","value":"bo.new@contoso.com"},{"op":"Replace","path":"name.familyName","value":"X"}]}`, token)
	if status != 200 || u["active"] != false {
		t.Fatalf("Entra deactivate: %d %v", status, u)
	}
	if emails := d.users[id].Emails; len(emails) != 1 || emails[0] != "bo.new@contoso.com" {
		t.Fatalf("emails: %v", emails)
	}
	status, u = do(t, srv, "PUT", "/scim/v2/Users/"+id, `{"userName":"bo@contoso.com","active":true,"emails":[{"value":"bo@contoso.com"}]}`, token)
	if status != 200 || u["active"] != true {
		t.Fatalf("PUT reactivate: %d %v", status, u)
	}
	status, u = do(t, srv, "PATCH", "/scim/v2/Users/"+id, `{"Operations":[{"op":"replace","path":"active","value":false}]}`, token)
	if status != 200 || u["active"] != false {
		t.Fatalf("path=active bool: %d %v", status, u)
	}
	if status, _ = do(t, srv, "DELETE", "/scim/v2/Users/"+id, "", token); status != 204 {
		t.Fatalf("delete: %d", status)
	}
	want := "bo@contoso.com active=true|bo@contoso.com active=false|bo@contoso.com active=true|bo@contoso.com active=false|bo@contoso.com deleted"
	if got := strings.Join(d.changes, "|"); got != want {
		t.Fatalf("changes:\n%s\nwant\n%s", got, want)
	}
}

// TestSCIMRefusals: no token, a wrong token, a toolgate key, bad filters,
// bad bodies and unknown users are refused with SCIM errors, and nothing
// changes.
func TestSCIMRefusals(t *testing.T) {
	srv, d := newServer(t)
	_, u := do(t, srv, "POST", "/scim/v2/Users", `{"userName":"ana@example.com","active":true}`, token)
	id := u["id"].(string)
	for _, tc := range []struct {
		name, method, path, body, tok string
		status                        int
		scimType                      string
	}{
		{"no token", "PATCH", "/scim/v2/Users/" + id, `{"Operations":[{"op":"replace","path":"active","value":false}]}`, "", 401, ""},
		{"wrong token", "PATCH", "/scim/v2/Users/" + id, `{"Operations":[{"op":"replace","path":"active","value":false}]}`, token + "x", 401, ""},
		{"a toolgate key", "GET", "/scim/v2/Users", "", "tgk_0123456789abcdefghijklmnopqrstuvwxyzABCD", 401, ""},
		{"unsupported filter", "GET", "/scim/v2/Users?filter=userName%20sw%20%22a%22", "", token, 400, "invalidFilter"},
		{"filter on another attribute", "GET", "/scim/v2/Users?filter=title%20eq%20%22x%22", "", token, 400, "invalidFilter"},
		{"active is not a boolean", "PATCH", "/scim/v2/Users/" + id, `{"Operations":[{"op":"replace","path":"active","value":"nope"}]}`, token, 400, "invalidValue"},
		{"unknown op", "PATCH", "/scim/v2/Users/" + id, `{"Operations":[{"op":"move","path":"active","value":false}]}`, token, 400, "invalidValue"},
		{"no operations", "PATCH", "/scim/v2/Users/" + id, `{"Operations":[]}`, token, 400, "invalidValue"},
		{"not JSON", "PATCH", "/scim/v2/Users/" + id, `{`, token, 400, "invalidSyntax"},
		{"no userName", "POST", "/scim/v2/Users", `{"active":false}`, token, 400, "invalidValue"},
		{"unknown user", "PATCH", "/scim/v2/Users/nope", `{"Operations":[{"op":"replace","path":"active","value":false}]}`, token, 404, ""},
		{"groups are not served", "GET", "/scim/v2/Groups", "", token, 404, ""},
		{"body too large", "POST", "/scim/v2/Users", `{"userName":"x","displayName":"` + strings.Repeat("a", 70<<10) + `"}`, token, 413, ""},
	} {
		status, out := do(t, srv, tc.method, tc.path, tc.body, tc.tok)
		if status != tc.status || (tc.scimType != "" && out["scimType"] != tc.scimType) || out["status"] != fmt.Sprint(tc.status) {
			t.Errorf("%s: %d %v, want %d %s", tc.name, status, out, tc.status, tc.scimType)
		}
		if tc.tok != "" && strings.Contains(fmt.Sprint(out), tc.tok) {
			t.Errorf("%s: the answer echoes the token", tc.name)
		}
	}
	if len(d.changes) != 1 || !d.users[id].Active {
		t.Fatalf("a refusal changed something: %v", d.changes)
	}
	if _, err := New(d, Options{Token: "short"}); err == nil {
		t.Error("a short token was accepted")
	}
}
