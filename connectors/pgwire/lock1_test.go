package pgwire_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/toolgate/toolgate/broker"
)

// The attacks of issue 12 that lock 1 answers: the proxy must see what the
// server executes. Each test asserts from the database side that nothing
// was written.

const pwn = "UPDATE customers SET name = 'pwned' WHERE id = 1"

// adaName reads customer 1's name straight from the database.
func (e *env) adaName(t *testing.T) string { return e.customerName(t, 1) }

func (e *env) raw(t *testing.T, user string, params map[string]string) *raw {
	t.Helper()
	r, err := rawProxy(t, e.srv.Addr().String(), user, e.key, params)
	if err != nil {
		t.Fatalf("login as %s: %v", user, err)
	}
	return r
}

// deniedTexts are the statements recorded as denied.
func (e *env) deniedTexts() []string {
	var out []string
	for _, ev := range e.rec.OfKind(broker.EventStatement) {
		if ev.Status == broker.StatusDenied {
			out = append(out, fmt.Sprint(ev.Detail["statement"], " ", ev.Error))
		}
	}
	return out
}

func has(answers []string, want string) bool { return slices.Contains(answers, want) }

// TestDesyncRefusedParse: Parse s (UPDATE), Sync, Parse s (SELECT 1) which
// the server refuses with 42P05, then Bind/Execute s: the server runs the
// UPDATE, so the proxy must decide the UPDATE.
func TestDesyncRefusedParse(t *testing.T) {
	for _, pipelined := range []bool{false, true} {
		t.Run(fmt.Sprintf("pipelined=%v", pipelined), func(t *testing.T) {
			e := newEnv(t)
			r := e.raw(t, "support-bot/triage", nil)
			r.send(&pgproto3.Parse{Name: "s", Query: pwn}, &pgproto3.Sync{})
			second := []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "s", Query: "SELECT 1"}, &pgproto3.Sync{}}
			run := []pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Execute{}, &pgproto3.Sync{}}
			var got []string
			if pipelined {
				r.send(append(second, run...)...)
				got = r.until(3)
			} else {
				got = r.until(1)
				r.send(second...)
				got = append(got, r.until(1)...)
				r.send(run...)
				got = append(got, r.until(1)...)
			}
			if !has(got, "E:42P05") || !has(got, "E:42501") || has(got, "C:UPDATE 1") {
				t.Fatalf("answers %v: want 42P05 for the second Parse and 42501 for the Execute of the UPDATE", got)
			}
			if name := e.adaName(t); name != "Ada" {
				t.Fatalf("the UPDATE ran: name = %q", name)
			}
			denied := e.deniedTexts()
			if len(denied) != 1 || !strings.Contains(denied[0], "UPDATE customers") {
				t.Fatalf("denied records %q: want the UPDATE", denied)
			}
		})
	}
}

// TestDesyncErrorInBatch: a Parse that follows an error in its batch is
// skipped by the server, so s keeps the UPDATE.
func TestDesyncErrorInBatch(t *testing.T) {
	e := newEnv(t)
	r := e.raw(t, "support-bot/triage", nil)
	r.send(&pgproto3.Parse{Name: "s", Query: pwn}, &pgproto3.Sync{})
	r.until(1)
	r.send(&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Parse{Name: "s", Query: "SELECT 1"}, &pgproto3.Sync{},
		&pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	got := r.until(2)
	if !has(got, "E:22012") || !has(got, "E:42501") || has(got, "C:UPDATE 1") {
		t.Fatalf("answers %v: want 22012, then 42501 for the UPDATE", got)
	}
	if name := e.adaName(t); name != "Ada" {
		t.Fatalf("the UPDATE ran: name = %q", name)
	}
	for _, ev := range e.rec.OfKind(broker.EventStatement) {
		if ev.Status == broker.StatusOK && ev.Detail["phase"] != "done" && strings.Contains(fmt.Sprint(ev.Detail["statement"]), "SELECT 1\"") {
			t.Fatalf("the skipped Parse was recorded as run: %+v", ev)
		}
	}
}

// TestMaskingQueryInFailedBatch: a simple Query inside a failed extended
// batch is skipped by the server; later results stay masked.
func TestMaskingQueryInFailedBatch(t *testing.T) {
	e := newEnv(t)
	r := e.raw(t, "support-bot/triage", nil)
	r.send(&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Query{String: "SELECT id FROM customers WHERE id = 1"}, &pgproto3.Sync{})
	got := r.until(1)
	if !has(got, "E:22012") || has(got, "D:1") {
		t.Fatalf("failed batch answers %v: the Query must be skipped", got)
	}
	r.send(&pgproto3.Parse{Query: "SELECT card_number FROM customers WHERE id = 1"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	r.send(&pgproto3.Query{String: "SELECT card_number FROM customers WHERE id = 1"})
	got = r.until(2)
	for _, a := range got {
		if strings.Contains(a, card) {
			t.Fatalf("unmasked card in %v", got)
		}
	}
	if n := strings.Count(strings.Join(got, " "), "1111"); n != 2 {
		t.Fatalf("answers %v: want two masked cards", got)
	}
}

// TestMaskingRedescribe: a Describe of SELECT id, then a re-Parse of the
// unnamed statement as SELECT card_number executed in binary.
func TestMaskingRedescribe(t *testing.T) {
	e := newEnv(t)
	r := e.raw(t, "support-bot/triage", nil)
	r.send(&pgproto3.Parse{Query: "SELECT id FROM customers WHERE id = 1"}, &pgproto3.Describe{ObjectType: 'S'}, &pgproto3.Sync{})
	r.until(1)
	r.send(&pgproto3.Parse{Query: "SELECT card_number FROM customers WHERE id = 1"},
		&pgproto3.Bind{ResultFormatCodes: []int16{1}}, &pgproto3.Execute{}, &pgproto3.Sync{})
	got := r.until(1)
	if len(got) < 3 || got[2] == "D:"+card || !strings.HasSuffix(got[2], "1111") {
		t.Fatalf("answers %v: want the card masked", got)
	}
}

// TestBinaryFormats: pgx asks for binary results of many types; every
// value still passes the masker.
func TestBinaryFormats(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeDescribeExec} {
		t.Run(mode.String(), func(t *testing.T) {
			c := e.connect(t, "support-bot/triage", e.key)
			var n pgtype.Int8
			if err := c.QueryRow(ctx, "SELECT card_number::bigint FROM customers WHERE id = 1", mode).Scan(&n); err != nil || n.Valid {
				t.Fatalf("card_number::bigint = %+v, %v; want NULL (a masked number no longer parses)", n, err)
			}
			var doc map[string]any
			if err := c.QueryRow(ctx, "SELECT to_jsonb(c) FROM customers c WHERE id = 1", mode).Scan(&doc); err != nil || doc["card_number"] == card || doc["name"] != "Ada" {
				t.Fatalf("to_jsonb = %v, %v", doc, err)
			}
			var raw []byte
			if err := c.QueryRow(ctx, "SELECT convert_to(card_number, 'UTF8') FROM customers WHERE id = 1", mode).Scan(&raw); err != nil || string(raw) == card || !strings.HasSuffix(string(raw), "1111") {
				t.Fatalf("convert_to = %q, %v", raw, err)
			}
			var arr []string
			if err := c.QueryRow(ctx, "SELECT ARRAY[card_number, name] FROM customers WHERE id = 1", mode).Scan(&arr); err != nil || len(arr) != 2 || arr[0] == card || arr[1] != "Ada" {
				t.Fatalf("array = %q, %v", arr, err)
			}
			var id int32
			var when pgtype.Timestamptz
			if err := c.QueryRow(ctx, "SELECT id, '2024-02-29 13:14:15+00'::timestamptz FROM customers WHERE id = 2", mode).Scan(&id, &when); err != nil || id != 2 || when.Time.Unix() != 1709212455 {
				t.Fatalf("id, timestamptz = %d %v, %v", id, when, err)
			}
			// A whole-row record has no text-to-binary conversion: refused,
			// naming the column.
			var rec []any
			err := c.QueryRow(ctx, "SELECT ROW(id, card_number) AS r FROM customers WHERE id = 1", mode).Scan(&rec)
			if sqlstate(err) != "42501" || !strings.Contains(err.Error(), `"r"`) || !strings.Contains(err.Error(), "text format") {
				t.Fatalf("binary record: %v", err)
			}
		})
	}
	// In text, the record passes the detectors.
	c := e.connect(t, "support-bot/triage", e.key)
	var text string
	if err := c.QueryRow(ctx, "SELECT ROW(id, card_number)::text FROM customers WHERE id = 1").Scan(&text); err != nil || strings.Contains(text, card) {
		t.Fatalf("record as text = %q, %v", text, err)
	}
}

// TestEncodingStartupRefused: a client asking for SJIS (whose second bytes
// can be a backslash) is refused before anything runs.
func TestEncodingStartupRefused(t *testing.T) {
	e := newEnv(t)
	for _, enc := range []string{"SJIS", "BIG5", "GBK", "GB18030", "latin1"} {
		_, err := rawProxy(t, e.srv.Addr().String(), "support-bot/triage", e.key, map[string]string{"client_encoding": enc})
		if err == nil || !strings.HasPrefix(err.Error(), "22023") || !strings.Contains(err.Error(), "PGCLIENTENCODING=UTF8") {
			t.Fatalf("client_encoding %s: %v", enc, err)
		}
	}
	for _, enc := range []string{"UTF8", "utf-8", "SQL_ASCII"} {
		r := e.raw(t, "support-bot/triage", map[string]string{"client_encoding": enc})
		r.send(&pgproto3.Query{String: "SHOW client_encoding"})
		if got := r.until(1); !has(got, "D:UTF8") {
			t.Fatalf("client_encoding %s: session runs %v", enc, got)
		}
	}
	if n := len(e.decisions()); n != 3 {
		t.Fatalf("%d statements decided, want the 3 SHOWs", n)
	}
}

// settingsFunction is a user function a node may call (the env's
// "extended" node lists slugify) that changes session settings, a route
// the classifier cannot see into.
const settingsFunction = `CREATE FUNCTION slugify(text) RETURNS text LANGUAGE plpgsql AS $f$BEGIN
	CASE $1
	WHEN 'enc' THEN PERFORM set_config('client_encoding', 'SJIS', false);
	WHEN 'scs' THEN PERFORM set_config('standard_conforming_strings', 'off', false);
	WHEN 'ro' THEN PERFORM set_config('default_transaction_read_only', 'off', false);
	ELSE NULL;
	END CASE;
	RETURN $1;
END$f$`

func (e *env) execDirect(t *testing.T, sql string) {
	t.Helper()
	c, err := pgx.Connect(context.Background(), e.direct)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(context.Background(), sql); err != nil {
		t.Fatal(err)
	}
}

// TestSettingChangeEndsSession: a session whose client_encoding or
// standard_conforming_strings changes (here inside a function the node may
// call) ends before the server reads another byte, so a pipelined SJIS
// smuggle never runs.
func TestSettingChangeEndsSession(t *testing.T) {
	smuggle := "SELECT E'\x81\x5c'; " + pwn + "; --'"
	for _, arg := range []string{"enc", "scs", "extended"} {
		t.Run(arg, func(t *testing.T) {
			e := newEnv(t)
			e.execDirect(t, settingsFunction)
			before := runtime.NumGoroutine()
			r := e.raw(t, "support-bot/extended", nil)
			if arg == "extended" {
				// The call, Sync, then the smuggle: the proxy holds what
				// follows the Sync until the call's batch is answered.
				r.send(&pgproto3.Parse{Query: "SELECT slugify('enc')"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
					&pgproto3.Parse{Query: smuggle}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
			} else {
				r.send(&pgproto3.Query{String: "SELECT slugify('" + arg + "')"}, &pgproto3.Query{String: smuggle})
			}
			got := r.until(2)
			if !has(got, "E:57P01") || got[len(got)-1] != "EOF" {
				t.Fatalf("answers %v: want the session ended (57P01)", got)
			}
			if name := e.adaName(t); name != "Ada" {
				t.Fatalf("the smuggled UPDATE ran: name = %q", name)
			}
			closed := e.waitClosed(t)
			if !strings.Contains(fmt.Sprint(closed.Detail["reason"]), "session setting changed") {
				t.Fatalf("session end recorded as %v", closed.Detail)
			}
			_ = e.srv.Close()
			checkGoroutines(t, before)
		})
	}
}

// TestBarrierInBatch: after a statement that may change session settings,
// the next message of its batch must be Sync; anything else is refused.
func TestBarrierInBatch(t *testing.T) {
	e := newEnv(t)
	e.execDirect(t, settingsFunction)
	r := e.raw(t, "support-bot/extended", nil)
	r.send(&pgproto3.Parse{Query: "SELECT slugify('enc')"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Parse{Query: "SELECT E'\\x81\\x5c'; " + pwn + "; --'"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	got := r.until(1)
	if !has(got, "D:enc") || !has(got, "E:42501") {
		t.Fatalf("answers %v: want the call, then a refusal", got)
	}
	// The refusal rolled the change back with its transaction.
	r.send(&pgproto3.Query{String: "SHOW client_encoding"})
	if got := r.until(1); !has(got, "D:UTF8") {
		t.Fatalf("after the refused batch: %v", got)
	}
	if name := e.adaName(t); name != "Ada" {
		t.Fatalf("the smuggled UPDATE ran: name = %q", name)
	}
	if d := e.deniedTexts(); len(d) != 1 || !strings.Contains(d[0], "followed by Sync") {
		t.Fatalf("denied records %q", d)
	}
}

// decisions are the statement records of decisions (not outcomes).
func (e *env) decisions() []broker.Event {
	var out []broker.Event
	for _, ev := range e.rec.OfKind(broker.EventStatement) {
		if ev.Detail["phase"] != "done" {
			out = append(out, ev)
		}
	}
	return out
}

func sleepShort() { time.Sleep(25 * time.Millisecond) }

// waitClosed waits for the session end record.
func (e *env) waitClosed(t *testing.T) broker.Event {
	t.Helper()
	for i := 0; i < 200; i++ {
		if evs := e.rec.OfKind(broker.EventSessionClosed); len(evs) > 0 {
			return evs[len(evs)-1]
		}
		sleepShort()
	}
	t.Fatal("no session end recorded")
	return broker.Event{}
}

// TestPsqlEncodingAndExpressions: psql with another client encoding is
// told how to connect; in UTF8, expressions over the card are masked.
func TestPsqlEncodingAndExpressions(t *testing.T) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("psql is not installed")
	}
	e := newEnv(t)
	port := fmt.Sprint(e.srv.Addr().(*net.TCPAddr).Port)
	run := func(enc string, sql ...string) (string, error) {
		args := []string{"-X", "-A", "-t", "-h", "127.0.0.1", "-p", port, "-U", "support-bot/triage", "-d", "x"}
		for _, q := range sql {
			args = append(args, "-c", q)
		}
		cmd := exec.Command(psql, args...)
		cmd.Env = append(cmd.Environ(), "PGPASSWORD="+e.key, "PGSSLMODE=disable", "PGCLIENTENCODING="+enc)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("SJIS", "SELECT 1")
	if err == nil || !strings.Contains(out, "PGCLIENTENCODING=UTF8") {
		t.Fatalf("psql with SJIS: %v\n%s", err, out)
	}
	out, err = run("UTF8", "SELECT card_number::bigint FROM customers WHERE id = 1", "SELECT convert_to(card_number, 'UTF8') FROM customers WHERE id = 1",
		"SELECT ARRAY[card_number] FROM customers WHERE id = 1")
	if err != nil || strings.Contains(out, card) || strings.Contains(out, "34313131313131313131313131313131") || strings.Count(out, "1111") != 2 {
		t.Fatalf("psql: %v\n%s", err, out)
	}
}
