package pgwire_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/toolgate/toolgate/broker"
)

// fuzzStatements are what the fuzzed messages parse and query. Each marks
// its first column, so a result names the statement the server ran.
var fuzzStatements = []string{
	"SELECT 'k0' AS k",
	"SELECT 'k1' AS k, card_number FROM customers WHERE id = 1",
	"SELECT 'k2' AS k, 1 / (id - 1) FROM customers WHERE id = 1", // fails when executed
	"UPDATE customers SET name = 'fuzzed' WHERE id = 2 RETURNING 'k3'",
	"SELEC 'k4'", // does not parse
	"BEGIN",
	"COMMIT",
	"SELECT 'k7' AS k, name FROM customers WHERE id = $1", // a Bind without its parameter fails
}

// checkQuery reads the server's prepared statements and portals through
// the session itself.
const checkQuery = "SELECT 'chk' AS k, '' AS n, '' AS s UNION ALL SELECT 'chk-stmt', name, statement FROM pg_catalog.pg_prepared_statements" +
	" UNION ALL SELECT 'chk-portal', name, statement FROM pg_catalog.pg_cursors WHERE name <> ''"

// fuzzMessages decodes a fuzz input into client messages: each message
// takes a byte for its kind and one or two for its names and statement. A
// Sync whose argument is odd is followed by checkQuery and an empty query,
// whose EmptyQueryResponse (it runs even in a failed transaction) ends the
// answers the test waits for.
func fuzzMessages(in []byte) []pgproto3.FrontendMessage {
	stmt := func(b byte) string { return []string{"", "a", "b"}[b%3] }
	port := func(b byte) string { return []string{"", "p"}[b%2] }
	sql := func(b byte) string { return fuzzStatements[int(b)%len(fuzzStatements)] }
	var out []pgproto3.FrontendMessage
	for len(in) >= 3 && len(out) < 64 {
		k, a, b := in[0], in[1], in[2]
		in = in[3:]
		switch k % 10 {
		case 0:
			out = append(out, &pgproto3.Parse{Name: stmt(a), Query: sql(b)})
		case 1:
			bind := &pgproto3.Bind{DestinationPortal: port(a), PreparedStatement: stmt(b)}
			if b&0x80 != 0 {
				bind.ResultFormatCodes = []int16{1}
			}
			out = append(out, bind)
		case 2:
			out = append(out, &pgproto3.Describe{ObjectType: 'S', Name: stmt(a)})
		case 3:
			out = append(out, &pgproto3.Describe{ObjectType: 'P', Name: port(a)})
		case 4:
			out = append(out, &pgproto3.Execute{Portal: port(a)})
		case 5:
			out = append(out, &pgproto3.Close{ObjectType: 'S', Name: stmt(a)})
		case 6:
			out = append(out, &pgproto3.Close{ObjectType: 'P', Name: port(a)})
		case 7:
			out = append(out, &pgproto3.Sync{})
			if a%2 == 1 {
				out = append(out, &pgproto3.Query{String: checkQuery}, &pgproto3.Query{})
			}
		case 8:
			out = append(out, &pgproto3.Query{String: sql(a)})
		case 9:
			out = append(out, &pgproto3.Flush{})
		}
	}
	return append(out, &pgproto3.Sync{}, &pgproto3.Query{String: "ROLLBACK"}, &pgproto3.Query{String: checkQuery}, &pgproto3.Query{})
}

// enc builds a fuzz input from (kind, a, b) triples.
func enc(triples ...[3]byte) []byte {
	var out []byte
	for _, t := range triples {
		out = append(out, t[:]...)
	}
	return out
}

// Message kinds and arguments of the seeds.
var (
	parseS      = func(stmt byte) [3]byte { return [3]byte{0, 1, stmt} } // Parse "a"
	parseU      = func(stmt byte) [3]byte { return [3]byte{0, 0, stmt} } // Parse ""
	bindS       = [3]byte{1, 0, 1}                                       // Bind "" <- "a"
	bindSBinary = [3]byte{1, 0, 0x81}                                    // Bind "" <- "a", binary results
	bindU       = [3]byte{1, 0, 0}                                       // Bind "" <- ""
	describeU   = [3]byte{2, 0, 0}
	execU       = [3]byte{4, 0, 0}
	syncM       = [3]byte{7, 0, 0}
	syncCheck   = [3]byte{7, 1, 0}
	queryK      = func(stmt byte) [3]byte { return [3]byte{8, stmt, 0} }
)

// FuzzProtocol sends message sequences through the proxy to a real
// PostgreSQL and checks the proxy's view against the server's answers:
// after every check, the named statements the proxy tracks are exactly
// pg_prepared_statements and the portals it tracks exist on the server;
// every statement the server completed was recorded with the SQL the
// server ran, in order; no write ran and no card left unmasked.
func FuzzProtocol(f *testing.F) {
	for _, seed := range [][]byte{
		// Issue 12: Parse a (UPDATE), Sync, Parse a (SELECT) refused with
		// 42P05, Bind/Execute a, pipelined and not.
		enc(parseS(3), syncM, parseS(0), syncM, bindS, execU, syncM),
		enc(parseS(3), syncCheck, parseS(0), syncCheck, bindS, execU, syncM),
		// The same after an error in the batch.
		enc(parseS(3), syncM, parseU(2), bindU, execU, parseS(0), syncM, bindS, execU, syncM),
		// A Query inside a failed batch, then a card.
		enc(parseU(2), bindU, execU, queryK(1), syncM, parseU(1), bindU, execU, syncCheck),
		// Describe of one statement, re-Parse as another, binary Execute.
		enc(parseS(0), describeU, syncCheck, parseS(1), bindSBinary, execU, syncM),
		// Named portals across Syncs in an explicit transaction.
		enc(queryK(5), parseS(1), [3]byte{1, 1, 1}, syncCheck, [3]byte{4, 1, 0}, queryK(6), [3]byte{4, 1, 0}, syncM),
	} {
		f.Add(seed)
	}
	// One proxy per fuzz process, a session per input.
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		from := e.rec.Len()
		closed := len(e.rec.OfKind(broker.EventSessionClosed))
		r := e.raw(t, "support-bot/triage", nil)
		var done []completed
		for _, chunk := range chunks(fuzzMessages(in)) {
			r.send(chunk...)
			got := r.answers(t, e)
			done = append(done, got...)
		}
		_ = r.conn.Close()
		for i := 0; len(e.rec.OfKind(broker.EventSessionClosed)) == closed; i++ {
			if i > 400 {
				t.Fatal("the session end was not recorded")
			}
			sleepShort()
		}
		checkRecorded(t, e.rec.Events()[from:], done)
		if name := e.customerName(t, 2); name != "Bob" {
			t.Fatalf("a write ran: customer 2 is %q", name)
		}
	})
}

// chunks splits messages after each empty query, whose answer the test
// waits for before it sends more.
func chunks(msgs []pgproto3.FrontendMessage) [][]pgproto3.FrontendMessage {
	var out [][]pgproto3.FrontendMessage
	start := 0
	for i, m := range msgs {
		if q, ok := m.(*pgproto3.Query); ok && q.String == "" {
			out = append(out, msgs[start:i+1])
			start = i + 1
		}
	}
	return out
}

// completed is a statement the server completed: its command tag and the
// marker of its rows ("" when it returned none).
type completed struct{ tag, marker string }

// answers reads up to the answer of the empty query that ends a chunk,
// compares the server's statements and portals (when checkQuery could
// run) with the proxy's, and returns what completed.
func (r *raw) answers(t *testing.T, e *env) []completed {
	t.Helper()
	var done []completed
	marker, ending := "", false
	server := map[string]map[string]string{"chk-stmt": {}, "chk-portal": {}}
	checked := false
	for {
		m, err := r.receive()
		if err != nil {
			t.Fatalf("session ended: %v", err)
		}
		switch m := m.(type) {
		case *pgproto3.DataRow:
			if strings.Contains(fmt.Sprintf("%q", m.Values), card) {
				t.Fatalf("unmasked card in %q", m.Values)
			}
			v := string(m.Values[0])
			if marker == "" {
				marker = v
			}
			if _, ok := server[v]; ok {
				server[v][string(m.Values[1])] = string(m.Values[2])
			}
		case *pgproto3.CommandComplete:
			done = append(done, completed{tag: string(m.CommandTag), marker: marker})
			checked = checked || marker == "chk"
			marker = ""
		case *pgproto3.EmptyQueryResponse:
			done = append(done, completed{tag: "EMPTY"})
			ending = true
		case *pgproto3.ErrorResponse:
			marker = ""
		case *pgproto3.ReadyForQuery:
			if ending {
				if checked {
					compareViews(t, e, server)
				}
				return done
			}
		}
	}
}

// compareViews checks the proxy's tracked statements against the server's.
func compareViews(t *testing.T, e *env, server map[string]map[string]string) {
	t.Helper()
	stmts, portals := e.srv.TrackedStatements()
	if len(stmts) != 1 {
		t.Fatalf("%d sessions tracked, want 1", len(stmts))
	}
	if !maps.Equal(stmts[0], server["chk-stmt"]) {
		t.Fatalf("the proxy tracks statements %q; the server holds %q", stmts[0], server["chk-stmt"])
	}
	for name, sql := range portals[0] {
		if server["chk-portal"][name] != sql {
			t.Fatalf("the proxy tracks portal %q as %q; the server has %q", name, sql, server["chk-portal"][name])
		}
	}
}

// checkRecorded matches every statement the server completed, in order,
// with a recorded successful outcome of a decision for the same SQL.
func checkRecorded(t *testing.T, events []broker.Event, done []completed) {
	t.Helper()
	// Outcomes are folded into later records or recorded on their own,
	// each naming its statement: the decisions give the order.
	var decided []broker.Event
	ok := map[string]bool{}
	for _, ev := range events {
		for _, o := range broker.Outcomes(ev) {
			if ok[o.StatementID] {
				t.Fatalf("the outcome of %s is recorded twice", o.StatementID)
			}
			ok[o.StatementID] = o.Status == broker.StatusOK
		}
		if ev.Kind == broker.EventStatement && ev.Detail["phase"] != "done" {
			decided = append(decided, ev)
		}
	}
	var ran []string
	for _, ev := range decided {
		if ok[ev.ID] {
			ran = append(ran, fmt.Sprint(ev.Detail["statement"]))
		}
	}
	if len(ran) != len(done) {
		t.Fatalf("the server completed %d statements %v; %d were recorded as run %q", len(done), done, len(ran), ran)
	}
	for i, d := range done {
		want := d.marker
		switch {
		case d.tag == "EMPTY":
			continue // the recorded text of an empty query is empty
		case strings.HasPrefix(want, "chk"):
			want = "pg_prepared_statements"
		case want == "":
			want = strings.Fields(d.tag)[0]
		}
		if !strings.Contains(strings.ToUpper(ran[i]), strings.ToUpper(want)) {
			t.Fatalf("statement %d: the server ran %v, the record says %q", i, d, ran[i])
		}
	}
}

// customerName reads a customer's name straight from the database.
func (e *env) customerName(t testing.TB, id int) string {
	t.Helper()
	c, err := pgx.Connect(context.Background(), e.direct)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var name string
	if err := c.QueryRow(context.Background(), "SELECT name FROM customers WHERE id = $1", id).Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}
