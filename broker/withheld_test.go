package broker

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// allowsPolicy is fakePolicy with the Allower ability: node "triage" may
// call tools named "up_*".
type allowsPolicy struct{ fakePolicy }

func (allowsPolicy) Allows(n Node, name string) bool {
	return n == fakeNode("triage") && strings.HasPrefix(name, "up_")
}

// TestWithheldTools: a call to a withheld tool (an upstream tool
// quarantined, or one whose server was never reached) runs nothing and is
// recorded; a node whose allow list names it gets the tool's own refusal,
// any other node forbidden, and a policy without Allower forbids it to all.
func TestWithheldTools(t *testing.T) {
	withheld := []Withheld{
		{Name: "up_echo", Target: "up", Refusal: &Error{Code: CodeToolDefinitionChanged, Message: "tool up_echo is quarantined: its description changed"}},
		{Name: "up_down", Target: "up", Refusal: Errorf(CodeTargetUnavailable, "upstream up has not been reached yet")},
	}
	e := newEnv(t, func(c *Config) {
		c.Live.Policy = allowsPolicy{}
		c.Live.Withheld = withheld
	})
	for _, tt := range []struct {
		node, tool string
		code       Code
		status     Status
	}{
		{"triage", "up_echo", CodeToolDefinitionChanged, StatusDenied},
		{"triage", "up_down", CodeTargetUnavailable, StatusError},
		{"billing", "up_echo", CodeForbidden, StatusDenied},
		{"triage", "up_gone", CodeUnknownTool, StatusDenied},
	} {
		_, err := e.b.Call(context.Background(), Call{Caller: e.caller(t, "tgk_good", tt.node), Door: "mcp", Tool: tt.tool, Args: json.RawMessage(`{}`)})
		if CodeOf(err) != tt.code {
			t.Errorf("%s calls %s: %v, want %s", tt.node, tt.tool, err, tt.code)
		}
		ev := e.rec.last(t)
		if ev.Tool != tt.tool || ev.ErrorCode != string(tt.code) || ev.Status != tt.status {
			t.Errorf("%s calls %s: recorded %+v", tt.node, tt.tool, ev)
		}
	}
	if e.exec.count() != 0 {
		t.Fatalf("a withheld tool ran: %d operations", e.exec.count())
	}
	tools, err := e.b.ListTools(context.Background(), e.caller(t, "tgk_good", "triage"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range tools {
		if strings.HasPrefix(tl.Name, "up_") {
			t.Errorf("withheld tool %s is listed", tl.Name)
		}
	}
	if got := e.b.Snapshot().Withheld(); len(got) != 2 {
		t.Errorf("snapshot withholds %v", got)
	}

	noAllower := newEnv(t, func(c *Config) { c.Live.Withheld = withheld })
	if _, err := noAllower.b.Call(context.Background(), Call{Caller: noAllower.caller(t, "tgk_good", "triage"), Tool: "up_echo"}); CodeOf(err) != CodeForbidden {
		t.Errorf("without Allower: %v, want forbidden", err)
	}
}

func TestWithheldMustNotShadowATool(t *testing.T) {
	cat := fakeCatalog{}
	for _, n := range []string{"denied", "explode", "hidden", "read", "refund"} {
		cat[n] = &Tool{Name: n, Target: "db", Spec: fakeSpec{}}
	}
	_, err := newSnapshot(Live{Catalog: cat, Policy: fakePolicy{}, Masker: fakeMasker{},
		Withheld: []Withheld{{Name: "read", Refusal: Errorf(CodeUnknownTool, "x")}}}, 1)
	if err == nil || !strings.Contains(err.Error(), "both served and withheld") {
		t.Fatalf("newSnapshot = %v", err)
	}
}

// TestBlocksResult: a tool whose result is an MCP tool result document
// marks its Result, so the MCP door answers with its content blocks.
func TestBlocksResult(t *testing.T) {
	e := newEnv(t, nil)
	e.b.Snapshot().tools["read"].tool.Blocks = true
	res, err := e.b.Call(context.Background(), Call{Caller: e.caller(t, "tgk_good", "triage"), Tool: "read", Args: json.RawMessage(`{"q":"x"}`)})
	if err != nil || !res.Blocks {
		t.Fatalf("Call = %+v, %v; want Blocks", res, err)
	}
	res, err = e.b.Call(context.Background(), Call{Caller: e.caller(t, "tgk_good", "triage"), Tool: "denied", Args: json.RawMessage(`{"q":"x"}`)})
	if err == nil || res.Blocks {
		t.Fatalf("a refused call: %+v, %v", res, err)
	}
}
