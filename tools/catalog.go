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
// listing every problem found in every file.
func Load(dir string, targets map[string]string) (*Catalog, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, &LoadError{Problems: []Problem{{File: dir, Reason: "cannot read the tools folder: " + pathError(err)}}}
	}
	var all []Problem
	var tools []*broker.Tool
	for _, e := range entries { // os.ReadDir sorts by file name
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		file := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(file)
		if err != nil {
			all = append(all, Problem{File: file, Reason: "cannot read the file: " + pathError(err)})
			continue
		}
		tool, problems := Parse(file, data, targets)
		if len(problems) > 0 {
			all = append(all, problems...)
			continue
		}
		tools = append(tools, tool)
	}
	cat, err := NewCatalog(tools...)
	var le *LoadError
	if errors.As(err, &le) {
		all = append(all, le.Problems...)
	}
	if len(all) > 0 {
		return nil, &LoadError{Problems: all}
	}
	return cat, nil
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
