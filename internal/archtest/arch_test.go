package archtest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/toolgate/toolgate"

// pkg is one package of the module as parsed from source.
type pkg struct {
	dir     string // relative to the module root, slash-separated
	imports map[string]bool
	hasDoc  bool
	inits   []string
}

func loadPackages(t *testing.T) map[string]*pkg {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]*pkg{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if name == "node_modules" || name == "testdata" || (strings.HasPrefix(name, ".") && path != root) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		p := pkgs[rel]
		if p == nil {
			p = &pkg{dir: rel, imports: map[string]bool{}}
			pkgs[rel] = p
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			t.Errorf("parse %s: %v", path, err)
			return nil
		}
		for _, imp := range f.Imports {
			p.imports[strings.Trim(imp.Path.Value, `"`)] = true
		}
		if filepath.Base(path) == "doc.go" && f.Doc != nil {
			p.hasDoc = true
		}
		full, err := parser.ParseFile(fset, path, nil, 0)
		if err == nil {
			for _, decl := range full.Decls {
				if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.Name == "init" {
					p.inits = append(p.inits, path)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func internalImports(p *pkg) []string {
	var out []string
	for imp := range p.imports {
		if strings.HasPrefix(imp, module+"/") {
			out = append(out, strings.TrimPrefix(imp, module+"/"))
		} else if imp == module {
			out = append(out, ".")
		}
	}
	return out
}

// TestImportRules enforces DESIGN §2: dependencies point at the core.
func TestImportRules(t *testing.T) {
	pkgs := loadPackages(t)
	if len(pkgs) < 5 {
		t.Fatalf("found only %d packages; is the walk broken?", len(pkgs))
	}
	for dir, p := range pkgs {
		for _, imp := range internalImports(p) {
			if reason := forbidden(dir, imp); reason != "" {
				t.Errorf("%s imports %s: %s", dir, imp, reason)
			}
		}
	}
}

// doors lists each front door and the packages of the module it may
// import: the core, and the HTTP plumbing every door shares. A door never
// imports another door; its test-support subpackages may import
// broker/brokertest too.
var doors = map[string][]string{
	"broker/mcp":     {"broker", "broker/door"},
	"broker/httpapi": {"broker", "broker/door"},
	"broker/console": {"broker", "broker/door"},
	"broker/scim":    {"broker", "broker/door"},
	"broker/door":    {"broker"},
}

// doorOf returns the door dir belongs to, "" when none.
func doorOf(dir string) string {
	for d := range doors {
		if under(dir, d) {
			return d
		}
	}
	return ""
}

func under(s, prefix string) bool { return s == prefix || strings.HasPrefix(s, prefix+"/") }

// forbidden returns why package dir may not import imp, or "".
func forbidden(dir, imp string) string {
	switch {
	case under(imp, "cmd"):
		return "nothing imports the binary"
	case imp == "broker/brokertest" && !isTestSupport(dir):
		return "broker/brokertest is test support; only _test files and other test-support packages import it"
	case dir == "broker":
		return "the core imports none of its implementations; declare a small interface in broker instead"
	case under(imp, "examples") && !under(dir, "cmd"):
		return "only cmd/toolgate embeds the examples"
	case doorOf(dir) != "":
		return doorRule(dir, imp)
	case under(dir, "connectors"):
		for _, bad := range []string{"policy", "approvals", "recordings", "broker/mcp", "broker/httpapi", "broker/console", "broker/auth", "tools"} {
			if under(imp, bad) {
				return "connectors receive operations from the broker and know nothing of policy, approvals, recordings or front doors"
			}
		}
	case under(dir, "policy"), under(dir, "approvals"), under(dir, "recordings"), under(dir, "tools"):
		for _, bad := range []string{"connectors", "broker/mcp", "broker/httpapi", "broker/console"} {
			if under(imp, bad) {
				return "only cmd/toolgate wires implementations together"
			}
		}
	}
	return ""
}

// doorRule says why door package dir may not import imp, or "".
func doorRule(dir, imp string) string {
	d := doorOf(dir)
	if under(imp, d) || imp == "broker/brokertest" {
		return "" // its own subpackages; brokertest is checked above
	}
	for _, ok := range doors[d] {
		if imp == ok {
			return ""
		}
	}
	if other := doorOf(imp); other != "" {
		return "doors do not import each other; what they share belongs in broker/door"
	}
	return fmt.Sprintf("front doors reach the pipeline only through broker; %s may import only %v", d, doors[d])
}

// TestCoreWithoutHTTP: the core speaks no protocol. HTTP (status codes,
// headers, bearer parsing) belongs to the doors and broker/door.
func TestCoreWithoutHTTP(t *testing.T) {
	p := loadPackages(t)["broker"]
	if p == nil {
		t.Fatal("no package broker")
	}
	for imp := range p.imports {
		if imp == "net/http" || strings.HasPrefix(imp, "net/http/") {
			t.Errorf("broker imports %s; HTTP belongs to the front doors (broker/door)", imp)
		}
	}
}

// TestOneDocPerPackage: each package explains itself once, in doc.go.
func TestOneDocPerPackage(t *testing.T) {
	for dir, p := range loadPackages(t) {
		if dir == "." {
			continue
		}
		if !p.hasDoc && !isMain(dir) {
			t.Errorf("%s has no doc.go with a package comment", dir)
		}
	}
}

func isMain(dir string) bool { return strings.HasPrefix(dir, "cmd/") }

// isTestSupport reports whether dir is a test-support package (doortest,
// mcptest, oidctest, brokertest): one that only tests import.
func isTestSupport(dir string) bool { return strings.HasSuffix(dir, "test") }

// TestNoInitRegistration: wiring is done by hand in cmd/toolgate.
func TestNoInitRegistration(t *testing.T) {
	for _, p := range loadPackages(t) {
		for _, f := range p.inits {
			t.Errorf("%s declares init(); wire explicitly in cmd/toolgate instead", f)
		}
	}
}

func TestForbiddenRules(t *testing.T) {
	for _, c := range []struct {
		dir, imp string
		bad      bool
	}{
		{"broker", "policy", true},
		{"broker", "broker/auth", true},
		{"broker/mcp", "broker", false},
		{"broker/mcp", "policy/mask", true},
		{"connectors/postgres", "broker", false},
		{"connectors/postgres", "recordings", true},
		{"policy", "broker", false},
		{"policy", "connectors/sqlite", true},
		{"cmd/toolgate", "policy", false},
		{"policy", "cmd/toolgate", true},
		{"broker/httpapi/doortest", "broker/brokertest", false},
		{"broker/httpapi", "broker/brokertest", true},
		{"broker/mcp", "broker/httpapi", true},
		{"broker/httpapi", "broker/mcp", true},
		{"broker/console", "broker/httpapi", true},
		{"broker/mcp", "broker/door", false},
		{"broker/door", "broker/httpapi", true},
		{"broker/door", "broker", false},
		{"broker/httpapi", "broker/auth", true},
		{"connectors/httpproxy", "broker/door", false},
		{"connectors/pgwire", "broker/brokertest", true},
		{"cmd/toolgate", "broker/brokertest", true},
		{"broker/console", "broker", false},
		{"broker/console", "approvals", true},
		{"broker/console", "recordings", true},
		{"approvals", "broker/console", true},
	} {
		if got := forbidden(c.dir, c.imp) != ""; got != c.bad {
			t.Errorf("forbidden(%s, %s) = %v, want %v", c.dir, c.imp, got, c.bad)
		}
	}
	if _, err := os.Stat("../../go.mod"); err != nil {
		t.Fatalf("archtest must run from internal/archtest: %v", err)
	}
}
