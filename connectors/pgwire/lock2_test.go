package pgwire_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// refusedHint marks the errors toolgate raises for a statement it refused
// (connectors/pgwire's refusalHint).
const refusedHint = "toolgate refused this statement"

// loadCorpus reads testdata/lock2/corpus.txt.
func loadCorpus(t *testing.T, vars map[string]string) []wireCase {
	t.Helper()
	f, err := os.Open("testdata/lock2/corpus.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []wireCase
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		c, err := parseCase(n, line, vars)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cases
}

// TestLock2Differential runs every statement and protocol sequence of the
// corpus through the proxy under a read grant on customers, with lock 1
// (toolgate's classifier) on and then switched off, and asks the database
// after each one whether anything was written, another table read, a
// program run or a file made, a role or object created, and whether a
// byte of the deny column reached the client. With lock 2 (the per-grant
// role) every answer must be no in both modes.
func TestLock2Differential(t *testing.T) {
	if testing.Short() {
		t.Skip("the differential corpus runs hundreds of sessions")
	}
	for _, mode := range []struct {
		name  string
		lock1 bool
	}{{"lock1-on", true}, {"lock1-off", false}} {
		t.Run(mode.name, func(t *testing.T) {
			e := newLock2Env(t, mode.lock1, true)
			marker := filepath.Join(e.marker, "lock2-marker-"+e.db)
			cases := loadCorpus(t, map[string]string{"MARKER": marker, "DB": e.db, "PORT": strconv.Itoa(e.pg.Port())})
			if len(cases) < 200 {
				t.Fatalf("the corpus holds %d cases, want at least 200", len(cases))
			}
			o := newObserver(t, e.su, e.db, e.marker)
			controlProgram(t, e)

			// The harness runs SQL: a granted read returns its rows (and
			// provisions the grant's role before the baseline).
			warm, err := parseCase(0, "q SELECT name FROM customers WHERE id = 1", nil)
			if err != nil {
				t.Fatal(err)
			}
			if out, err := runCase(e.addr(), e.grantID, e.token, warm); err != nil || len(out.rows) != 1 || out.rows[0][0] != "Ada" {
				t.Fatalf("granted read: %+v, %v", out, err)
			}
			base := o.snapshot()
			denied := 0
			for _, c := range cases {
				out, err := runCase(e.addr(), e.grantID, e.token, c)
				if err != nil {
					t.Errorf("line %d %.60q: %v", c.line, c.text, err)
					continue
				}
				// What no privilege can forbid (a prepared transaction) is
				// ended by the role sweeper, which runs every 2 s in serve.
				if err := e.roles.Sweep(context.Background()); err != nil {
					t.Errorf("line %d: sweep: %v", c.line, err)
				}
				after := o.snapshot()
				if d := changes(base, after); len(d) > 0 {
					t.Errorf("line %d %.80q: the database changed:\n  %s", c.line, c.text, strings.Join(d, "\n  "))
					base = after
				}
				if l := leaks(out); len(l) > 0 {
					t.Errorf("line %d %.80q: the deny column reached the client: %v", c.line, c.text, l)
				}
				for _, er := range out.errs {
					if er.Code == "42501" && er.Hint != refusedHint {
						denied++
						break
					}
				}
			}
			t.Logf("%d cases; the database itself refused %d with insufficient_privilege", len(cases), denied)
			if !mode.lock1 && denied < 100 {
				t.Errorf("with lock 1 off only %d cases met the database's refusal; the classifier switch may not be working", denied)
			}
		})
	}
}

// TestLock2ObserverSeesBreaches is the differential test's control: with
// both locks off (classifier switched off, sessions as the superuser, as
// passthrough ran before lock 2) the same observer reports the write, the
// read of another table, the program run and the leaked column of corpus
// cases, so its silence under lock 2 means something.
func TestLock2ObserverSeesBreaches(t *testing.T) {
	e := newLock2Env(t, false, false)
	marker := filepath.Join(e.marker, "lock2-marker-"+e.db)
	vars := map[string]string{"MARKER": marker}
	o := newObserver(t, e.su, e.db, e.marker)
	base := o.snapshot()
	for _, c := range []struct {
		line, want string
	}{
		{"q SELECT secret FROM notes", "stats notes"},
		{"q@SJIS SELECT E'\\x81\\x5c'; UPDATE customers SET name = 'pwned'; --'", "customers"},
		{"x P s UPDATE orders SET total = 0 | S | P s SELECT 1 | S | B p s | E p | S", "orders"},
		{"q COPY (SELECT 1) TO PROGRAM 'touch {MARKER}-control'", "marker files"},
		{"q SELECT reverse(card_number) FROM customers", "leak"},
	} {
		wc, err := parseCase(0, c.line, vars)
		if err != nil {
			t.Fatal(err)
		}
		out, err := runCase(e.addr(), e.grantID, e.token, wc)
		if err != nil {
			t.Fatal(err)
		}
		after := o.snapshot()
		seen := strings.Join(changes(base, after), "\n")
		if len(leaks(out)) > 0 {
			seen += "\nleak"
		}
		if !strings.Contains(seen, c.want) {
			t.Errorf("%s: the observer missed it (saw %q; rows %v, errors %v)", c.line, seen, out.rows, out.errs)
		}
		base = after
	}
	_ = os.Remove(marker + "-control")
}

// controlProgram proves the marker check can fail: the superuser's COPY
// TO PROGRAM does make a file where the corpus's would.
func controlProgram(t *testing.T, e *lock2Env) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(e.marker, "lock2-control-"+e.db)
	conn, err := pgx.Connect(ctx, e.su)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "COPY (SELECT 1) TO PROGRAM 'touch "+path+"'"); err != nil {
		t.Fatal(err)
	}
	if !markerExists(path) {
		t.Fatalf("the superuser's COPY TO PROGRAM made no file at %s: the marker check would prove nothing", path)
	}
	_ = os.Remove(path)
}

// TestLock2RoleRepairedAfterPasswordChange: a session may change its own
// role's password (PostgreSQL lets any role); the next session's login is
// refused, the role provisioned again, and the login retried once.
func TestLock2RoleRepairedAfterPasswordChange(t *testing.T) {
	e := newLock2Env(t, false, true)
	for i, line := range []string{"x Q SET default_transaction_read_only = off | Q ALTER ROLE CURRENT_USER PASSWORD 'stolen' | S", "q SELECT name FROM customers WHERE id = 1"} {
		c, err := parseCase(i, line, nil)
		if err != nil {
			t.Fatal(err)
		}
		out, err := runCase(e.addr(), e.grantID, e.token, c)
		if err != nil || out.closed || len(out.errs) > 0 {
			t.Fatalf("%s: %+v, %v", line, out, err)
		}
		if i == 1 && (len(out.rows) != 1 || out.rows[0][0] != "Ada") {
			t.Fatalf("after the password change: rows %v", out.rows)
		}
	}
}
