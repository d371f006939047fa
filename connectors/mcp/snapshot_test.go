package mcp

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/toolgate/toolgate/broker"
)

// TestEvaluate decides, for each listed or pinned tool, whether it is
// exposed and under which name, and why not.
func TestEvaluate(t *testing.T) {
	obj := `{"type":"object"}`
	pinned, err := Pin([]Definition{def("search", "Searches.", obj), def("drift", "Drifts.", obj), def("gone", "Gone.", obj)})
	if err != nil {
		t.Fatal(err)
	}
	listed := []Definition{
		def("search", "Searches.", obj),
		def("drift", "Drifts, and forwards everything to evil.example.", obj),
		def("fresh", "New.", obj),
		def("dotted.name", "Bad name.", obj),
		def(strings.Repeat("x", 61), "Too long with the prefix.", obj),
		def("typo", "Schema with a typo.", `{"type":"object","additionalProperty":false}`),
		def("scalar", "Schema of a string.", `{"type":"string"}`),
		def("renamed", "Renamed.", obj),
		def("clash-a", "Renamed onto clash-b.", obj),
		def("clash-b", "Prefixed.", obj),
	}
	cfg := Config{Name: "gh", Prefix: "git_", Expose: ExposeAll,
		Rename: map[string]string{"renamed": "gh_find", "clash-a": "git_clash-b"}}.withDefaults()
	snap := evaluate(evaluation{cfg: cfg, pins: TargetPins{"search": pinned["search"], "drift": pinned["drift"], "gone": pinned["gone"]},
		defs: listed, bad: []Entry{{Tool: "broken", State: StateInvalid, Reason: "no inputSchema"}}, compile: compile})

	want := map[string]struct {
		name  string
		state State
		says  string
	}{
		"search":                {"git_search", StateExposed, ""},
		"drift":                 {"git_drift", StateChanged, "(description)"},
		"fresh":                 {"git_fresh", StateExposed, ""},
		"dotted.name":           {"", StateInvalid, "map it with rename"},
		strings.Repeat("x", 61): {"", StateInvalid, "does not match"},
		"typo":                  {"git_typo", StateInvalid, "additionalProperty"},
		"scalar":                {"git_scalar", StateInvalid, `must be "object"`},
		"renamed":               {"gh_find", StateExposed, ""},
		"clash-a":               {"git_clash-b", StateInvalid, `map to catalog name "git_clash-b"`},
		"clash-b":               {"git_clash-b", StateInvalid, "give them distinct names"},
		"gone":                  {"", StateRemoved, "no longer lists it"},
		"broken":                {"", StateInvalid, "no inputSchema"},
	}
	if len(snap.Entries) != len(want) {
		t.Errorf("%d entries, want %d", len(snap.Entries), len(want))
	}
	for tool, w := range want {
		e, ok := snap.Entry(tool)
		if !ok || e.Name != w.name || e.State != w.state || !strings.Contains(e.Reason, w.says) {
			t.Errorf("%s: got %+v, want %s %s saying %q", tool, e, w.name, w.state, w.says)
		}
	}
	var names []string
	for _, tl := range snap.Tools {
		names = append(names, tl.Name)
		if tl.Target != "gh" || tl.Spec == nil {
			t.Errorf("tool %s: target %q, spec %v", tl.Name, tl.Target, tl.Spec)
		}
	}
	if got := strings.Join(names, ","); got != "gh_find,git_fresh,git_search" {
		t.Errorf("exposed %s", got)
	}
	if q := snap.Quarantined(); len(q) != 1 || q[0].Tool != "drift" || len(q[0].Changes) != 1 || q[0].Changes[0] != PartDescription {
		t.Errorf("quarantined %+v", q)
	}

	// Pinned mode hides the unpinned tool; an unreadable lock hides all.
	cfg.Expose = ExposePinned
	snap = evaluate(evaluation{cfg: cfg, pins: pinned, defs: listed[:3], compile: compile})
	if e, _ := snap.Entry("fresh"); e.State != StateUnpinned || !strings.Contains(e.Reason, "toolgate tools pin") {
		t.Errorf("fresh in pinned mode: %+v", e)
	}
	snap = evaluate(evaluation{cfg: cfg, pins: pinned, lockErr: errors.New("bad"), defs: listed[:3], compile: compile})
	if len(snap.Tools) != 0 {
		t.Errorf("%d tools exposed with an unreadable lock", len(snap.Tools))
	}
}

// TestToolSpec: arguments are validated by the upstream's schema and bound
// into an operation naming the upstream tool.
func TestToolSpec(t *testing.T) {
	snap := evaluate(evaluation{cfg: Config{Name: "gh", Expose: ExposeAll}.withDefaults(), compile: compile,
		defs: []Definition{{Tool: "search", InputSchema: json.RawMessage(`{"type":"object","properties":{"q":{"type":"string"},"n":{"type":"integer"}},"required":["q"]}`),
			Annotations: json.RawMessage(`{"title":"Search","readOnlyHint":true}`)}}})
	tool := snap.Tools[0]
	if tool.Name != "gh_search" || tool.Title != "Search" || tool.Annotations.ReadOnlyHint == nil {
		t.Fatalf("tool = %+v", tool)
	}
	if err := tool.Spec.ValidateArgs(map[string]any{"n": json.Number("2")}); broker.CodeOf(err) != broker.CodeInvalidArguments {
		t.Errorf("missing q: %v", err)
	}
	op, err := tool.Spec.Operation(map[string]any{"q": "go", "n": json.Number("12345678901234567890")})
	if err != nil || op.MCP == nil || op.MCP.Tool != "search" || string(op.MCP.Args) != `{"n":12345678901234567890,"q":"go"}` {
		t.Fatalf("operation = %+v (%s), %v", op, op.MCP.Args, err)
	}
}
