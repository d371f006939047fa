package mcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
)

// LockVersion is the format version of the lock file this package writes.
const LockVersion = 1

// Lock is the tools lock file: for each mcp target and each of its upstream
// tools, the digests of the definition a person reviewed and pinned. It is
// JSON with sorted keys and one value per line, so a change shows as a
// small diff in review.
type Lock struct {
	Version int                   `json:"version"`
	Targets map[string]TargetPins `json:"targets"`
}

// TargetPins are one target's pins, by upstream tool name.
type TargetPins map[string]ToolPin

// ToolPin is the pinned digest of one tool's definition, with one digest
// per part so a difference can be named.
type ToolPin struct {
	// Digest covers the name and every part.
	Digest string          `json:"digest"`
	Parts  map[Part]string `json:"parts"`
}

var digestPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// ReadLock reads the lock file at path. A missing file is an empty lock:
// nothing is pinned yet. Any other problem is an error, and the caller
// must then expose no tool of any target.
func ReadLock(path string) (*Lock, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Lock{Version: LockVersion, Targets: map[string]TargetPins{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tools lock %s: %w", path, err)
	}
	return ParseLock(data)
}

// ParseLock decodes and checks a lock file's content.
func ParseLock(data []byte) (*Lock, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var l Lock
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("the tools lock is not valid: %w", err)
	}
	if dec.More() {
		return nil, errors.New("the tools lock is not valid: text follows the JSON object")
	}
	if l.Version != LockVersion {
		return nil, fmt.Errorf("the tools lock has version %d; this toolgate reads version %d", l.Version, LockVersion)
	}
	if l.Targets == nil {
		l.Targets = map[string]TargetPins{}
	}
	for _, target := range slices.Sorted(maps.Keys(l.Targets)) {
		for _, tool := range slices.Sorted(maps.Keys(l.Targets[target])) {
			if err := l.Targets[target][tool].check(); err != nil {
				return nil, fmt.Errorf("the tools lock pin of %s tool %q %w", target, tool, err)
			}
		}
	}
	return &l, nil
}

func (p ToolPin) check() error {
	if !digestPattern.MatchString(p.Digest) {
		return errors.New("has no valid sha256 digest")
	}
	for _, part := range parts {
		if !digestPattern.MatchString(p.Parts[part]) {
			return fmt.Errorf("has no valid digest for %s", part)
		}
	}
	if len(p.Parts) != len(parts) {
		return errors.New("has a digest for an unknown part")
	}
	return nil
}

// Set replaces the pins of target (removing them when pins is nil).
func (l *Lock) Set(target string, pins TargetPins) {
	if l.Targets == nil {
		l.Targets = map[string]TargetPins{}
	}
	if pins == nil {
		delete(l.Targets, target)
		return
	}
	l.Targets[target] = pins
}

// Marshal returns the lock file's content: indented JSON, keys sorted, a
// final newline.
func (l *Lock) Marshal() ([]byte, error) {
	out := Lock{Version: LockVersion, Targets: l.Targets}
	if out.Targets == nil {
		out.Targets = map[string]TargetPins{}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// WriteFile writes the lock to path atomically (a temporary file renamed
// over it), so a reader never sees half a lock.
func (l *Lock) WriteFile(path string) error {
	data, err := l.Marshal()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tools.lock-*")
	if err != nil {
		return fmt.Errorf("write tools lock: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write tools lock: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write tools lock: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write tools lock: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write tools lock: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write tools lock: %w", err)
	}
	return nil
}

// Pin returns the pins of the current definitions of one target: what
// `toolgate tools pin` writes after a person reviewed them.
func Pin(current []Definition) (TargetPins, error) {
	pins := make(TargetPins, len(current))
	for _, d := range current {
		if _, dup := pins[d.Tool]; dup {
			return nil, fmt.Errorf("the upstream lists tool %q twice", d.Tool)
		}
		p, err := d.pin()
		if err != nil {
			return nil, err
		}
		pins[d.Tool] = p
	}
	return pins, nil
}

// Status is how a tool's current definition compares with its pin.
type Status string

// The statuses of a Change.
const (
	StatusNew       Status = "new"
	StatusRemoved   Status = "removed"
	StatusChanged   Status = "changed"
	StatusUnchanged Status = "unchanged"
)

// Change is one tool's line in a diff.
type Change struct {
	// Tool is the upstream tool name.
	Tool   string
	Status Status
	// Parts names what changed (StatusChanged only), in a fixed order.
	Parts []Part
}

// Diff compares the current definitions of one target with its pins: one
// Change per tool listed or pinned, sorted by tool name.
func Diff(pins TargetPins, current []Definition) ([]Change, error) {
	var out []Change
	listed := make(map[string]bool, len(current))
	for _, d := range current {
		listed[d.Tool] = true
		got, err := d.pin()
		if err != nil {
			return nil, err
		}
		out = append(out, compare(pins, d.Tool, got))
	}
	for tool := range pins {
		if !listed[tool] {
			out = append(out, Change{Tool: tool, Status: StatusRemoved})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tool < out[j].Tool })
	return out, nil
}

// compare returns the change of one listed tool against its pin.
func compare(pins TargetPins, tool string, got ToolPin) Change {
	want, ok := pins[tool]
	switch {
	case !ok:
		return Change{Tool: tool, Status: StatusNew}
	case want.Digest == got.Digest:
		return Change{Tool: tool, Status: StatusUnchanged}
	}
	c := Change{Tool: tool, Status: StatusChanged}
	for _, part := range parts {
		if want.Parts[part] != got.Parts[part] {
			c.Parts = append(c.Parts, part)
		}
	}
	return c
}
