package pgwire_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/connectors/pgwire"
)

// TestBoundsStatementTimeout: the target's statement_timeout applies.
func TestBoundsStatementTimeout(t *testing.T) {
	e := newEnvWith(t, func(c *pgwire.Config) { c.StatementTimeout = 300 * time.Millisecond })
	c := e.connect(t, "support-bot/triage", e.key)
	ctx := context.Background()
	var v string
	if err := c.QueryRow(ctx, "SHOW statement_timeout").Scan(&v); err != nil || v != "300ms" {
		t.Fatalf("statement_timeout = %q, %v", v, err)
	}
	if _, err := c.Exec(ctx, "SELECT pg_sleep(5)"); sqlstate(err) != "57014" {
		t.Fatalf("pg_sleep(5): %v, want 57014 (statement timeout)", err)
	}
}

// TestBoundsReadOnly: a read-only target refuses writes, whatever the
// grant, and its sessions default to read-only transactions.
func TestBoundsReadOnly(t *testing.T) {
	e := newEnvWith(t, func(c *pgwire.Config) { c.ReadOnly = true })
	ctx := context.Background()
	c := e.connect(t, "support-bot/writer", e.key)
	var v string
	if err := c.QueryRow(ctx, "SHOW default_transaction_read_only").Scan(&v); err != nil || v != "on" {
		t.Fatalf("default_transaction_read_only = %q, %v", v, err)
	}
	for _, q := range []string{pwn, "BEGIN READ WRITE; " + pwn + "; COMMIT"} {
		if _, err := c.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); sqlstate(err) != "42501" || !strings.Contains(err.Error(), "read-only") {
			t.Fatalf("%s: %v, want 42501 naming the read-only target", q, err)
		}
	}
	if _, err := c.Exec(ctx, pwn); sqlstate(err) != "42501" {
		t.Fatalf("extended UPDATE: %v", err)
	}
	if name := e.adaName(t); name != "Ada" {
		t.Fatalf("a write ran on a read-only target: name = %q", name)
	}
	// Switching the default off (inside a function the classifier cannot
	// see into) ends the session.
	e.execDirect(t, settingsFunction)
	r := e.raw(t, "support-bot/extended", nil)
	r.send(&pgproto3.Query{String: "SELECT slugify('ro')"})
	if got := r.until(1); !has(got, "E:57P01") {
		t.Fatalf("default_transaction_read_only turned off: %v", got)
	}
}

// TestBoundsConnsPerGrant: a grant's sessions are capped; a closed one
// frees its place.
func TestBoundsConnsPerGrant(t *testing.T) {
	e := newEnvWith(t, func(c *pgwire.Config) { c.MaxConnsPerGrant = 2 })
	ctx := context.Background()
	a := e.connect(t, "support-bot/triage", e.key)
	e.connect(t, "support-bot/triage", e.key)
	_, err := pgx.Connect(ctx, e.dsn("support-bot/triage", e.key))
	if sqlstate(err) != "53300" || !strings.Contains(err.Error(), "max_conns_per_grant") {
		t.Fatalf("third session: %v, want 53300 naming max_conns_per_grant", err)
	}
	// Another node has its own count.
	e.connect(t, "support-bot/writer", e.key)
	a.Close(ctx)
	var err2 error
	for i := 0; i < 100; i++ { // the proxy notices the close asynchronously
		var c *pgx.Conn
		if c, err2 = pgx.Connect(ctx, e.dsn("support-bot/triage", e.key)); err2 == nil {
			c.Close(ctx)
			break
		}
		sleepShort()
	}
	if err2 != nil {
		t.Fatalf("after closing one: %v", err2)
	}
	var refused int
	for _, ev := range e.rec.OfKind(broker.EventSessionClosed) {
		if ev.Detail["reason"] == "too many sessions" {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("the refused session was not recorded")
	}
}

// TestBoundsLargeCell: a 192 MB cell is refused with a clear error and
// never read into memory.
func TestBoundsLargeCell(t *testing.T) {
	e := newEnv(t) // default row limit, 16 MiB
	c := e.connect(t, "support-bot/triage", e.key)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var v string
	err := c.QueryRow(context.Background(), "SELECT repeat('x', 192 * 1024 * 1024)", pgx.QueryExecModeSimpleProtocol).Scan(&v)
	runtime.ReadMemStats(&after)
	if sqlstate(err) != "54000" || !strings.Contains(err.Error(), "max_row_bytes") {
		t.Fatalf("192 MB cell: %v, want 54000 naming max_row_bytes", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Fatalf("the process allocated %d MB for a refused 192 MB cell", grew>>20)
	}
}

// TestBoundsCellAndMessage: a value over max_cell_bytes ends the result
// with a clear error; a client message over max_message_bytes and a Bind
// parameter over max_cell_bytes are refused, recorded, and the session
// goes on.
func TestBoundsCellAndMessage(t *testing.T) {
	e := newEnvWith(t, func(c *pgwire.Config) { c.MaxCellBytes = 1 << 20 })
	before := runtime.NumGoroutine()
	ctx := context.Background()
	c := e.connect(t, "support-bot/triage", e.key)
	var v string
	err := c.QueryRow(ctx, "SELECT repeat('x', 2 * 1024 * 1024)").Scan(&v)
	if sqlstate(err) != "54000" || !strings.Contains(err.Error(), "max_cell_bytes") {
		t.Fatalf("2 MB value: %v, want 54000 naming max_cell_bytes", err)
	}
	r := e.raw(t, "support-bot/triage", nil)
	big := strings.Repeat("x", 2<<20)
	r.send(&pgproto3.Query{String: "SELECT '" + big + "'"}, &pgproto3.Query{String: "SELECT 1"})
	got := r.until(2)
	if !has(got, "E:42501") || !has(got, "D:1") {
		t.Fatalf("oversized query: %v, want a refusal and a usable session (denied: %q)", got, e.deniedTexts())
	}
	r.send(&pgproto3.Parse{Query: "SELECT $1::text"}, &pgproto3.Bind{Parameters: [][]byte{[]byte(big[:(1<<20)+1])}}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if got := r.until(1); !has(got, "E:42501") {
		t.Fatalf("oversized parameter: %v", got)
	}
	var limits int
	for _, d := range e.deniedTexts() {
		if strings.Contains(d, "max_message_bytes") || strings.Contains(d, "max_cell_bytes") {
			limits++
		}
	}
	if limits != 2 {
		t.Fatalf("refusals recorded: %q", e.deniedTexts())
	}
	_ = e.srv.Close()
	checkGoroutines(t, before)
}

// TestBoundsFastpathRecorded: the fastpath function call is refused and the
// refusal recorded.
func TestBoundsFastpathRecorded(t *testing.T) {
	e := newEnv(t)
	r := e.raw(t, "support-bot/triage", nil)
	// pg_terminate_backend's OID, with one int argument.
	r.send(&pgproto3.FunctionCall{Function: 2096, Arguments: [][]byte{[]byte("1")}, ResultFormatCode: 0})
	if got := r.until(1); !has(got, "E:42501") {
		t.Fatalf("FunctionCall: %v", got)
	}
	d := e.deniedTexts()
	if len(d) != 1 || !strings.Contains(d[0], "fastpath") {
		t.Fatalf("denied records %q: want the fastpath refusal", d)
	}
}

// TestUnknownMessageRecorded: a message type the proxy does not relay ends
// the session and is recorded.
func TestUnknownMessageRecorded(t *testing.T) {
	e := newEnv(t)
	r := e.raw(t, "support-bot/triage", nil)
	_, _ = r.conn.Write([]byte{'p', 0, 0, 0, 8, 'x', 'y', 'z', 0})
	if got := r.until(1); !has(got, "E:08P01") {
		t.Fatalf("a password message after login: %v", got)
	}
	if d := e.deniedTexts(); len(d) != 1 || !strings.Contains(d[0], "message type") {
		t.Fatalf("denied records %q", d)
	}
	// A Bind that does not decode.
	r = e.raw(t, "support-bot/triage", nil)
	_, _ = r.conn.Write([]byte{'B', 0, 0, 0, 6, 'x', 0})
	if got := r.until(1); !has(got, "E:08P01") {
		t.Fatalf("a malformed Bind: %v", got)
	}
	if d := e.deniedTexts(); len(d) != 2 || !strings.Contains(d[1], "malformed Bind") {
		t.Fatalf("denied records %q", d)
	}
}

// TestCopyFrom: COPY FROM STDIN runs as a simple query for a node that may
// write; through the extended protocol it is refused.
func TestCopyFrom(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.connect(t, "support-bot/writer", e.key)
	n, err := c.CopyFrom(ctx, pgx.Identifier{"customers"}, []string{"id", "name"}, pgx.CopyFromRows([][]any{{int32(7), "Cy"}, {int32(8), "Di"}}))
	if err != nil || n != 2 {
		t.Fatalf("CopyFrom: %d, %v", n, err)
	}
	if got := e.customerCount(t); got != 50004 {
		t.Fatalf("customers = %d after COPY FROM", got)
	}
	r := e.raw(t, "support-bot/writer", nil)
	r.send(&pgproto3.Parse{Query: "COPY customers (id, name) FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if got := r.until(1); !has(got, "E:42501") {
		t.Fatalf("extended COPY FROM: %v", got)
	}
	// A reader may not COPY FROM at all; nothing was read as data.
	r = e.raw(t, "support-bot/triage", nil)
	r.send(&pgproto3.Query{String: "COPY customers (id, name) FROM STDIN"}, &pgproto3.CopyData{Data: []byte("9\tEve\n")}, &pgproto3.CopyDone{}, &pgproto3.Query{String: "SELECT 1"})
	if got := r.until(2); !has(got, "E:42501") || !has(got, "D:1") {
		t.Fatalf("COPY FROM as a reader: %v", got)
	}
	if got := e.customerCount(t); got != 50004 {
		t.Fatalf("customers = %d after refused COPY FROM", got)
	}
}
