package tools

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/toolgate/toolgate/tools/schema"

	"github.com/toolgate/toolgate/internal/config"
)

// toolFileSchema compiles tools/schema/tool.schema.json.
func toolFileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema.Tool))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("tool.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("tool.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// TestToolSchemaKeysMatchLoader keeps the shipped schema's keys and enums
// equal to what the loader accepts.
func TestToolSchemaKeysMatchLoader(t *testing.T) {
	var s struct {
		Properties map[string]json.RawMessage `json:"properties"`
		Defs       map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(schema.Tool, &s); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]json.RawMessage) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	sorted := func(in []string) []string { out := slices.Clone(in); sort.Strings(out); return out }
	for name, c := range map[string]struct{ got, want []string }{
		"top-level keys":  {keys(s.Properties), sorted(topKeys)},
		"sql keys":        {keys(s.Defs["sql"].Properties), sorted(sqlKeys)},
		"http keys":       {keys(s.Defs["http"].Properties), sorted(httpKeys)},
		"annotation keys": {keys(s.Defs["annotations"].Properties), sorted(annotationKeys)},
		"preview keys":    {keys(s.Defs["preview"].Properties), sorted(previewKeys)},
		"preview sql":     {keys(s.Defs["previewSQL"].Properties), sorted(previewSQLKeys)},
		// A preview request is a GET, which the loader refuses a body.
		"preview http": {keys(s.Defs["previewHTTP"].Properties), sorted(slices.DeleteFunc(slices.Clone(httpKeys), func(k string) bool { return k == "body" }))},
		"tolerance":    {keys(s.Defs["tolerance"].Properties), sorted(toleranceKeys)},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s: schema has %v, loader %v", name, c.got, c.want)
		}
	}
	var enums struct {
		Properties struct {
			Mask struct {
				AdditionalProperties struct {
					Enum []string `json:"enum"`
				} `json:"additionalProperties"`
			} `json:"mask"`
			Detectors struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"detectors"`
		} `json:"properties"`
		Defs struct {
			HTTP struct {
				Properties struct {
					Method struct {
						Enum []string `json:"enum"`
					} `json:"method"`
				} `json:"properties"`
			} `json:"http"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(schema.Tool, &enums); err != nil {
		t.Fatal(err)
	}
	if got := enums.Properties.Mask.AdditionalProperties.Enum; !slices.Equal(got, maskActions) {
		t.Errorf("mask actions: schema %v, loader %v", got, maskActions)
	}
	if got := keys(enums.Properties.Detectors.Properties); !slices.Equal(got, sorted(detectorNames)) {
		t.Errorf("detectors: schema %v, loader %v", got, detectorNames)
	}
	if got := enums.Defs.HTTP.Properties.Method.Enum; !slices.Equal(got, httpMethods) {
		t.Errorf("http methods: schema %v, loader %v", got, httpMethods)
	}
}

// repoToolFiles lists every tool declaration in the repository's examples
// and test data.
func repoToolFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{"../examples/*/tools/*.json", "../cmd/toolgate/testdata/*/tools/*.json", "testdata/load/*/*.json"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 20 {
		t.Fatalf("found only %d tool files; the globs are wrong", len(files))
	}
	return files
}

// guessTargets names the file's target with the kind its operation needs,
// so Parse judges the declaration itself.
func guessTargets(data []byte) map[string]string {
	var d struct {
		Target string          `json:"target"`
		HTTP   json.RawMessage `json:"http"`
	}
	_ = json.Unmarshal(data, &d)
	kind := config.KindPostgres
	if d.HTTP != nil {
		kind = config.KindHTTP
	}
	return map[string]string{d.Target: kind}
}

// TestToolSchemaAcceptsWhatLoads: every tool file the loader accepts passes
// the shipped schema, and the structurally broken test cases fail it.
func TestToolSchemaAcceptsWhatLoads(t *testing.T) {
	sch := toolFileSchema(t)
	accepted := 0
	for _, f := range repoToolFiles(t) {
		if st, err := os.Stat(f); err != nil || st.IsDir() {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		doc, jerr := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		_, probs := Parse(f, data, guessTargets(data))
		// Duplicate keys are beyond what a JSON Schema can see.
		structural := (strings.Contains(f, "/unknown_keys/") || strings.Contains(f, "/mask_detectors/") || strings.Contains(f, "/bad_json/")) &&
			!strings.HasSuffix(f, "duplicate.json") ||
			// A target's kind is beyond the schema too.
			strings.Contains(f, "/preview/") && !strings.HasSuffix(f, "/sqlite.json")
		switch {
		case len(probs) == 0:
			accepted++
			if jerr != nil {
				t.Errorf("%s: loads but is not JSON to the schema validator: %v", f, jerr)
			} else if err := sch.Validate(doc); err != nil {
				t.Errorf("%s: the loader accepts it but tool.schema.json refuses it:\n%v", f, err)
			}
		case structural:
			if jerr == nil && sch.Validate(doc) == nil {
				t.Errorf("%s: the loader refuses it (%s) but tool.schema.json accepts it", f, probs[0])
			}
		}
	}
	if accepted < 10 {
		t.Errorf("only %d tool files loaded; the test would prove little", accepted)
	}
}

// TestExampleToolsReferenceSchema: the examples' tool files name the
// shipped schema in "$schema", by a path that resolves from their folder.
func TestExampleToolsReferenceSchema(t *testing.T) {
	files, _ := filepath.Glob("../examples/*/tools/*.json")
	if len(files) == 0 {
		t.Fatal("no example tools")
	}
	want, _ := filepath.Abs("schema/tool.schema.json")
	for _, f := range files {
		var d struct {
			Schema string `json:"$schema"`
		}
		b, _ := os.ReadFile(f)
		if err := json.Unmarshal(b, &d); err != nil || d.Schema == "" {
			t.Errorf("%s: no \"$schema\"", f)
			continue
		}
		got, _ := filepath.Abs(filepath.Join(filepath.Dir(f), filepath.FromSlash(d.Schema)))
		if got != want {
			t.Errorf("%s: $schema %q resolves to %s, want %s", f, d.Schema, got, want)
		}
	}
}
