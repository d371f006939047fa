package mask

import (
	"fmt"
	"sort"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

var _ broker.Masker = (*Masker)(nil)
var _ broker.ColumnMasker = (*Masker)(nil)

// Rule layers, in increasing precedence.
const (
	layerGlobal = iota
	layerTarget
	layerTool
)

// rule is one compiled path rule.
type rule struct {
	path   string
	action string
	stat   string // "rule:<path>"
	layer  int
	segs   []segment
}

// targetMasking is a target's merged, compiled masking.
type targetMasking struct {
	rules     []rule            // global < target, in precedence order
	ruleMap   map[string]string // the merged path → action map
	layers    map[string]int    // the layer each merged path came from
	detectors detectorSet       // detectors for results from this target
	cells     map[string]string // target "table.column" rules, then global
}

// Masker masks results, records and text. It is immutable after New and
// safe for concurrent use. A tool's result masking is compiled once, by
// PrepareTool, when the catalog loads.
type Masker struct {
	hashKey []byte
	log     *zap.Logger
	global  targetMasking // used for tools whose target has no entry
	targets map[string]*targetMasking
	record  detectorSet // detectors for MaskRecord and MaskText
	secrets *secretSet  // credentials redacted by value; nil for none
}

// ToolMasking is one tool's result masking, compiled by PrepareTool: the
// merged rules (global < target < tool) and the detectors. It is
// immutable.
type ToolMasking struct {
	m     *Masker
	rules []rule
	det   detectorSet
}

var _ broker.ToolMask = (*ToolMasking)(nil)

// New validates cfg and compiles it. A nil log means zap.NewNop().
func New(cfg Config, log *zap.Logger) (*Masker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("masking config: %w", err)
	}
	if log == nil {
		log = zap.NewNop()
	}
	m := &Masker{
		hashKey: append([]byte(nil), cfg.HashKey...),
		log:     log,
		targets: make(map[string]*targetMasking, len(cfg.Targets)),
		record:  detAll.apply(cfg.Detectors),
	}
	var skipped []string
	m.secrets, skipped = newSecretSet(cfg.Secrets)
	for _, where := range skipped {
		log.Warn("a configured credential is too short to be redacted by value from results, records and logs",
			zap.String("where", where), zap.Int("min_bytes", MinSecretBytes))
	}
	m.global = compileTarget(cfg.Rules, TargetConfig{}, cfg.Detectors)
	for name, t := range cfg.Targets {
		tm := compileTarget(cfg.Rules, t, cfg.Detectors)
		m.targets[name] = &tm
	}
	return m, nil
}

func compileTarget(global map[string]string, t TargetConfig, globalDet map[string]bool) targetMasking {
	tm := targetMasking{
		ruleMap:   map[string]string{},
		layers:    map[string]int{},
		detectors: detResultDefault.apply(globalDet).apply(t.Detectors),
		cells:     map[string]string{},
	}
	for p, a := range global {
		tm.ruleMap[p], tm.layers[p] = a, layerGlobal
		tm.cells[p] = a
	}
	for p, a := range t.Rules {
		tm.ruleMap[p], tm.layers[p] = a, layerTarget
		tm.cells[p] = a
	}
	tm.rules = compileRules(tm.ruleMap, tm.layers)
	return tm
}

// compileRules compiles paths already validated, ordered so that a lower
// index wins: higher layer first, then path.
func compileRules(rules map[string]string, layers map[string]int) []rule {
	out := make([]rule, 0, len(rules))
	for p, a := range rules {
		segs, err := compilePath(p)
		if err != nil {
			continue // unreachable for validated rules; compileTool reports its own
		}
		out = append(out, rule{path: p, action: a, stat: "rule:" + p, layer: layers[p], segs: segs})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].layer != out[j].layer {
			return out[i].layer > out[j].layer
		}
		return out[i].path < out[j].path
	})
	return out
}

// CheckTool reports whether the tool's mask rules and detector switches are
// valid and usable with this masker (a hash rule needs a hash key). The
// tools loader calls it so a bad declaration fails at load.
func (m *Masker) CheckTool(tool *broker.Tool) error {
	if err := ValidateRules(tool.Mask); err != nil {
		return fmt.Errorf("tool %s: %w", tool.Name, err)
	}
	if err := ValidateDetectors(tool.Detectors); err != nil {
		return fmt.Errorf("tool %s: detectors: %w", tool.Name, err)
	}
	for p, a := range tool.Mask {
		if a == ActionHash && len(m.hashKey) < MinHashKeyBytes {
			return fmt.Errorf("tool %s: mask[%q] uses hash but masking.hash_key is not set", tool.Name, p)
		}
	}
	return nil
}

// PrepareTool merges and compiles the masking of a tool's results: its
// target's rules (else the global ones) under the tool's own, and the
// target's result detectors with the tool's switches. A nil tool gets the
// global masking. An invalid declaration is an error, as CheckTool says.
func (m *Masker) PrepareTool(tool *broker.Tool) (broker.ToolMask, error) {
	if tool == nil {
		return &ToolMasking{m: m, rules: m.global.rules, det: m.global.detectors}, nil
	}
	tm := &m.global
	if t, ok := m.targets[tool.Target]; ok {
		tm = t
	}
	if err := ValidateDetectors(tool.Detectors); err != nil {
		return nil, fmt.Errorf("tool %s: detectors: %w", tool.Name, err)
	}
	det := tm.detectors.apply(tool.Detectors)
	if len(tool.Mask) == 0 {
		return &ToolMasking{m: m, rules: tm.rules, det: det}, nil
	}
	if err := m.CheckTool(tool); err != nil {
		return nil, err
	}
	merged := make(map[string]string, len(tm.ruleMap)+len(tool.Mask))
	layers := make(map[string]int, len(tm.ruleMap)+len(tool.Mask))
	for p, a := range tm.ruleMap {
		merged[p], layers[p] = a, tm.layers[p]
	}
	for p, a := range tool.Mask {
		merged[p], layers[p] = a, layerTool
	}
	return &ToolMasking{m: m, rules: compileRules(merged, layers), det: det}, nil
}

// Mask masks a result document with the tool's merged rules and result
// detectors. Invalid JSON comes back as a JSON string of the
// detector-masked text. An error (a document nested deeper than MaxDepth, a
// rule that cannot be applied) means the result must be withheld.
func (t *ToolMasking) Mask(doc []byte) ([]byte, broker.MaskStats, error) {
	stats := broker.MaskStats{}
	out, err := t.m.mask(doc, t.rules, t.det, stats)
	if err != nil {
		return nil, nil, err
	}
	return out, stats, nil
}

// MaskResult prepares tool's masking and masks doc with it: for a one-off
// document (the samples `toolgate tools scaffold` reads, tests). A server prepares each tool
// once, when its catalog loads, and masks with the ToolMask.
func (m *Masker) MaskResult(tool *broker.Tool, doc []byte) ([]byte, broker.MaskStats, error) {
	tm, err := m.PrepareTool(tool)
	if err != nil {
		return nil, nil, err
	}
	return tm.Mask(doc)
}

// MaskRecord masks a document bound for a recording or a log line: global
// rules do not apply, every detector does, email included (unless the
// global switches turn one off).
func (m *Masker) MaskRecord(doc []byte) ([]byte, error) {
	return m.mask(doc, nil, m.record, nil)
}

// MaskText masks free text with the record detectors. Text that spells a
// value with \uXXXX escapes is masked in its decoded form.
func (m *Masker) MaskText(s string) string {
	out, _, changed := m.maskText([]byte(s), m.record)
	if !changed {
		return s
	}
	return string(out)
}

// maskText redacts known credentials in text, then masks detector hits.
func (m *Masker) maskText(b []byte, det detectorSet) (out []byte, hits []hit, changed bool) {
	b, n := m.secrets.redactText(b)
	out, hits, changed = maskTextBytes(b, det)
	return out, hits, changed || n > 0
}

// MaskCell masks one text cell of a passthrough DataRow. column is
// "table.column"; the target's rule for it (else a global rule with that
// exact key) applies, then the target's result detectors. It returns the
// cell and whether it changed; a nil cell with true means the cell becomes
// SQL NULL (actions null, drop and deny).
func (m *Masker) MaskCell(target, column string, value []byte) ([]byte, bool) {
	tm := &m.global
	if t, ok := m.targets[target]; ok {
		tm = t
	}
	if action, ok := tm.cells[column]; ok {
		w := walker{hashKey: m.hashKey}
		switch action {
		case ActionNull, ActionDrop, ActionDeny:
			return nil, true
		}
		return w.actOnText(action, value), true
	}
	out, _, changed := m.maskText(value, tm.detectors)
	return out, changed
}

// MaskColumn is MaskCell for every cell of one result column, resolved
// once: the column's rule or the detectors. With shortInteger the caller
// vouches that every cell is an optionally signed integer of at most 10
// digits or a boolean's t or f (smallint, integer, oid, boolean): no
// detector can match one (a card has 13 or more digits, an SSN has
// separators, the others need letters or '@'), so unless a rule names the
// column or a configured credential is spelled with digits and signs
// only, MaskColumn returns nil: no cell of the column can change.
func (m *Masker) MaskColumn(target, column string, shortInteger bool) func([]byte) ([]byte, bool) {
	tm := &m.global
	if t, ok := m.targets[target]; ok {
		tm = t
	}
	if action, ok := tm.cells[column]; ok {
		switch action {
		case ActionNull, ActionDrop, ActionDeny:
			return func([]byte) ([]byte, bool) { return nil, true }
		}
		return func(v []byte) ([]byte, bool) {
			w := walker{hashKey: m.hashKey}
			return w.actOnText(action, v), true
		}
	}
	if shortInteger && !m.secrets.integerLike() {
		return nil
	}
	det := tm.detectors
	return func(v []byte) ([]byte, bool) {
		out, _, changed := m.maskText(v, det)
		return out, changed
	}
}

// mask runs the walker and falls back to text for invalid JSON.
func (m *Masker) mask(doc []byte, rules []rule, det detectorSet, stats broker.MaskStats) ([]byte, error) {
	w := walker{in: doc, rules: rules, det: det, stats: stats, hashKey: m.hashKey, sec: m.secrets}
	out, err := w.run()
	if err == nil {
		return out, nil
	}
	if err == errSyntax {
		w.ruleN, w.detN, w.secN = nil, [8]int{}, 0 // forget counts from the partial walk
		red, n := m.secrets.redactText(doc)
		w.secN = n
		masked, hits, _ := maskTextBytes(red, det)
		for _, h := range hits {
			w.countDetector(h.kind)
		}
		w.flushStats()
		return appendQuoted(make([]byte, 0, len(masked)+2), masked), nil
	}
	m.log.Debug("masking failed", zap.Error(err), zap.Int("bytes", len(doc)))
	return nil, err
}
