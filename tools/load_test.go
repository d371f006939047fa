package tools

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/toolgate/toolgate/internal/config"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// testTargets are the targets every load case is checked against.
var testTargets = map[string]string{
	"crm":     config.KindPostgres,
	"demo":    config.KindSQLite,
	"billing": config.KindHTTP,
	"cache":   "redis",
}

// TestLoadGolden loads each testdata/load/<case> folder and compares the
// outcome (the loaded tools, or every problem) with its expected.txt.
func TestLoadGolden(t *testing.T) {
	cases, err := filepath.Glob("testdata/load/*")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no load cases: %v", err)
	}
	for _, dir := range cases {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			got := loadOutcome(t, dir)
			golden := filepath.Join(dir, "expected.txt")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestLoadGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("outcome differs from %s:\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

// loadOutcome renders what Load did with dir: one "ok" line per tool, or one
// line per problem, with the folder prefix removed from file names.
func loadOutcome(t *testing.T, dir string) string {
	t.Helper()
	cat, err := Load(dir, testTargets)
	var b strings.Builder
	if err != nil {
		if cat == nil {
			t.Errorf("Load returned no catalog with its problems")
		}
		var le *LoadError
		if !errors.As(err, &le) {
			t.Fatalf("Load error is %T, want *LoadError: %v", err, err)
		}
		if len(le.Problems) == 0 {
			t.Fatalf("LoadError without problems")
		}
		for _, p := range le.Problems {
			if p.File == "" || p.Reason == "" {
				t.Errorf("problem without file or reason: %#v", p)
			}
			p.File = strings.TrimPrefix(filepath.ToSlash(p.File), filepath.ToSlash(dir)+"/")
			b.WriteString(p.String())
			b.WriteByte('\n')
		}
		for _, tool := range cat.Tools() {
			if sp := tool.Spec.(*Spec); sp.sql == nil && sp.http == nil {
				if _, err := sp.Operation(map[string]any{}); err == nil {
					t.Errorf("stand-in %s builds an operation", tool.Name)
				}
				b.WriteString("stand-in " + tool.Name + "\n")
				continue
			}
			b.WriteString("ok " + tool.Name + " (" + tool.Target + ")\n")
		}
		return b.String()
	}
	for _, tool := range cat.Tools() {
		if tool.Spec == nil || tool.Source == "" || len(tool.InputSchema) == 0 {
			t.Errorf("tool %s is missing Spec, Source or InputSchema", tool.Name)
		}
		b.WriteString("ok " + tool.Name + " (" + tool.Target + ")\n")
	}
	return b.String()
}

func TestLoadMissingFolder(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope"), testTargets)
	var le *LoadError
	if !errors.As(err, &le) || len(le.Problems) != 1 {
		t.Fatalf("want one problem, got %v", err)
	}
	if !strings.Contains(le.Problems[0].Reason, "cannot read the tools folder") {
		t.Errorf("reason = %q", le.Problems[0].Reason)
	}
}

func TestLoadEmptyFolder(t *testing.T) {
	cat, err := Load(t.TempDir(), testTargets)
	if err != nil {
		t.Fatal(err)
	}
	if cat.Len() != 0 || len(cat.Tools()) != 0 {
		t.Errorf("empty folder loaded %d tools", cat.Len())
	}
}

func TestLoadErrorText(t *testing.T) {
	err := &LoadError{Problems: []Problem{
		{File: "a.json", Path: "/sql/statement", Reason: "holds more than one statement"},
		{File: "b.json", Reason: "not valid JSON"},
	}}
	want := "2 problems in tool declarations:\n  a.json: /sql/statement: holds more than one statement\n  b.json: /: not valid JSON"
	if err.Error() != want {
		t.Errorf("Error() =\n%s\nwant\n%s", err.Error(), want)
	}
	err.Problems[0].Line = 7
	want = "2 problems in tool declarations:\n  a.json:7: /sql/statement: holds more than one statement\n  b.json: /: not valid JSON"
	if err.Error() != want {
		t.Errorf("Error() =\n%s\nwant\n%s", err.Error(), want)
	}
}
