package config

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"
)

// TestSchemaKnowsEveryKind keeps the shipped schema.json in step with
// Kinds, the one list of target kinds: the kind enum names them all, and
// every key of every kind's section is a property of a target.
func TestSchemaKnowsEveryKind(t *testing.T) {
	var s struct {
		Defs map[string]struct {
			Properties map[string]struct {
				Enum []string `json:"enum"`
			} `json:"properties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(SchemaJSON, &s); err != nil {
		t.Fatal(err)
	}
	target := s.Defs["target"]
	var names []string
	for _, k := range Kinds() {
		names = append(names, k.Name)
		var tgt Target
		sec := k.section(&tgt, true)
		typ := reflect.TypeOf(sec).Elem()
		for i := 0; i < typ.NumField(); i++ {
			key, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
			if key == "-" {
				continue // set by loading, not written
			}
			if _, ok := target.Properties[key]; !ok {
				t.Errorf("kind %s has key %s, which schema.json does not allow on a target", k.Name, key)
			}
		}
		if tgt.Kind = k.Name; tgt.Section() != sec {
			t.Errorf("kind %s: Section() does not find its section", k.Name)
		}
	}
	if got := target.Properties["kind"].Enum; !slices.Equal(got, names) {
		t.Errorf("schema.json kinds %v, Kinds() %v", got, names)
	}
}

// TestTargetSections: each kind's keys land in its own section, as flat
// YAML as ever.
func TestTargetSections(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte(`targets:
  crm: {kind: postgres, dsn: "postgres://x", read_only: true, max_conns: 4, mask: {t.c: last4}}
  api: {kind: http, base_url: https://api.example, timeout: 3s}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	crm, api := cfg.Targets["crm"], cfg.Targets["api"]
	if crm.Postgres == nil || crm.Postgres.DSN != "postgres://x" || !crm.Postgres.ReadOnly || crm.Postgres.MaxConns != 4 || crm.HTTP != nil || crm.Mask["t.c"] != "last4" {
		t.Errorf("crm = %+v %+v", crm, crm.Postgres)
	}
	if api.HTTP == nil || api.HTTP.BaseURL != "https://api.example" || api.HTTP.Timeout.D().Seconds() != 3 || api.Postgres != nil {
		t.Errorf("api = %+v %+v", api, api.HTTP)
	}
	if KindsRunning(RunsSQL) != "postgres or sqlite" || KindsServedBy("http") != "http" {
		t.Errorf("KindsRunning = %q, KindsServedBy = %q", KindsRunning(RunsSQL), KindsServedBy("http"))
	}
}

// TestSchemaKnowsNoOtherKey: every key schema.json allows on a target is a
// key of some kind or of every target, so a key no kind has is the
// schema's "unknown key" and a key of another kind is kindKeyProblems'.
func TestSchemaKnowsNoOtherKey(t *testing.T) {
	var s struct {
		Defs map[string]struct {
			Properties map[string]any `json:"properties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(SchemaJSON, &s); err != nil {
		t.Fatal(err)
	}
	for key := range s.Defs["target"].Properties {
		if yamlKeys(&Target{})[key] {
			continue
		}
		if kindNames(func(k TargetKind) bool { return yamlKeys(k.section(&Target{}, true))[key] }) == "" {
			t.Errorf("schema.json allows %s on a target, but no kind has it", key)
		}
	}
}

// TestForeignKeysRefused: for every kind, every key only other kinds have
// is a problem at its line naming the kinds that have it; nothing loads.
func TestForeignKeysRefused(t *testing.T) {
	n := 0
	for _, k := range Kinds() {
		own := yamlKeys(k.section(&Target{}, true))
		for _, o := range Kinds() {
			for key := range yamlKeys(o.section(&Target{}, true)) {
				if own[key] {
					continue
				}
				n++
				doc := "targets:\n  t:\n    kind: " + k.Name + "\n    " + key + ": x\n"
				cfg, err := Parse("t.yaml", []byte(doc), func(string) (string, bool) { return "", false })
				want := fmt.Sprintf("t.yaml:4: targets.t.%s: is a key of ", key)
				tail := fmt.Sprintf(" targets; %s target does not take it", KindPhrase(k.Name))
				if cfg != nil || err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), o.Name) || !strings.Contains(err.Error(), tail) {
					t.Errorf("kind %s with %s: cfg %v, err %v", k.Name, key, cfg != nil, err)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no foreign keys tried")
	}
}

// TestTargetDecodeRefusesForeignKey: decoding a Target directly (not
// through Parse) refuses another kind's key and an unknown one rather than
// dropping it.
func TestTargetDecodeRefusesForeignKey(t *testing.T) {
	for doc, want := range map[string]string{
		"{kind: postgres, dsn: x, base_url: http://x}": "base_url: is a key of http targets; a postgres target does not take it",
		"{kind: sqlite, path: x, pth: y}":              "pth: unknown key",
	} {
		var tgt Target
		err := yaml.Unmarshal([]byte(doc), &tgt)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want %q", doc, err, want)
		}
	}
}

// TestTargetMergeKeys: keys a target takes from a YAML merge (<<: *anchor)
// reach its section; before, they were dropped, read_only included.
func TestTargetMergeKeys(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte(`targets:
  a: &base {kind: postgres, dsn: "postgres://x", read_only: true}
  b: {<<: *base, max_rows: 5}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if b := cfg.Targets["b"].Postgres; b == nil || b.DSN != "postgres://x" || !b.ReadOnly || b.MaxRows != 5 {
		t.Errorf("b = %+v", b)
	}
}
