package pgwire_test

import (
	"encoding/binary"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/toolgate/toolgate/internal/testenv"
)

// Attacks on the passthrough found after issue 12's fixes. Each test
// asserts from the database's side (or from every byte the client got)
// that the attack did nothing.

// collect reads answers until n ReadyForQuery messages or the end of the
// connection, and keeps them whole.
func (r *raw) collect(n int) []pgproto3.BackendMessage {
	r.t.Helper()
	var out []pgproto3.BackendMessage
	for n > 0 {
		m, err := r.receive()
		if err != nil {
			return out
		}
		// The frontend reuses its messages: keep a copy of what is read.
		switch m := m.(type) {
		case *pgproto3.ParameterStatus:
			c := *m
			out = append(out, &c)
		case *pgproto3.ErrorResponse:
			c := *m
			out = append(out, &c)
		case *pgproto3.CopyData:
			out = append(out, &pgproto3.CopyData{Data: append([]byte(nil), m.Data...)})
		case *pgproto3.ReadyForQuery:
			n--
			out = append(out, &pgproto3.ReadyForQuery{TxStatus: m.TxStatus})
		default:
			out = append(out, m)
		}
	}
	return out
}

// TestAttackCopyOfWritingQuery: COPY (DELETE ... RETURNING) TO STDOUT is a
// delete, but was classified as COPY TO, class other. A node whose rules
// admit COPY TO (an export) could delete, and a deny rule on writes to the
// table (class write) did not see it. With sessions running as a login
// that may write (sessions_as_admin, a declared role), the rows were gone.
// Such a COPY, or one whose query locks rows, is refused whatever the rules
// say, and nothing runs.
func TestAttackCopyOfWritingQuery(t *testing.T) {
	e := newEnv(t)
	r := e.raw(t, "support-bot/triage", nil)
	for _, sql := range []string{
		"COPY (DELETE FROM orders RETURNING id) TO STDOUT",
		"COPY (WITH d AS (DELETE FROM orders RETURNING id) SELECT id FROM d) TO STDOUT",
		"COPY (UPDATE orders SET customer_id = 2 RETURNING id) TO STDOUT",
		"COPY (INSERT INTO orders VALUES (11, 2) RETURNING id) TO STDOUT",
		"COPY (SELECT id FROM orders FOR UPDATE) TO STDOUT",
	} {
		r.send(&pgproto3.Query{String: sql})
		got := r.until(1)
		if !has(got, "E:42501") || has(got, "C:COPY 1") {
			t.Errorf("%s: answers %v, want 42501 and no COPY", sql, got)
		}
		r.send(&pgproto3.Parse{Query: sql}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		if got := r.until(1); !has(got, "E:42501") || has(got, "C:COPY 1") {
			t.Errorf("%s (extended): answers %v, want 42501 and no COPY", sql, got)
		}
	}
	if got := e.scalar(t, "SELECT string_agg(id || ':' || customer_id, ',') FROM orders"); got != "10:1" {
		t.Fatalf("orders = %s: a refused COPY wrote", got)
	}
	denied := e.deniedTexts()
	if len(denied) != 10 || !strings.Contains(denied[0], "writes or locks rows") {
		t.Fatalf("denied records %q: want each COPY refused as writing", denied)
	}
	// A COPY TO of a plain query is still an export.
	r.send(&pgproto3.Query{String: "COPY (SELECT id FROM orders) TO STDOUT"})
	if got := r.until(1); !has(got, "C:COPY 1") {
		t.Fatalf("plain COPY TO: %v", got)
	}
}

// TestAttackBinaryCopyOutput: COPY ... TO STDOUT (FORMAT binary) sends
// values in their binary form, which the detectors cannot read: a card
// number in a bigint left as 8 raw bytes. The classifier refuses it; a
// binary CopyOutResponse that still arrives (here with lock 1's classifier
// switched off) ends the session before any data passes.
func TestAttackBinaryCopyOutput(t *testing.T) {
	cardInt := binary.BigEndian.AppendUint64(nil, 4111111111111111)
	e := newEnv(t)
	r := e.raw(t, "support-bot/triage", nil)
	for _, sql := range []string{
		"COPY (SELECT 4111111111111111::bigint) TO STDOUT (FORMAT binary)",
		"COPY (SELECT 4111111111111111::bigint) TO STDOUT WITH BINARY",
		"COPY orders TO STDOUT BINARY",
		"COPY (SELECT 4111111111111111::bigint) TO STDOUT (FORMAT 'BINARY')",
	} {
		r.send(&pgproto3.Query{String: sql})
		for _, m := range r.collect(1) {
			if d, ok := m.(*pgproto3.CopyData); ok {
				t.Fatalf("%s: COPY data reached the client: %q", sql, d.Data)
			}
			if er, ok := m.(*pgproto3.ErrorResponse); ok && (er.Code != "42501" || !strings.Contains(er.Message, "binary format")) {
				t.Fatalf("%s: %s %s, want 42501 naming the binary format", sql, er.Code, er.Message)
			}
		}
	}
	if n := len(e.deniedTexts()); n != 4 {
		t.Fatalf("%d refusals recorded, want 4", n)
	}

	l2 := newLock2Env(t, false, true)
	rr, err := rawProxy(t, l2.addr(), l2.grantID, l2.token, nil)
	if err != nil {
		t.Fatal(err)
	}
	rr.send(&pgproto3.Query{String: "COPY (SELECT 4111111111111111::bigint) TO STDOUT (FORMAT binary)"})
	msgs := rr.collect(1)
	ended := false
	for _, m := range msgs {
		switch m := m.(type) {
		case *pgproto3.CopyData:
			t.Fatalf("binary COPY data reached the client: %q (the card is %q)", m.Data, cardInt)
		case *pgproto3.ErrorResponse:
			ended = ended || m.Code == "0A000" && strings.Contains(m.Message, "binary format")
		}
	}
	if !ended {
		t.Fatalf("answers %+v: want the session ended (0A000) before any data", msgs)
	}
}

// TestAttackParameterStatusCarriesCard: set_config('application_name',
// card_number, false) makes the server report the raw card in a
// ParameterStatus, which passed the proxy unmasked while the query's own
// result cell was masked. Reported settings pass the detectors.
func TestAttackParameterStatusCarriesCard(t *testing.T) {
	e := newEnv(t)
	r := e.raw(t, "support-bot/setter", nil)
	r.send(&pgproto3.Query{String: "SELECT set_config('application_name', card_number, false) FROM customers WHERE id = 1"})
	seen := false
	for _, m := range r.collect(1) {
		if p, ok := m.(*pgproto3.ParameterStatus); ok && p.Name == "application_name" {
			seen = true
			if strings.Contains(p.Value, card) || !strings.HasSuffix(p.Value, "1111") {
				t.Fatalf("ParameterStatus application_name = %q, want the card masked", p.Value)
			}
		}
	}
	if !seen {
		t.Fatal("the server reported no application_name: the attack did not run")
	}
	if got := e.scalar(t, "SELECT count(*) FROM pg_stat_activity WHERE application_name = '"+card+"'"); got != "1" {
		t.Fatalf("%s sessions carry the card as application_name, want the attacker's one (the server did set it)", got)
	}
}

// TestAttackForgedRefusalHint: toolgate recognised its own refusals by
// their HINT and did not mask them; any error raised with that hint (RAISE
// ... USING HINT in a function the node may call) reached the client
// unmasked, a card in its message included. Every error is masked now.
func TestAttackForgedRefusalHint(t *testing.T) {
	e := newEnv(t)
	e.execDirect(t, `CREATE FUNCTION slugify(text) RETURNS text LANGUAGE plpgsql AS $f$BEGIN
		RAISE EXCEPTION 'bad slug %', (SELECT card_number FROM customers WHERE id = 1) USING HINT = $1, DETAIL = 'card ' || (SELECT card_number FROM customers WHERE id = 1);
	END$f$`)
	r := e.raw(t, "support-bot/extended", nil)
	r.send(&pgproto3.Query{String: "SELECT slugify('toolgate refused this statement')"},
		&pgproto3.Parse{Query: "SELECT slugify($1)"}, &pgproto3.Bind{Parameters: [][]byte{[]byte("toolgate refused this statement")}}, &pgproto3.Execute{}, &pgproto3.Sync{})
	n := 0
	for _, m := range r.collect(2) {
		er, ok := m.(*pgproto3.ErrorResponse)
		if !ok {
			continue
		}
		n++
		if er.Code != "P0001" || strings.Contains(er.Message+er.Detail, card) || !strings.HasSuffix(er.Message, "1111") {
			t.Fatalf("error %s %q (detail %q): want the function's error with the card masked", er.Code, er.Message, er.Detail)
		}
	}
	if n != 2 {
		t.Fatalf("%d errors, want the function's error twice", n)
	}
}

// TestAttackMaskedColumnThroughChildTable: mask rules are keyed by the
// table a result column comes from, and an inheritance child or a
// partition (both in pg_inherits) is another table holding the same
// column: with customers.card_number masked last4, SELECT card_number FROM
// a child of customers showed it raw, and COPY of the child passed the
// check for masked columns. A column's parents' rules now apply to it.
func TestAttackMaskedColumnThroughChildTable(t *testing.T) {
	const odd = "1234567812345671" // fails the Luhn check: no detector masks it
	e := newEnv(t)
	e.direct1(t, `CREATE TABLE pgbench_kids () INHERITS (customers);
		CREATE TABLE pgbench_grandkids () INHERITS (pgbench_kids);
		INSERT INTO pgbench_kids VALUES (5, 'Eve', '`+odd+`');
		INSERT INTO pgbench_grandkids VALUES (6, 'Fay', '`+odd+`');
		GRANT SELECT ON pgbench_kids, pgbench_grandkids TO `+testenv.PasswordUser)
	r := e.raw(t, "support-bot/triage", nil)
	r.wantNo(t, odd, "D:************5671", "SELECT card_number FROM pgbench_kids WHERE id = 5", "SELECT card_number FROM pgbench_grandkids",
		"SELECT card_number FROM ONLY pgbench_kids", "SELECT card_number FROM customers WHERE id = 6")
	r.wantNo(t, odd, "E:42501", "COPY pgbench_kids TO STDOUT", "COPY pgbench_grandkids (card_number) TO STDOUT")
	r.send(&pgproto3.Query{String: "SELECT name FROM pgbench_grandkids"})
	if got := r.until(1); !has(got, "D:Fay") {
		t.Fatalf("an unmasked column of the child: %v", got)
	}
}

// wantNo sends each query and wants want among its answers (a masked
// cell, a refusal) and value nowhere in them.
func (r *raw) wantNo(t *testing.T, value, want string, queries ...string) {
	t.Helper()
	for _, sql := range queries {
		r.send(&pgproto3.Query{String: sql})
		if got := r.until(1); !has(got, want) || strings.Contains(strings.Join(got, " "), value) {
			t.Errorf("%s: answers %v, want %s and no %s", sql, got, want, value)
		}
	}
}

// evilDomain makes a domain, evil_text, whose CHECK writes customer 1's
// name, and a table pgbench_dom of it, owned by the proxy's login.
func (e *env) evilDomain(t *testing.T) {
	t.Helper()
	e.execDirect(t, `CREATE FUNCTION evil_check(v text) RETURNS bool LANGUAGE plpgsql AS $f$BEGIN
			UPDATE customers SET name = 'pwned' WHERE id = 1; RETURN true; END$f$;
		CREATE DOMAIN evil_text AS text CHECK (evil_check(VALUE));
		CREATE TABLE pgbench_dom (d evil_text);
		ALTER FUNCTION evil_check(text) OWNER TO `+testenv.PasswordUser+`;
		ALTER DOMAIN evil_text OWNER TO `+testenv.PasswordUser+`;
		ALTER TABLE pgbench_dom OWNER TO `+testenv.PasswordUser)
}

// TestAttackParseParameterTypeRunsDomainCheck: a Parse may give its
// parameters' types by OID, and a Bind converts the values with each
// type's input function and a domain's CHECK before any Execute is
// decided. The classifier refuses a cast to a user type or domain, yet
// Parse("SELECT $1", [OID of a domain whose CHECK calls a writing
// function]) passed as a plain read and the Bind ran the write. A Parse
// whose parameter types are not built-in types on the list is refused,
// and nothing runs; built-in types (and OID 0) still work.
func TestAttackParseParameterTypeRunsDomainCheck(t *testing.T) {
	e := newEnv(t)
	e.evilDomain(t)
	oid, err := strconv.ParseUint(e.scalar(t, "SELECT 'evil_text'::regtype::oid::text"), 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	r := e.raw(t, "support-bot/triage", nil)
	for _, oids := range [][]uint32{{uint32(oid)}, {pgtype.Int4OID, uint32(oid)}, {pgtype.TIDOID}} {
		params := make([][]byte, len(oids))
		for i := range params {
			params[i] = []byte("1")
		}
		r.send(&pgproto3.Parse{Name: "s", Query: "SELECT name FROM customers WHERE id = $1 AND $2::text IS NOT NULL", ParameterOIDs: oids},
			&pgproto3.Bind{PreparedStatement: "s", Parameters: params}, &pgproto3.Execute{}, &pgproto3.Sync{})
		if got := r.until(1); !has(got, "E:42501") || has(got, "1") || has(got, "D:Ada") {
			t.Errorf("Parse with types %v: answers %v, want 42501 and nothing parsed", oids, got)
		}
	}
	if name := e.adaName(t); name != "Ada" {
		t.Fatalf("customer 1 is %q: the domain's CHECK ran", name)
	}
	denied := e.deniedTexts()
	if len(denied) != 3 || !strings.Contains(denied[0], "parameter type OID "+strconv.FormatUint(oid, 10)) {
		t.Fatalf("denied records %q: want each Parse refused for its parameter type", denied)
	}
	r.send(&pgproto3.Parse{Name: "ok", Query: "SELECT name FROM customers WHERE id = $1 AND $2::text IS NOT NULL AND $3 IS NOT NULL", ParameterOIDs: []uint32{pgtype.Int4OID, 0, pgtype.Int4ArrayOID}},
		&pgproto3.Bind{PreparedStatement: "ok", Parameters: [][]byte{[]byte("1"), []byte("x"), []byte("{1}")}}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if got := r.until(1); !has(got, "D:Ada") {
		t.Fatalf("built-in parameter types: answers %v, want Ada", got)
	}
}

// TestAttackMaskedColumnThroughView: mask rules are keyed by the relation
// a result column comes from, and for a view or a materialized view that
// is the view: with customers.card_number masked last4 and a view within
// the grant's tables, SELECT c FROM a view of card_number AS c showed it
// raw (a number that fails the Luhn check passes the detectors), and so
// did a materialized view, a view of a view and a view of a child table;
// COPY of such a view passed the check for masked columns. The catalog
// cannot tell which view column comes from which, so every column of a
// view that reads a table with a masked column takes that rule; views of
// other tables are untouched.
func TestAttackMaskedColumnThroughView(t *testing.T) {
	const odd = "1234567812345671" // fails the Luhn check: no detector masks it
	e := newEnv(t)
	e.direct1(t, `UPDATE customers SET card_number = '`+odd+`' WHERE id = 2;
		CREATE TABLE pgbench_kids () INHERITS (customers);
		INSERT INTO pgbench_kids VALUES (7, 'Eve', '`+odd+`');
		CREATE VIEW pgbench_v AS SELECT id, card_number AS c FROM customers;
		CREATE VIEW pgbench_vv AS SELECT c AS x FROM pgbench_v WHERE id = 2;
		CREATE VIEW pgbench_kv AS SELECT card_number AS k FROM ONLY pgbench_kids;
		CREATE MATERIALIZED VIEW pgbench_m AS SELECT id, card_number FROM customers WHERE id < 3;
		CREATE VIEW pgbench_orders AS SELECT id, customer_id FROM orders;
		GRANT SELECT ON pgbench_kids, pgbench_v, pgbench_vv, pgbench_kv, pgbench_m, pgbench_orders TO `+testenv.PasswordUser)
	r := e.raw(t, "support-bot/triage", nil)
	r.wantNo(t, odd, "D:************5671", "SELECT c FROM pgbench_v WHERE id = 2", "SELECT x FROM pgbench_vv", "SELECT k FROM pgbench_kv",
		"SELECT card_number FROM pgbench_m WHERE id = 2")
	r.wantNo(t, odd, "E:42501", "COPY pgbench_v TO STDOUT", "COPY pgbench_m (card_number) TO STDOUT")
	r.send(&pgproto3.Query{String: "SELECT id, customer_id FROM pgbench_orders"})
	if got := r.until(1); !has(got, "D:10,1") {
		t.Fatalf("a view of an unmasked table: %v", got)
	}
}

// TestAttackPopulateRecordRunsDomainCheck: json_populate_record and its
// kin were on the built-in list, yet they convert JSON to a table's row
// type, running the CHECK of each domain column (and each type's input
// function): with a granted table holding a column of a domain whose CHECK
// calls a writing function, SELECT json_populate_record(t, '{"d": "x"}')
// FROM that table passed as a plain read and wrote. They are off the list
// now: refused unless a node's functions name them, and nothing runs.
func TestAttackPopulateRecordRunsDomainCheck(t *testing.T) {
	e := newEnv(t)
	e.evilDomain(t)
	r := e.raw(t, "support-bot/triage", nil)
	for _, sql := range []string{
		`SELECT (json_populate_record(t, '{"d": "x"}')).d FROM pgbench_dom t RIGHT JOIN (SELECT 1) o ON true`,
		`SELECT (pg_catalog.jsonb_populate_record(t, '{"d": "x"}')).d FROM pgbench_dom t RIGHT JOIN (SELECT 1) o ON true`,
		`SELECT r.d FROM pgbench_dom t RIGHT JOIN (SELECT 1) o ON true, json_populate_recordset(t, '[{"d": "x"}]') r`,
		`SELECT jsonb_populate_record_valid(t, '{"d": "x"}') FROM pgbench_dom t RIGHT JOIN (SELECT 1) o ON true`,
	} {
		r.send(&pgproto3.Query{String: sql})
		if got := r.until(1); !has(got, "E:42501") {
			t.Errorf("%s: answers %v, want 42501", sql, got)
		}
	}
	if name := e.adaName(t); name != "Ada" {
		t.Fatalf("customer 1 is %q: the domain's CHECK ran", name)
	}
	denied := e.deniedTexts()
	if len(denied) != 4 || !strings.Contains(denied[0], "it calls json_populate_record") {
		t.Fatalf("denied records %q: want each call refused by name", denied)
	}
}
