package broker

import (
	"errors"
	"fmt"
	"sort"
)

// Live is the part of the configuration a reload replaces: the tool
// catalog, the policy engine and the masker, plus the passthrough routes
// whose responses are masked. cmd/toolgate builds one each time the
// configuration loads; Broker.Reload turns it into a Snapshot.
type Live struct {
	Catalog Catalog
	Policy  Policy
	Masker  Masker
	// Routes are the passthrough routes served: each is masked as the
	// result of the synthetic tool PassthroughTool(kind, target) names.
	Routes []Route
	// Withheld are tools that exist but are not served: not listed, and
	// a call to one is refused with its Refusal, nothing run.
	Withheld []Withheld
}

// Withheld is a tool that exists but is not served now: an upstream MCP
// server's tool quarantined because its definition changed since it was
// pinned (tool_definition_changed), or one not exposed for another reason
// (no pin, a name that collides). Policy is not compiled with it, so a
// caller whose node's allow list does not name it is refused as forbidden
// (Allower), and every other caller gets Refusal.
type Withheld struct {
	Name, Target string
	Refusal      *Error
}

// Route is one passthrough route: a target served raw through a proxy.
type Route struct {
	// Kind is KindSQL (the Postgres wire proxy) or KindHTTP.
	Kind   string
	Target string
}

func (l Live) missing() []string {
	var out []string
	if l.Catalog == nil {
		out = append(out, "Live.Catalog")
	}
	if l.Policy == nil {
		out = append(out, "Live.Policy")
	}
	if l.Masker == nil {
		out = append(out, "Live.Masker")
	}
	return out
}

// Snapshot is one live configuration prepared for serving: every tool with
// its masking compiled and its output check found, every passthrough
// route's masking compiled, and the policy engine's and masker's optional
// abilities found. It is immutable; Broker.Reload swaps in a new one.
type Snapshot struct {
	live Live
	gen  uint64
	// tools holds the catalog's tools by name; sorted in name order.
	tools  map[string]*prepared
	sorted []*prepared
	// routes holds each passthrough route's masking by synthetic tool name.
	routes map[string]ToolMask
	// withheld holds the withheld tools by name.
	withheld map[string]Withheld
	// The policy's optional abilities, nil where it has none.
	binder Binder
	rows   RowBudget
	pass   PassthroughDecider
	allows Allower
	graphs GraphIndex
	// cells is the masker's CellMasker ability, nil without it.
	cells CellMasker
}

// prepared is one tool as a snapshot serves it.
type prepared struct {
	tool *Tool
	mask ToolMask
	// output checks results against the output schema; nil when the
	// tool's spec cannot.
	output OutputChecker
}

// Catalog is the snapshot's tool catalog.
func (s *Snapshot) Catalog() Catalog { return s.live.Catalog }

// Policy is the snapshot's policy engine.
func (s *Snapshot) Policy() Policy { return s.live.Policy }

// Withheld are the snapshot's withheld tools: not listed, but a call to
// one reaches the broker, which refuses it.
func (s *Snapshot) Withheld() []Withheld { return s.live.Withheld }

// Masker is the snapshot's masker.
func (s *Snapshot) Masker() Masker { return s.live.Masker }

// Generation numbers the snapshot: it grows by one with each Reload.
func (s *Snapshot) Generation() uint64 { return s.gen }

// newSnapshot prepares l. Every problem is reported.
func newSnapshot(l Live, gen uint64) (*Snapshot, error) {
	if missing := l.missing(); len(missing) > 0 {
		return nil, fmt.Errorf("broker live configuration: missing %v", missing)
	}
	s := &Snapshot{live: l, gen: gen, tools: map[string]*prepared{}, routes: map[string]ToolMask{}, withheld: map[string]Withheld{}}
	s.binder, _ = l.Policy.(Binder)
	s.rows, _ = l.Policy.(RowBudget)
	s.pass, _ = l.Policy.(PassthroughDecider)
	s.allows, _ = l.Policy.(Allower)
	s.graphs, _ = l.Policy.(GraphIndex)
	s.cells, _ = l.Masker.(CellMasker)
	var errs []error
	for _, t := range l.Catalog.Tools() {
		m, err := l.Masker.PrepareTool(t)
		if err != nil {
			errs = append(errs, fmt.Errorf("tool %s: masking: %w", t.Name, err))
			continue
		}
		pt := &prepared{tool: t, mask: m}
		pt.output, _ = t.Spec.(OutputChecker)
		s.tools[t.Name] = pt
		s.sorted = append(s.sorted, pt)
	}
	for _, r := range l.Routes {
		name := PassthroughTool(r.Kind, r.Target)
		m, err := l.Masker.PrepareTool(&Tool{Name: name, Target: r.Target})
		if err != nil {
			errs = append(errs, fmt.Errorf("passthrough %s: masking: %w", name, err))
			continue
		}
		s.routes[name] = m
	}
	for _, w := range l.Withheld {
		switch {
		case w.Refusal == nil:
			errs = append(errs, fmt.Errorf("withheld tool %s: no refusal", w.Name))
		case s.tools[w.Name] != nil:
			errs = append(errs, fmt.Errorf("tool %s is both served and withheld", w.Name))
		default:
			s.withheld[w.Name] = w
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.Slice(s.sorted, func(i, j int) bool { return s.sorted[i].tool.Name < s.sorted[j].tool.Name })
	return s, nil
}
