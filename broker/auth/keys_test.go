package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
)

var (
	admin    = broker.Principal{Subject: "user:admin@example.com", Method: broker.AuthOIDC, Email: "admin@example.com"}
	admins   = []string{"user:admin@example.com"}
	ownerAna = "user:ana@example.com"
)

// keysEnv is the key service and an Authenticator on one store, with a
// clock the test moves and a recorder that keeps what it got.
type keysEnv struct {
	clk   *clock
	store *SQLKeyStore
	keys  *Keys
	auth  *Authenticator
	usage *Usage

	mu       sync.Mutex
	events   []broker.Event
	disabled map[string]bool
}

func newKeysEnv(t *testing.T, store *SQLKeyStore) *keysEnv {
	t.Helper()
	e := &keysEnv{clk: &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}, store: store, disabled: map[string]bool{}}
	configured := []APIKey{{Name: "cfg", SHA256: HashKey("tgk_configured"), Owner: ownerAna, Expires: e.clk.Now().Add(48 * time.Hour)}}
	var err error
	e.keys, err = NewKeys(KeysConfig{Store: store, Configured: configured, Admins: admins, MaxTTL: 30 * 24 * time.Hour,
		Disabled: func(p string) bool { e.mu.Lock(); defer e.mu.Unlock(); return e.disabled[p] },
		Usage:    store.LastUsed, Recorder: broker.RecorderFunc(e.record), Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.usage = NewUsage(store, time.Minute, nil)
	e.auth, err = New(Config{APIKeys: configured, Keys: store, Usage: e.usage, Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *keysEnv) record(_ context.Context, ev broker.Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, ev)
	return nil
}

func keyStores(t *testing.T) map[string]*SQLKeyStore {
	out := map[string]*SQLKeyStore{}
	for flavour, d := range storeDBs(t) {
		s, err := NewSQLKeyStore(d)
		if err != nil {
			t.Fatal(err)
		}
		out[flavour] = s
	}
	return out
}

// TestKeysLifecycle: an admin makes an owned, expiring key that works at
// once as key:<name>, is capped at the maximum lifetime, stops at its
// expiry (the test's clock) and on revocation, and is recorded without
// the key.
func TestKeysLifecycle(t *testing.T) {
	for flavour, store := range keyStores(t) {
		t.Run(flavour, func(t *testing.T) {
			e := newKeysEnv(t, store)
			ctx := context.Background()
			k, err := e.keys.Create(ctx, admin, KeyRequest{Name: "agent-1", Owner: "user:Ana@Example.com", ExpiresIn: 365 * 24 * time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(k.Key, APIKeyPrefix) || k.Info.Owner != ownerAna || k.Info.CreatedBy != "user:admin@example.com" ||
				!k.Info.ExpiresAt.Equal(e.clk.Now().Add(30*24*time.Hour)) || k.Info.Status != "active" {
				t.Fatalf("created: %+v", k.Info)
			}
			p, _, err := e.auth.Authenticate(ctx, k.Key)
			if err != nil || p.Subject != "key:agent-1" || p.Method != broker.AuthAPIKey {
				t.Fatalf("authenticate: %+v %v", p, err)
			}
			if len(e.events) != 1 || e.events[0].Kind != broker.EventKeyCreated || strings.Contains(strings.Join(eventText(e.events), " "), k.Key) {
				t.Fatalf("events: %+v", e.events)
			}

			e.clk.Add(30*24*time.Hour - time.Second)
			if _, _, err := e.auth.Authenticate(ctx, k.Key); err != nil {
				t.Fatalf("a second before expiry: %v", err)
			}
			e.clk.Add(time.Second)
			if _, _, err := e.auth.Authenticate(ctx, k.Key); !errors.Is(err, broker.ErrUnauthenticated) || !strings.Contains(err.Error(), "expired") {
				t.Fatalf("at expiry: %v", err)
			}

			k2, err := e.keys.Create(ctx, admin, KeyRequest{Name: "agent-2", Owner: ownerAna})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.keys.Revoke(ctx, admin, "agent-2"); err != nil {
				t.Fatal(err)
			}
			if _, _, err := e.auth.Authenticate(ctx, k2.Key); !errors.Is(err, broker.ErrUnauthenticated) || !strings.Contains(err.Error(), "revoked") {
				t.Fatalf("after revocation: %v", err)
			}
			if err := e.keys.Revoke(ctx, admin, "agent-2"); err != nil {
				t.Fatalf("revoking again: %v", err)
			}
			list, err := e.keys.List(ctx, admin)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, i := range list {
				got[i.Name+"/"+i.Source] = i.Status
			}
			if want := map[string]string{"agent-1/api": "expired", "agent-2/api": "revoked", "cfg/config": "expired"}; !equalMaps(got, want) {
				t.Fatalf("list: %v, want %v", got, want)
			}
		})
	}
}

func eventText(evs []broker.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, fmt.Sprint(ev))
	}
	return out
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestKeysRefusals: every refusal has its code, stores nothing and
// records nothing.
func TestKeysRefusals(t *testing.T) {
	store := keyStores(t)["sqlite"]
	e := newKeysEnv(t, store)
	ctx := context.Background()
	if _, err := e.keys.Create(ctx, admin, KeyRequest{Name: "taken", Owner: ownerAna}); err != nil {
		t.Fatal(err)
	}
	if err := e.keys.Revoke(ctx, admin, "taken"); err != nil {
		t.Fatal(err)
	}
	e.disabled["user:gone@example.com"] = true
	grant := broker.Principal{Subject: "grant:gr_1", Method: broker.AuthGrant}
	for _, tc := range []struct {
		name  string
		p     broker.Principal
		req   KeyRequest
		code  broker.Code
		field string
	}{
		{"not an admin", bot, KeyRequest{Name: "x", Owner: ownerAna}, broker.CodeForbidden, ""},
		{"a grant is never an admin", grant, KeyRequest{Name: "x", Owner: ownerAna}, broker.CodeForbidden, ""},
		{"bad name", admin, KeyRequest{Name: "no spaces", Owner: ownerAna}, broker.CodeInvalidArguments, "name"},
		{"no owner", admin, KeyRequest{Name: "x"}, broker.CodeInvalidArguments, "owner"},
		{"a group owns nothing", admin, KeyRequest{Name: "x", Owner: "group:ops"}, broker.CodeInvalidArguments, "owner"},
		{"disabled owner", admin, KeyRequest{Name: "x", Owner: "user:Gone@example.com"}, broker.CodeOwnerDisabled, "owner"},
		{"configured name", admin, KeyRequest{Name: "cfg", Owner: ownerAna}, broker.CodeInvalidArguments, "name"},
		{"a revoked name is never reused", admin, KeyRequest{Name: "taken", Owner: ownerAna}, broker.CodeInvalidArguments, "name"},
		{"negative lifetime", admin, KeyRequest{Name: "x", Owner: ownerAna, ExpiresIn: -time.Hour}, broker.CodeInvalidArguments, "expires_in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.events)
			_, err := e.keys.Create(ctx, tc.p, tc.req)
			var be *broker.Error
			if !errors.As(err, &be) || be.Code != tc.code || be.Field != tc.field {
				t.Fatalf("got %v, want %s (field %q)", err, tc.code, tc.field)
			}
			keys, _ := store.Keys(ctx)
			if len(keys) != 1 || len(e.events) != before {
				t.Fatalf("a refusal stored or recorded something: %d keys, %d events", len(keys), len(e.events)-before)
			}
		})
	}
	for _, tc := range []struct {
		name string
		p    broker.Principal
		key  string
		code broker.Code
	}{
		{"revoke: not an admin", bot, "taken", broker.CodeForbidden},
		{"revoke: configured key", admin, "cfg", broker.CodeInvalidRequest},
		{"revoke: unknown key", admin, "nope", broker.CodeNotFound},
	} {
		if err := e.keys.Revoke(ctx, tc.p, tc.key); broker.CodeOf(err) != tc.code {
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.code)
		}
	}
	if _, err := e.keys.List(ctx, bot); broker.CodeOf(err) != broker.CodeForbidden {
		t.Errorf("list by a non-admin: %v", err)
	}
}

// TestKeySuspendedStatus: a key whose owner or creator is disabled is
// listed as suspended.
func TestKeySuspendedStatus(t *testing.T) {
	e := newKeysEnv(t, keyStores(t)["sqlite"])
	ctx := context.Background()
	if _, err := e.keys.Create(ctx, admin, KeyRequest{Name: "a", Owner: "user:bo@example.com"}); err != nil {
		t.Fatal(err)
	}
	e.disabled["user:admin@example.com"] = true // the creator
	list, err := e.keys.List(ctx, broker.Principal{Subject: "key:ops", Method: broker.AuthAPIKey, Groups: nil})
	if broker.CodeOf(err) != broker.CodeForbidden {
		t.Fatalf("non-admin list: %v", err)
	}
	e.keys.cfg.Admins = append(e.keys.cfg.Admins, "key:ops")
	list, err = e.keys.List(ctx, broker.Principal{Subject: "key:ops", Method: broker.AuthAPIKey})
	if err != nil || len(list) != 2 || list[0].Name != "a" || list[0].Status != "suspended" {
		t.Fatalf("list: %+v %v", list, err)
	}
}

// TestKeyUsage: a key's use is written at most once a minute, off the
// request, and never moves back.
func TestKeyUsage(t *testing.T) {
	store := keyStores(t)["sqlite"]
	e := newKeysEnv(t, store)
	ctx := context.Background()
	k, err := e.keys.Create(ctx, admin, KeyRequest{Name: "u", Owner: ownerAna})
	if err != nil {
		t.Fatal(err)
	}
	t0 := e.clk.Now()
	for _, step := range []time.Duration{0, 20 * time.Second, 20 * time.Second} {
		e.clk.Add(step)
		if _, _, err := e.auth.Authenticate(ctx, k.Key); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.auth.Authenticate(ctx, "tgk_configured"); err != nil {
			t.Fatal(err)
		}
	}
	used, _ := store.LastUsed(ctx)
	if len(used) != 0 {
		t.Fatalf("written on the request path: %v", used)
	}
	if err := e.usage.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	used, _ = store.LastUsed(ctx)
	if !used["u"].Equal(t0) || !used["cfg"].Equal(t0) {
		t.Fatalf("after flush: %v, want both at %s", used, t0)
	}
	e.clk.Add(21 * time.Second) // 61s after the first use
	if _, _, err := e.auth.Authenticate(ctx, k.Key); err != nil {
		t.Fatal(err)
	}
	if err := e.usage.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	used, _ = store.LastUsed(ctx)
	if !used["u"].Equal(e.clk.Now()) || !used["cfg"].Equal(t0) {
		t.Fatalf("a minute later: %v", used)
	}
	if err := store.TouchKeys(ctx, map[string]time.Time{"u": t0}); err != nil {
		t.Fatal(err)
	}
	if used, _ = store.LastUsed(ctx); !used["u"].Equal(e.clk.Now()) {
		t.Fatalf("last use moved back: %v", used["u"])
	}
}
