package config

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
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
