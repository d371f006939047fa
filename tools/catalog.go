package tools

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/toolgate/toolgate/broker"
)

// Catalog is a set of loaded tools, immutable after construction.
type Catalog struct {
	byName map[string]*broker.Tool
	sorted []*broker.Tool
}

var _ broker.Catalog = (*Catalog)(nil)

// Load reads every *.json file directly in dir (sorted by name, not
// recursive) and parses each against targets (target name → kind:
// "postgres", "sqlite" or "http"). On any problem it returns a *LoadError
// listing every problem found in every file, each with its line.
//
// With problems, Load still returns a catalog, for cross-reference checks
// only (`toolgate check` compiles the policy against it, so one broken file
// reports its own problems, not "matches no tool" wherever its tool is
// named): it holds the tools that loaded, plus a stand-in for each broken
// declaration whose name could be read, whose Spec refuses every call.
// Nothing may serve a catalog that came with an error.
func Load(dir string, targets map[string]string) (*Catalog, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, &LoadError{Problems: []Problem{{File: dir, Reason: "cannot read the tools folder: " + pathError(err)}}}
	}
	var all []Problem
	var tools []*broker.Tool
	nameLines := map[string]int{} // file → line of its "name"
	for _, e := range entries {   // os.ReadDir sorts by file name
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		file := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(file)
		if err != nil {
			all = append(all, Problem{File: file, Reason: "cannot read the file: " + pathError(err)})
			continue
		}
		ps := &problems{file: file, lines: map[string]int{}}
		tool := parse(ps, data, targets)
		nameLines[file] = ps.line("/name")
		if len(ps.list) > 0 {
			all = append(all, ps.list...)
			if tool != nil && namePattern.MatchString(tool.Name) {
				tools = append(tools, standIn(tool))
			}
			continue
		}
		tools = append(tools, tool)
	}
	cat, err := NewCatalog(tools...)
	var le *LoadError
	if errors.As(err, &le) {
		for _, p := range le.Problems {
			p.Line = nameLines[p.File]
			all = append(all, p)
		}
		cat, _ = NewCatalog(unique(tools)...)
	}
	if len(all) > 0 {
		return cat, &LoadError{Problems: all}
	}
	return cat, nil
}

// standIn is a broken declaration's tool as far as it could be read, with
// an empty Spec, which refuses every call.
func standIn(t *broker.Tool) *broker.Tool {
	return &broker.Tool{Name: t.Name, Title: t.Title, Description: t.Description, Target: t.Target,
		InputSchema: t.InputSchema, Annotations: t.Annotations, Source: t.Source, Spec: &Spec{}}
}

// unique drops the second and later tools of one name.
func unique(tools []*broker.Tool) []*broker.Tool {
	seen := map[string]bool{}
	var out []*broker.Tool
	for _, t := range tools {
		if t != nil && t.Spec != nil && !seen[t.Name] {
			seen[t.Name] = true
			out = append(out, t)
		}
	}
	return out
}

// pathError is an os error's reason without the path repeated.
func pathError(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

// NewCatalog builds a catalog from tools. Two tools with one name, a nil
// tool or a tool without a Spec are errors (a *LoadError).
func NewCatalog(tools ...*broker.Tool) (*Catalog, error) {
	c := &Catalog{byName: make(map[string]*broker.Tool, len(tools))}
	var problems []Problem
	for i, t := range tools {
		switch {
		case t == nil:
			problems = append(problems, Problem{File: fmt.Sprintf("tool #%d", i+1), Reason: "is nil"})
			continue
		case t.Spec == nil:
			problems = append(problems, Problem{File: source(t), Path: "/name", Reason: fmt.Sprintf("tool %q has no compiled spec", t.Name)})
			continue
		}
		if prev, dup := c.byName[t.Name]; dup {
			problems = append(problems, Problem{File: source(t), Path: "/name", Reason: fmt.Sprintf("tool %q is already declared in %s: tool names must be unique", t.Name, source(prev))})
			continue
		}
		c.byName[t.Name] = t
		c.sorted = append(c.sorted, t)
	}
	if len(problems) > 0 {
		return nil, &LoadError{Problems: problems}
	}
	sort.Slice(c.sorted, func(i, j int) bool { return c.sorted[i].Name < c.sorted[j].Name })
	return c, nil
}

func source(t *broker.Tool) string {
	if t.Source == "" {
		return "tool " + t.Name
	}
	return t.Source
}

// Lookup returns the tool named name.
func (c *Catalog) Lookup(name string) (*broker.Tool, bool) {
	if c == nil {
		return nil, false
	}
	t, ok := c.byName[name]
	return t, ok
}

// Tools returns every tool sorted by name. The slice is a copy; the tools
// are shared and must not be modified.
func (c *Catalog) Tools() []*broker.Tool {
	if c == nil {
		return nil
	}
	return append([]*broker.Tool(nil), c.sorted...)
}

// Len returns the number of tools.
func (c *Catalog) Len() int {
	if c == nil {
		return 0
	}
	return len(c.sorted)
}
