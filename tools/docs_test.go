package tools

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/toolgate/toolgate/internal/config"
)

// guideTool is one ```json tool block of docs/tools.md.
type guideTool struct {
	line int
	text string
}

// guideTools extracts the blocks fenced as ```json tool from a Markdown file.
func guideTools(t *testing.T, file string) []guideTool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []guideTool
	var cur *guideTool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```json tool":
			cur = &guideTool{line: n + 1}
		case cur != nil && strings.TrimSpace(line) == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	if cur != nil {
		t.Fatalf("%s: a ```json tool block opened at line %d is never closed", file, cur.line-1)
	}
	return out
}

// TestGuideExamplesLoad loads every tool example of the authoring guide
// through the loader and the shipped tool schema, so the guide cannot rot.
func TestGuideExamplesLoad(t *testing.T) {
	const guide = "../docs/tools.md"
	examples := guideTools(t, guide)
	if len(examples) < 7 {
		t.Fatalf("%s holds %d tool examples; the extraction is broken", guide, len(examples))
	}
	targets := map[string]string{"crm": config.KindPostgres, "demo": config.KindSQLite, "billing": config.KindHTTP}
	sch := toolFileSchema(t)
	seen := map[string]int{}
	var ops = map[string]bool{}
	for _, ex := range examples {
		name := fmt.Sprintf("%s:%d", guide, ex.line)
		tool, probs := Parse(name, []byte(ex.text), targets)
		for _, p := range probs {
			t.Errorf("the guide's example does not load: %s (at %s line %d)", p, guide, ex.line-1+p.Line)
		}
		if tool == nil {
			continue
		}
		if prev, dup := seen[tool.Name]; dup {
			t.Errorf("%s: tool %s is already an example at line %d", name, tool.Name, prev)
		}
		seen[tool.Name] = ex.line
		doc, err := jsonschema.UnmarshalJSON(strings.NewReader(ex.text))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := sch.Validate(doc); err != nil {
			t.Errorf("%s: tool.schema.json refuses the guide's example: %v", name, err)
		}
		sp := tool.Spec.(*Spec)
		ops[map[bool]string{true: "sql", false: "http"}[sp.sql != nil]] = true
		if len(tool.Mask) > 0 {
			ops["mask"] = true
		}
	}
	for _, want := range []string{"sql", "http", "mask"} {
		if !ops[want] {
			t.Errorf("the guide has no %s example", want)
		}
	}
}
