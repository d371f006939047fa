package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// step is one `go test` (or make) run whose output holds benchmark lines.
type step struct {
	name string
	cmd  []string
	env  []string
}

func main() {
	goBin := flag.String("go", envOr("GO", "go"), "go command")
	root := flag.String("root", ".", "module root")
	calls := flag.Int("calls", 400, "MCP comparison: calls per caller per server")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the MCP comparison to this file (the test binary is kept next to it)")
	flag.Parse()
	os.Exit(run(*goBin, *root, *calls, *profile, os.Stdout))
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// run executes the steps in order and prints the summary. It returns the
// process exit code: 1 when a step failed or a target was missed.
func run(goBin, root string, calls int, profile string, w io.Writer) int {
	steps, err := plan(goBin, root, calls, profile)
	if err != nil {
		fmt.Fprintln(w, "benchreport:", err)
		return 2
	}
	var all bytes.Buffer
	var errs []string
	start, load0 := time.Now(), loadAverage()
	for _, s := range steps {
		fmt.Fprintf(w, "\n=== %s: %s\n", s.name, strings.Join(s.cmd, " "))
		cmd := exec.Command(s.cmd[0], s.cmd[1:]...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), s.env...)
		cmd.Stdout = io.MultiWriter(w, &all)
		cmd.Stderr = w
		if err := cmd.Run(); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", s.name, err))
		}
	}
	results, err := parse(&all)
	if err != nil {
		errs = append(errs, "parse: "+err.Error())
	}
	rows := summarize(results, targets())
	fmt.Fprintf(w, "\n=== DESIGN §11 summary (one run, %s, %d cores, load average %s before, %s after)\n",
		time.Since(start).Round(time.Second), runtime.NumCPU(), load0, loadAverage())
	fmt.Fprintln(w, "Ratios compare two things measured in one process; absolute rates move with the machine's load.")
	printTable(w, rows)
	for _, e := range errs {
		fmt.Fprintln(w, "step failed:", e)
	}
	if len(errs) > 0 || failed(rows) {
		return 1
	}
	return 0
}

// plan lists the steps. The passthrough comparison is included only when
// it exists (see doc.go).
func plan(goBin, root string, calls int, profile string) ([]step, error) {
	pg := "TOOLGATE_REQUIRE_POSTGRES=1"
	mcp := []string{goBin, "test", "-run", "^(TestMCPOverhead|TestUpstreamOverhead)$", "-v", "-count", "1"}
	if profile != "" {
		abs, err := filepath.Abs(profile)
		if err != nil {
			return nil, err
		}
		mcp = append(mcp, "-cpuprofile", abs, "-o", strings.TrimSuffix(abs, filepath.Ext(abs))+".test")
	}
	steps := []step{
		{name: "MCP comparisons", cmd: append(mcp, "./cmd/toolgate"), env: []string{pg, "TOOLGATE_BENCH=1", "TOOLGATE_BENCH_CALLS=" + strconv.Itoa(calls)}},
		{name: "masking", cmd: []string{goBin, "test", "-run", "^$", "-bench", "^BenchmarkMask1MB$", "-cpu", "1", "-benchtime", "2s", "-count", "1", "./policy/mask"}},
		{name: "policy", cmd: []string{goBin, "test", "-run", "^$", "-bench", "^BenchmarkDecide$", "-benchtime", "1s", "-count", "1", "./policy"}},
		{name: "audit writes", cmd: []string{goBin, "test", "-run", "^$", "-bench", "^BenchmarkRecord(SQLite|Postgres)$", "-benchtime", "2s", "-count", "1", "./recordings"}, env: []string{pg}},
	}
	pkg, err := findBenchmark(root, "BenchmarkPgbench")
	if err != nil {
		return nil, err
	}
	if pkg != "" {
		steps = append(steps, step{name: "passthrough", cmd: []string{goBin, "test", "-run", "^$", "-bench", "^BenchmarkPgbench$", "-benchtime", "1x", "-count", "1", pkg}, env: []string{pg}})
	} else if ok, err := hasMakeTarget(filepath.Join(root, "Makefile"), "bench-passthrough"); err != nil {
		return nil, err
	} else if ok {
		steps = append(steps, step{name: "passthrough", cmd: []string{envOr("MAKE", "make"), "-s", "bench-passthrough"}, env: []string{pg}})
	}
	return steps, nil
}

// findBenchmark returns "./dir" of the package whose tests declare the
// benchmark, or "".
func findBenchmark(root, name string) (string, error) {
	decl := []byte("func " + name + "(")
	var found string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if found != "" || !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, decl) {
			rel, err := filepath.Rel(root, filepath.Dir(p))
			if err != nil {
				return err
			}
			found = "./" + filepath.ToSlash(rel)
		}
		return nil
	})
	return found, err
}

// loadAverage is the 1-minute load average, or "?" where it is unknown.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// hasMakeTarget reports whether the Makefile defines target.
func hasMakeTarget(makefile, target string) (bool, error) {
	b, err := os.ReadFile(makefile)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `\s*:`)
	return re.Match(b), nil
}
