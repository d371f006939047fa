package mcp

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/toolgate/toolgate/broker"
)

// Schemas are a tool's compiled input and output schemas.
type Schemas interface {
	// ValidateArgs refuses arguments that break the input schema with a
	// *broker.Error of code invalid_arguments.
	ValidateArgs(args map[string]any) error
	// ValidateOutput checks a structured result against the output schema.
	ValidateOutput(v any) error
}

// CompileFunc compiles an upstream tool's schemas by the rules declared
// tools follow (cmd/toolgate passes tools.CompileSchemas). source names the
// tool in problems.
type CompileFunc func(source string, input, output json.RawMessage) (Schemas, error)

// State is whether an upstream tool is exposed and, if not, why.
type State string

// The states of an Entry.
const (
	// StateExposed: listed in the catalog and callable.
	StateExposed State = "exposed"
	// StateChanged: quarantined, the definition differs from its pin.
	StateChanged State = "changed"
	// StateUnpinned: no pin, and the target does not say expose: all.
	StateUnpinned State = "unpinned"
	// StateInvalid: the name cannot be mapped to a catalog name, two tools
	// map to one name, the definition is unusable, a schema does not
	// compile, or the lock file cannot be read.
	StateInvalid State = "invalid"
	// StateRemoved: pinned, but the upstream no longer lists it.
	StateRemoved State = "removed"
)

// Entry is one upstream tool (or pin) and what became of it.
type Entry struct {
	// Tool is the upstream tool name.
	Tool string
	// Name is the catalog name, "" when none could be given.
	Name  string
	State State
	// Changes names what differs from the pin (StateChanged only).
	Changes []Part
	// Reason says why the tool is not exposed, in one sentence safe to show.
	Reason string
	// Definition is the listed definition, nil for a removed tool.
	Definition *Definition
	// schemas are the compiled schemas of an exposed tool.
	schemas Schemas
	digest  string
}

// Snapshot is one evaluation of an upstream's tools against the pins. It
// is immutable: the connector publishes a new one at start, on reconnect,
// on notifications/tools/list_changed and on Refresh.
type Snapshot struct {
	Target string
	// Connected reports whether a session was up when the snapshot was
	// published. While the upstream is down the last snapshot's tools stay
	// listed and their calls fail with target_unavailable.
	Connected bool
	// Tools are the exposed tools, sorted by catalog name.
	Tools []*broker.Tool
	// Entries are every listed or pinned upstream tool, sorted by Tool.
	Entries []Entry
	byTool  map[string]int
	// signature sums up the entries, to tell whether a poll found a
	// change worth reporting.
	signature string
}

// Entry returns the entry of an upstream tool.
func (s *Snapshot) Entry(tool string) (Entry, bool) {
	if s == nil {
		return Entry{}, false
	}
	i, ok := s.byTool[tool]
	if !ok {
		return Entry{}, false
	}
	return s.Entries[i], true
}

// Quarantined returns the entries whose definition differs from their pin.
func (s *Snapshot) Quarantined() []Entry {
	var out []Entry
	for _, e := range s.Entries {
		if e.State == StateChanged {
			out = append(out, e)
		}
	}
	return out
}

// evaluation is the input of one evaluation.
type evaluation struct {
	cfg     Config // with defaults
	pins    TargetPins
	lockErr error
	defs    []Definition
	bad     []Entry // listed entries that could not be parsed
	compile CompileFunc
}

// evaluate decides, for every listed and pinned tool, whether it is
// exposed, and builds the exposed tools.
func evaluate(ev evaluation) *Snapshot {
	entries := append([]Entry(nil), ev.bad...)
	listed := map[string]bool{}
	for i := range ev.defs {
		listed[ev.defs[i].Tool] = true
		entries = append(entries, ev.entry(&ev.defs[i]))
	}
	refuseCollisions(entries)
	for tool := range ev.pins {
		if !listed[tool] {
			entries = append(entries, Entry{Tool: tool, State: StateRemoved,
				Reason: fmt.Sprintf("upstream tool %q is pinned but the server no longer lists it", tool)})
		}
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].Tool < entries[j].Tool })
	snap := &Snapshot{Target: ev.cfg.Name, Entries: entries, byTool: make(map[string]int, len(entries))}
	var sig strings.Builder
	for i := range entries {
		e := &entries[i]
		if _, dup := snap.byTool[e.Tool]; !dup {
			snap.byTool[e.Tool] = i
		}
		if e.State == StateExposed {
			if tool, reason := ev.build(*e); reason != "" {
				e.State, e.Reason = StateInvalid, reason
			} else {
				e.schemas = tool.Spec.(*toolSpec).schemas
				snap.Tools = append(snap.Tools, tool)
			}
		}
		fmt.Fprintf(&sig, "%q %q %s %v %s %q\n", e.Tool, e.Name, e.State, e.Changes, e.digest, e.Reason)
	}
	snap.signature = sig.String()
	sort.Slice(snap.Tools, func(i, j int) bool { return snap.Tools[i].Name < snap.Tools[j].Name })
	return snap
}

// entry names a listed definition and compares it with its pin.
func (ev evaluation) entry(d *Definition) Entry {
	e := Entry{Tool: d.Tool, Definition: d}
	e.Name, e.Reason = ev.cfg.catalogName(d.Tool)
	got, err := d.pin()
	switch {
	case err != nil:
		e.State, e.Reason = StateInvalid, fmt.Sprintf("the definition of upstream tool %q cannot be digested: %v", d.Tool, err)
	case e.Reason != "":
		e.State, e.digest = StateInvalid, got.Digest
	default:
		e.digest = got.Digest
		e.State, e.Changes, e.Reason = ev.pinState(*d, got)
	}
	return e
}

// refuseCollisions makes every entry whose catalog name another entry
// also has invalid: neither may shadow the other.
func refuseCollisions(entries []Entry) {
	owners := map[string][]int{}
	for i, e := range entries {
		if e.Name != "" {
			owners[e.Name] = append(owners[e.Name], i)
		}
	}
	for name, idx := range owners {
		if len(idx) < 2 {
			continue
		}
		var tools []string
		for _, i := range idx {
			tools = append(tools, fmt.Sprintf("%q", entries[i].Tool))
		}
		sort.Strings(tools)
		for _, i := range idx {
			entries[i].State = StateInvalid
			entries[i].Reason = fmt.Sprintf("upstream tools %s all map to catalog name %q; give them distinct names with rename", strings.Join(tools, " and "), name)
		}
	}
}

// pinState compares a definition with its pin and the target's expose rule.
func (ev evaluation) pinState(d Definition, got ToolPin) (State, []Part, string) {
	if ev.lockErr != nil {
		return StateInvalid, nil, fmt.Sprintf("the tools lock cannot be read, so no tool of target %s is exposed", ev.cfg.Name)
	}
	c := compare(ev.pins, d.Tool, got)
	switch {
	case c.Status == StatusUnchanged:
		return StateExposed, nil, ""
	case c.Status == StatusChanged:
		what := "its definition"
		if len(c.Parts) > 0 {
			what = partList(c.Parts)
		}
		return StateChanged, c.Parts, fmt.Sprintf("the definition of upstream tool %q changed since it was pinned (%s); review it with `toolgate tools diff` and pin it again to accept", d.Tool, what)
	case ev.cfg.Expose == ExposeAll:
		return StateExposed, nil, ""
	}
	return StateUnpinned, nil, fmt.Sprintf("upstream tool %q has no pin in the tools lock; review it and run `toolgate tools pin` (or set expose: all)", d.Tool)
}

// build compiles an entry's schemas into a catalog tool, or says why not.
func (ev evaluation) build(e Entry) (*broker.Tool, string) {
	d := e.Definition
	source := fmt.Sprintf("mcp target %s tool %q", ev.cfg.Name, d.Tool)
	schemas, err := ev.compile(source, d.InputSchema, d.OutputSchema)
	if err != nil {
		return nil, fmt.Sprintf("the schemas of upstream tool %q do not compile: %v", d.Tool, err)
	}
	if schemas == nil {
		return nil, fmt.Sprintf("the schemas of upstream tool %q compiled to nothing", d.Tool)
	}
	var ann broker.Annotations
	if d.Annotations != nil && json.Unmarshal(d.Annotations, &ann) != nil {
		return nil, fmt.Sprintf("the annotations of upstream tool %q are not an MCP annotations object", d.Tool)
	}
	title := d.Title
	if title == "" {
		title = ann.Title
	}
	return &broker.Tool{
		Name:         e.Name,
		Title:        title,
		Description:  d.Description,
		Target:       ev.cfg.Name,
		InputSchema:  d.InputSchema,
		OutputSchema: d.OutputSchema,
		Annotations:  ann,
		Source:       source,
		Blocks:       true,
		Spec:         &toolSpec{schemas: schemas, tool: d.Tool},
	}, ""
}

// CatalogName returns the catalog name of an upstream tool (prefix or
// rename applied), or "" and why it has none.
func (c Config) CatalogName(tool string) (name, reason string) {
	return c.withDefaults().catalogName(tool)
}

// catalogName maps an upstream tool name to its catalog name, or says why
// it cannot.
func (c Config) catalogName(tool string) (string, string) {
	name, renamed := c.Rename[tool]
	if !renamed {
		name = c.Prefix + tool
	}
	if namePattern.MatchString(name) {
		return name, ""
	}
	if renamed {
		return "", fmt.Sprintf("rename maps upstream tool %q to %q, which is not a valid tool name", tool, name)
	}
	return "", fmt.Sprintf("upstream tool %q becomes %q, which does not match %s (function-calling APIs reject it); map it with rename", tool, name, namePattern)
}

func partList(ps []Part) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	return strings.Join(s, ", ")
}

// toolSpec is the compiled half of an upstream tool: the upstream's own
// schemas, and an operation that names the upstream tool.
type toolSpec struct {
	schemas Schemas
	tool    string
}

var _ broker.ToolSpec = (*toolSpec)(nil)

// ValidateArgs checks args against the upstream's input schema.
func (s *toolSpec) ValidateArgs(args map[string]any) error {
	if args == nil {
		args = map[string]any{}
	}
	return s.schemas.ValidateArgs(args)
}

// Operation encodes the validated arguments for the upstream call.
func (s *toolSpec) Operation(args map[string]any) (broker.Operation, error) {
	if args == nil {
		args = map[string]any{}
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return broker.Operation{}, broker.Wrap(broker.CodeInvalidArguments, err, "the arguments cannot be encoded as JSON")
	}
	return broker.Operation{MCP: &broker.MCPOperation{Tool: s.tool, Args: raw}}, nil
}
