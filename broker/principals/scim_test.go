package principals

import (
	"context"
	"testing"

	"github.com/toolgate/toolgate/broker"
)

// TestSCIMUsers: a SCIM user maps to user:<userName> and user:<email>;
// deactivating it disables both at once, reactivating enables them,
// deleting it disables them until an admin enables them.
func TestSCIMUsers(t *testing.T) {
	e := newEnv(t, openDB(t))
	ctx := context.Background()
	u, err := e.svc.CreateUser(ctx, SCIMUser{UserName: "Ana.Lima@Example.com", Emails: []string{"ana@example.com"}, Active: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Principals) != 2 || u.Principals[0] != "user:ana.lima@example.com" || u.Principals[1] != "user:ana@example.com" {
		t.Fatalf("principals: %v", u.Principals)
	}
	if e.svc.Disabled("user:ana@example.com") {
		t.Fatal("an active user is disabled")
	}
	u.Active = false
	if _, err := e.svc.ReplaceUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if !e.svc.Disabled("user:ana@example.com") || !e.svc.Disabled("user:ana.lima@example.com") {
		t.Fatal("deactivation did not disable the user's names")
	}
	if err := e.svc.Check(caller(agent, "")); broker.CodeOf(err) != broker.CodeOwnerDisabled {
		t.Fatalf("the user's key: %v", err)
	}
	evs := e.rec.OfKind(broker.EventPrincipalDisabled)
	if len(evs) != 2 || evs[0].Principal != "scim" || evs[0].Detail["source"] != "scim" {
		t.Fatalf("principal_disabled: %+v", evs)
	}
	u.Active = true
	if _, err := e.svc.ReplaceUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if e.svc.Disabled("user:ana@example.com") {
		t.Fatal("reactivation did not enable")
	}
	if err := e.svc.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if !e.svc.Disabled("user:ana@example.com") {
		t.Fatal("deleting the user did not disable it")
	}
	if _, err := e.svc.User(ctx, u.ID); broker.CodeOf(err) != broker.CodeNotFound {
		t.Fatalf("deleted user: %v", err)
	}
	if _, err := e.svc.Enable(ctx, adminP, "user:ana@example.com"); err != nil {
		t.Fatal(err)
	}
	if e.svc.Disabled("user:ana@example.com") || !e.svc.Disabled("user:ana.lima@example.com") {
		t.Fatal("an admin enable should clear exactly the name it names")
	}
	if _, err := e.svc.CreateUser(ctx, SCIMUser{UserName: "bo@example.com", Active: false}); err != nil {
		t.Fatal(err)
	}
	if !e.svc.Disabled("user:bo@example.com") {
		t.Fatal("a user provisioned inactive is not disabled")
	}
	if _, err := e.svc.CreateUser(ctx, SCIMUser{UserName: "BO@example.com", Active: true}); broker.CodeOf(err) != broker.CodeInvalidArguments {
		t.Fatalf("duplicate userName: %v", err)
	}
	if _, err := e.svc.FindUsers(ctx, "title", "x"); broker.CodeOf(err) != broker.CodeInvalidRequest {
		t.Fatalf("filter on an unknown attribute: %v", err)
	}
}
