package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/summary.golden")

func TestParseLine(t *testing.T) {
	for _, c := range []struct {
		line   string
		ok     bool
		name   string
		metric string
		want   float64
	}{
		{"BenchmarkDecide-2   \t 1557304\t       748.7 ns/op\t      48 B/op", true, "BenchmarkDecide", "ns/op", 748.7},
		{"BenchmarkMask1MB \t     518\t   4521129 ns/op\t 231.96 MB/s", true, "BenchmarkMask1MB", "MB/s", 231.96},
		{"BenchmarkToolsCall/bare-mcp-go-2  100  5 ns/op", true, "BenchmarkToolsCall/bare-mcp-go", "ns/op", 5},
		{"BenchmarkDecide-2 --- FAIL: something", false, "", "", 0},
		{"BenchmarkDecide", false, "", "", 0},
		{"ok  \tgithub.com/toolgate/toolgate/policy\t2.005s", false, "", "", 0},
		{"    bench_test.go:122: BenchmarkMCPOverhead 1 2 ns/op", false, "", "", 0},
	} {
		res, ok := parseLine(c.line)
		if ok != c.ok {
			t.Errorf("parseLine(%q) ok = %v, want %v", c.line, ok, c.ok)
			continue
		}
		if ok && (res.Name != c.name || res.Metrics[c.metric] != c.want) {
			t.Errorf("parseLine(%q) = %+v, want %s %s=%v", c.line, res, c.name, c.metric, c.want)
		}
	}
}

// TestSummary: the table for a recorded run, against a golden file. The
// recorded run has no Postgres audit line (MISSING) and no passthrough
// benchmark (not built).
func TestSummary(t *testing.T) {
	f, err := os.Open("testdata/bench.out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	results, err := parse(f)
	if err != nil {
		t.Fatal(err)
	}
	rows := summarize(results, targets())
	want := map[string]verdict{}
	for _, r := range rows {
		want[r.What] = r.Verdict
	}
	for what, v := range map[string]verdict{
		"MCP tools/call throughput, toolgate vs bare mcp-go (16 callers)":    fail,
		"mask a 1 MB JSON result, 5 rules + detectors, 1 core":               pass,
		"upstream MCP tool through toolgate vs called directly (16 callers)": fail,
		"policy decision, 3 CEL conditions":                                  pass,
		"audit writes, SQLite (16 writers)":                                  pass,
		"audit writes, Postgres (16 writers)":                                missing,
		"Postgres passthrough, pgbench -S 16 clients, vs direct":             notYet,
	} {
		if want[what] != v {
			t.Errorf("%s: %s, want %s", what, want[what], v)
		}
	}
	if !failed(rows) {
		t.Error("failed() = false with a FAIL and a MISSING row")
	}
	var buf bytes.Buffer
	printTable(&buf, rows)
	golden := filepath.Join("testdata", "summary.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exp, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), exp) {
		t.Errorf("table differs from %s (run with -update):\n%s", golden, buf.String())
	}
}

func TestPassthroughHook(t *testing.T) {
	root := t.TempDir()
	steps, err := plan("go", root, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 4 {
		t.Fatalf("without a hook: %d steps, want 4", len(steps))
	}
	if err := os.WriteFile(filepath.Join(root, "Makefile"), []byte("bench-passthrough: build\n\t./x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	steps, _ = plan("go", root, 10, "")
	if len(steps) != 5 || steps[4].cmd[len(steps[4].cmd)-1] != "bench-passthrough" {
		t.Fatalf("with a make target: %+v", steps[len(steps)-1])
	}
	dir := filepath.Join(root, "passthrough", "postgres")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bench_test.go"), []byte("package postgres\n\nfunc BenchmarkPgbench(b *testing.B) {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	steps, _ = plan("go", root, 10, "")
	if last := steps[len(steps)-1]; len(steps) != 5 || last.cmd[len(last.cmd)-1] != "./passthrough/postgres" {
		t.Fatalf("with BenchmarkPgbench: %+v", last)
	}
}
