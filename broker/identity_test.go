package broker

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestCallerNodeRefusals: a tool call or listing from an API key that does
// not name its graph and node, or names ones policy does not declare, is
// refused with a code that says which, naming the header; the call runs
// nothing and is recorded, and the listing is an error, never empty.
func TestCallerNodeRefusals(t *testing.T) {
	for _, c := range []struct {
		name        string
		claimed     Context
		code        Code
		field       string
		problems    int
		wantInMsg   []string
		unwantInMsg []string
	}{
		{"no headers", Context{}, CodeUnidentified, HeaderGraph, 2, []string{HeaderGraph, HeaderNode, "grant token"}, nil},
		{"no node", Context{Graph: "g"}, CodeUnidentified, HeaderNode, 1, []string{HeaderNode}, []string{HeaderGraph + " and"}},
		{"unknown node", Context{Graph: "g", Node: "tirage"}, CodeUnknownNode, HeaderNode, 0, []string{`"tirage"`, `"triage"`, `graph "g"`}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, nil)
			caller, err := e.b.Identify(context.Background(), Credentials{Token: "tgk_good", Claimed: c.claimed})
			if err != nil {
				t.Fatalf("identify: %v", err)
			}
			check := func(what string, err error) {
				t.Helper()
				var be *Error
				if !errors.As(err, &be) || be.Code != c.code || be.Field != c.field || len(be.Problems) != c.problems {
					t.Fatalf("%s: err = %#v, want code %s field %s with %d problems", what, err, c.code, c.field, c.problems)
				}
				for _, w := range c.wantInMsg {
					if !strings.Contains(be.Message, w) {
						t.Errorf("%s: message %q lacks %q", what, be.Message, w)
					}
				}
				for _, w := range c.unwantInMsg {
					if strings.Contains(be.Message, w) {
						t.Errorf("%s: message %q has %q", what, be.Message, w)
					}
				}
			}
			tools, err := e.b.ListTools(context.Background(), caller)
			if tools != nil {
				t.Errorf("listing = %v, want none", tools)
			}
			check("list", err)
			_, err = e.b.Call(context.Background(), Call{Caller: caller, Door: "http", Tool: "read", Args: json.RawMessage(`{"q":1}`)})
			check("call", err)
			if n := e.exec.count(); n != 0 {
				t.Errorf("refused call executed %d operations", n)
			}
			ev := e.rec.last(t)
			if ev.ErrorCode != string(c.code) || ev.Status != StatusDenied || ev.Principal != "key:bot" || ev.Tool != "read" || ev.Decision != "" {
				t.Errorf("record = %+v", ev)
			}
		})
	}
}

// TestUnknownGraphRefusedAtIdentify: a graph policy does not declare is
// named as unknown, a declared one the principal may not act as stays
// forbidden, and a node without its graph is unidentified.
func TestUnknownGraphRefusedAtIdentify(t *testing.T) {
	e := newEnv(t, nil)
	for _, c := range []struct {
		claimed Context
		code    Code
		field   string
	}{
		{Context{Graph: "supprt-bot", Node: "triage"}, CodeUnknownGraph, HeaderGraph},
		{Context{Graph: "other", Node: "triage"}, CodeForbidden, ""},
		{Context{Node: "triage"}, CodeUnidentified, HeaderGraph},
	} {
		_, err := e.b.Identify(context.Background(), Credentials{Token: "tgk_good", Claimed: c.claimed})
		var be *Error
		if !errors.As(err, &be) || be.Code != c.code || be.Field != c.field {
			t.Errorf("%+v: err = %v, want %s naming %q", c.claimed, err, c.code, c.field)
			continue
		}
		if c.code == CodeUnknownGraph && !strings.Contains(be.Message, `"supprt-bot"`) {
			t.Errorf("message %q does not name the graph", be.Message)
		}
	}
}

// TestGrantNeedsNoHeaders: a grant token carries its graph and node, so it
// lists and calls without any X-Toolgate-* header.
func TestGrantNeedsNoHeaders(t *testing.T) {
	e := newEnv(t, nil)
	caller, err := e.b.Identify(context.Background(), Credentials{Token: "tg_grant"})
	if err != nil {
		t.Fatal(err)
	}
	tools, err := e.b.ListTools(context.Background(), caller)
	if err != nil || len(tools) == 0 {
		t.Fatalf("grant listing = %v, %v", tools, err)
	}
	if _, err := e.b.Call(context.Background(), Call{Caller: caller, Tool: "read", Args: json.RawMessage(`{"q":1}`)}); err != nil {
		t.Fatalf("grant call: %v", err)
	}
}
