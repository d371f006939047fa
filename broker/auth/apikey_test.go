package auth

import (
	"context"
	"strings"
	"testing"

	"github.com/toolgate/toolgate/broker"
)

func TestAPIKeys(t *testing.T) {
	key, sum, err := NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, "tgk_") || len(key) != 44 {
		t.Fatalf("key %q has the wrong shape", key)
	}
	other, _, _ := NewAPIKey()
	a, err := New(Config{APIKeys: []APIKey{{Name: "bot", SHA256: sum}}})
	if err != nil {
		t.Fatal(err)
	}
	p, bd, err := a.Authenticate(context.Background(), key)
	if err != nil || p.Subject != "key:bot" || p.Method != broker.AuthAPIKey || bd != nil {
		t.Fatalf("valid key: %+v %v %v", p, bd, err)
	}
	for name, tok := range map[string]string{"unknown key": other, "not a key": "hello", "empty": "", "key plus junk": key + "x"} {
		_, _, err := a.Authenticate(context.Background(), tok)
		if broker.CodeOf(err) != broker.CodeUnauthenticated {
			t.Errorf("%s: err = %v, want unauthenticated", name, err)
		}
		if tok != "" && strings.Contains(err.Error(), tok) {
			t.Errorf("%s: error echoes the token", name)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no name":   {APIKeys: []APIKey{{SHA256: HashKey("x")}}},
		"short sha": {APIKeys: []APIKey{{Name: "a", SHA256: "abcd"}}},
		"duplicate": {APIKeys: []APIKey{{Name: "a", SHA256: HashKey("x")}, {Name: "b", SHA256: HashKey("x")}}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}
