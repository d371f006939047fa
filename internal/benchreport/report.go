package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// result is one benchmark line: its name without the -GOMAXPROCS suffix
// and its metrics by unit ("ns/op", "MB/s", "records/s", ...).
type result struct {
	Name    string
	Metrics map[string]float64
}

// parse reads `go test -bench` output and returns every benchmark line.
// Other lines are ignored. A benchmark run twice keeps its last line.
func parse(r io.Reader) (map[string]result, error) {
	out := map[string]result{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if res, ok := parseLine(sc.Text()); ok {
			out[res.Name] = res
		}
	}
	return out, sc.Err()
}

// parseLine parses "BenchmarkX-2  1000  123 ns/op  4.5 MB/s ...".
func parseLine(line string) (result, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
		return result{}, false
	}
	if _, err := strconv.Atoi(f[1]); err != nil {
		return result{}, false
	}
	name := f[0]
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i]
		}
	}
	res := result{Name: name, Metrics: map[string]float64{}}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return result{}, false
		}
		res.Metrics[f[i+1]] = v
	}
	return res, true
}

// verdict is how a row compares with its target.
type verdict string

const (
	pass    verdict = "PASS"
	fail    verdict = "FAIL"
	info    verdict = "info"
	missing verdict = "MISSING"
	notYet  verdict = "not built"
)

// row is one line of the summary table.
type row struct {
	What, Measured, Target, Ratio string
	Verdict                       verdict
}

// check describes how one target is read from the results.
type check struct {
	what   string
	bench  string
	metric string
	target string
	// judge returns the measured text, the ratio text and the verdict.
	judge func(v float64, m map[string]float64) (measured, ratio string, ok verdict)
	// optional rows report "not built" instead of MISSING when absent.
	optional bool
}

func verdictOf(ok bool) verdict {
	if ok {
		return pass
	}
	return fail
}

// targets are the DESIGN §11 targets.
func targets() []check {
	return []check{
		{what: "MCP tools/call throughput, toolgate vs bare mcp-go (16 callers)", bench: "BenchmarkMCPOverhead", metric: "x-bare", target: ">= 0.85x",
			judge: func(v float64, m map[string]float64) (string, string, verdict) {
				return fmt.Sprintf("%.0f vs %.0f calls/s", m["tg-calls/s"], m["bare-calls/s"]), fmt.Sprintf("%.2fx", v), verdictOf(v >= 0.85)
			}},
		{what: "MCP tools/call added p50 (16 callers)", bench: "BenchmarkMCPOverhead", metric: "added-p50-ms", target: "<= 0.2 ms",
			judge: func(v float64, m map[string]float64) (string, string, verdict) {
				return fmt.Sprintf("%.3f ms (%.3f vs %.3f)", v, m["tg-p50-ms"], m["bare-p50-ms"]), fmt.Sprintf("%.1fx budget", v/0.2), verdictOf(v <= 0.2)
			}},
		{what: "MCP tools/call added p99 (16 callers)", bench: "BenchmarkMCPOverhead", metric: "added-p99-ms", target: "-",
			judge: func(v float64, m map[string]float64) (string, string, verdict) {
				return fmt.Sprintf("%.3f ms (%.3f vs %.3f)", v, m["tg-p99-ms"], m["bare-p99-ms"]), "-", info
			}},
		{what: "MCP tools/call added p50, one caller", bench: "BenchmarkMCPOverhead", metric: "serial-added-p50-ms", target: "-",
			judge: func(v float64, m map[string]float64) (string, string, verdict) {
				return fmt.Sprintf("%.3f ms (%.3f vs %.3f)", v, m["serial-tg-p50-ms"], m["serial-bare-p50-ms"]), "-", info
			}},
		{what: "upstream MCP tool through toolgate vs called directly (16 callers)", bench: "BenchmarkUpstreamOverhead", metric: "x-direct", target: ">= 0.7x",
			judge: func(v float64, m map[string]float64) (string, string, verdict) {
				return fmt.Sprintf("%.0f vs %.0f calls/s", m["tg-calls/s"], m["direct-calls/s"]), fmt.Sprintf("%.2fx", v), verdictOf(v >= 0.7)
			}},
		{what: "mask a 1 MB JSON result, 5 rules + detectors, 1 core", bench: "BenchmarkMask1MB", metric: "MB/s", target: ">= 200 MB/s",
			judge: func(v float64, _ map[string]float64) (string, string, verdict) {
				return fmt.Sprintf("%.0f MB/s", v), fmt.Sprintf("%.2fx", v/200), verdictOf(v >= 200)
			}},
		{what: "policy decision, 3 CEL conditions", bench: "BenchmarkDecide", metric: "ns/op", target: "<= 2 µs",
			judge: func(v float64, _ map[string]float64) (string, string, verdict) {
				return fmt.Sprintf("%.2f µs", v/1000), fmt.Sprintf("%.2fx", 2000/v), verdictOf(v <= 2000)
			}},
		{what: "audit writes, SQLite (16 writers)", bench: "BenchmarkRecordSQLite", metric: "records/s", target: ">= 20,000/s",
			judge: func(v float64, _ map[string]float64) (string, string, verdict) {
				return fmt.Sprintf("%.0f records/s", v), fmt.Sprintf("%.2fx", v/20000), verdictOf(v >= 20000)
			}},
		{what: "audit writes, Postgres (16 writers)", bench: "BenchmarkRecordPostgres", metric: "records/s", target: ">= 20,000/s",
			judge: func(v float64, _ map[string]float64) (string, string, verdict) {
				return fmt.Sprintf("%.0f records/s", v), fmt.Sprintf("%.2fx", v/20000), verdictOf(v >= 20000)
			}},
		{what: "Postgres passthrough, pgbench -S 16 clients, vs direct", bench: "BenchmarkPgbench", metric: "x-direct", target: ">= 0.7x", optional: true,
			judge: func(v float64, _ map[string]float64) (string, string, verdict) {
				return fmt.Sprintf("%.2fx direct", v), fmt.Sprintf("%.2fx", v), verdictOf(v >= 0.7)
			}},
		{what: "Postgres passthrough, pgbench -S 16 clients, vs PgBouncer", bench: "BenchmarkPgbench", metric: "x-pgbouncer", target: ">= 1.0x", optional: true,
			judge: func(v float64, _ map[string]float64) (string, string, verdict) {
				return fmt.Sprintf("%.2fx PgBouncer", v), fmt.Sprintf("%.2fx", v), verdictOf(v >= 1.0)
			}},
		{what: "Postgres passthrough, pgbench -S, in-memory audit (the proxy alone)", bench: "BenchmarkPgbench", metric: "x-direct-memaudit", target: "-", optional: true,
			judge: func(v float64, m map[string]float64) (string, string, verdict) {
				return fmt.Sprintf("%.2fx direct, %.2fx PgBouncer", v, m["x-pgbouncer-memaudit"]), "-", info
			}},
		{what: "Postgres passthrough, psql fetching 50,000 rows, vs direct", bench: "BenchmarkPgbench", metric: "x-direct-psql-50k", target: ">= 0.85x", optional: true,
			judge: func(v float64, _ map[string]float64) (string, string, verdict) {
				return fmt.Sprintf("%.2fx direct", v), fmt.Sprintf("%.2fx", v), verdictOf(v >= 0.85)
			}},
		{what: "Postgres passthrough, pgx 50,000-row SELECT (binary ints), vs direct", bench: "BenchmarkPgbench", metric: "x-direct-50k-rows", target: "-", optional: true,
			judge: func(v float64, _ map[string]float64) (string, string, verdict) {
				return fmt.Sprintf("%.2fx direct", v), "-", info
			}},
	}
}

// summarize judges the results against checks.
func summarize(results map[string]result, checks []check) []row {
	var rows []row
	for _, c := range checks {
		r := row{What: c.what, Target: c.target, Ratio: "-"}
		res, ok := results[c.bench]
		v, have := res.Metrics[c.metric]
		switch {
		case ok && have:
			r.Measured, r.Ratio, r.Verdict = c.judge(v, res.Metrics)
		case c.optional && !ok:
			r.Measured, r.Verdict = "hook: BenchmarkPgbench or make bench-passthrough", notYet
		default:
			r.Measured, r.Verdict = fmt.Sprintf("no %s from %s", c.metric, c.bench), missing
		}
		rows = append(rows, r)
	}
	return rows
}

// failed reports whether any row missed its target or went unmeasured.
func failed(rows []row) bool {
	for _, r := range rows {
		if r.Verdict == fail || r.Verdict == missing {
			return true
		}
	}
	return false
}

// printTable writes rows as an aligned text table.
func printTable(w io.Writer, rows []row) {
	head := row{What: "what", Measured: "measured", Target: "target", Ratio: "ratio", Verdict: "result"}
	all := append([]row{head}, rows...)
	width := [4]int{}
	for _, r := range all {
		for i, s := range []string{r.What, r.Measured, r.Target, r.Ratio} {
			width[i] = max(width[i], len([]rune(s)))
		}
	}
	pad := func(s string, n int) string { return s + strings.Repeat(" ", n-len([]rune(s))) }
	for i, r := range all {
		fmt.Fprintf(w, "%s  %s  %s  %s  %s\n", pad(r.What, width[0]), pad(r.Measured, width[1]), pad(r.Target, width[2]), pad(r.Ratio, width[3]), r.Verdict)
		if i == 0 {
			fmt.Fprintln(w, strings.Repeat("-", width[0]+width[1]+width[2]+width[3]+8+len("result")))
		}
	}
}
