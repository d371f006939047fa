package connectortest

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
)

// Seed is the schema and data every SQL connector is tested against. It is
// written in the SQL that PostgreSQL and SQLite both accept.
var Seed = []string{
	`CREATE TABLE customers (
		id INTEGER PRIMARY KEY,
		name TEXT NOT NULL,
		email TEXT,
		score DOUBLE PRECISION,
		active BOOLEAN,
		balance NUMERIC(10,2),
		born DATE,
		created_at TIMESTAMP
	)`,
	`INSERT INTO customers VALUES
		(1, 'Ada', 'ada@example.com', 9.5, TRUE, 12.25, '1815-12-10', '2024-01-02 03:04:05'),
		(2, 'Bob', NULL, NULL, FALSE, NULL, NULL, NULL),
		(3, 'Cy', 'cy@example.com', -1.25, TRUE, 0.75, '2000-02-29', '2024-06-30 23:59:59.5')`,
	`CREATE TABLE orders (
		id INTEGER PRIMARY KEY,
		customer_id INTEGER NOT NULL REFERENCES customers(id),
		note TEXT
	)`,
	`INSERT INTO orders VALUES (10, 1, 'first'), (11, 1, 'second'), (12, 3, NULL)`,
}

// ReadOnlyReporter is implemented by connectors that know whether their
// target is read-only; RunSQL checks writes against it.
type ReadOnlyReporter interface {
	ReadOnly() bool
}

func sqlOp(stmt string, args ...any) broker.Operation {
	return broker.Operation{Target: "crm", SQL: &broker.SQLOperation{Statement: stmt, Args: args}}
}

// num is an argument as the broker decodes it from JSON.
func num(s string) json.Number { return json.Number(s) }

// NewSQLExecutor returns an executor for a fresh database seeded with
// seedSQL (Seed), named "crm".
type NewSQLExecutor func(t *testing.T, seedSQL []string) broker.Executor

// sqlCase is one named case of the SQL conformance suite.
type sqlCase struct {
	name string
	run  func(t *testing.T, newExec NewSQLExecutor)
}

// sqlCases are the cases RunSQL runs, each a function below.
func sqlCases() []sqlCase {
	return []sqlCase{
		{"Results", sqlResults},
		{"MaxRows", sqlMaxRows},
		{"InjectionIsBound", sqlInjectionIsBound},
		{"Writes", sqlWrites},
		{"Errors", sqlErrors},
		{"Cancelled", sqlCancelled},
	}
}

// RunSQL runs the conformance suite, every case in parallel on a fresh
// database. newExec must return an executor for a fresh database seeded
// with seedSQL (Seed), named "crm".
func RunSQL(t *testing.T, newExec func(t *testing.T, seedSQL []string) broker.Executor) {
	t.Helper()
	for _, c := range sqlCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, newExec)
		})
	}
}

func sqlResults(t *testing.T, newExec NewSQLExecutor) {
	ctx := context.Background()
	ex := newExec(t, Seed)
	for _, tc := range []struct {
		name string
		op   broker.Operation
		want string
		rows int
	}{
		{
			name: "select with args",
			op:   sqlOp(`SELECT id, name, email FROM customers WHERE id = $1`, num("1")),
			want: `{"rows":[{"id":1,"name":"Ada","email":"ada@example.com"}],"row_count":1,"truncated":false}`,
			rows: 1,
		},
		{
			name: "row and key order preserved",
			op:   sqlOp(`SELECT name, id FROM customers ORDER BY id DESC`),
			want: `{"rows":[{"name":"Cy","id":3},{"name":"Bob","id":2},{"name":"Ada","id":1}],"row_count":3,"truncated":false}`,
			rows: 3,
		},
		{
			name: "types",
			op:   sqlOp(`SELECT id, score, active, balance, born, created_at FROM customers WHERE id IN ($1, $2) ORDER BY id`, num("1"), num("3")),
			want: `{"rows":[` +
				`{"id":1,"score":9.5,"active":true,"balance":"12.25","born":"1815-12-10","created_at":"2024-01-02T03:04:05Z"},` +
				`{"id":3,"score":-1.25,"active":true,"balance":"0.75","born":"2000-02-29","created_at":"2024-06-30T23:59:59.5Z"}` +
				`],"row_count":2,"truncated":false}`,
			rows: 2,
		},
		{
			name: "nulls",
			op:   sqlOp(`SELECT email, score, active, balance, born, created_at FROM customers WHERE id = $1`, num("2")),
			want: `{"rows":[{"email":null,"score":null,"active":false,"balance":null,"born":null,"created_at":null}],"row_count":1,"truncated":false}`,
			rows: 1,
		},
		{
			name: "string argument",
			op:   sqlOp(`SELECT id FROM customers WHERE email = $1`, "cy@example.com"),
			want: `{"rows":[{"id":3}],"row_count":1,"truncated":false}`,
			rows: 1,
		},
		{
			name: "null argument",
			op:   sqlOp(`SELECT count(*) AS n FROM customers WHERE email IS NOT DISTINCT FROM $1`, nil),
			want: `{"rows":[{"n":1}],"row_count":1,"truncated":false}`,
			rows: 1,
		},
		{
			name: "zero rows",
			op:   sqlOp(`SELECT id, name FROM customers WHERE id = $1`, num("999")),
			want: `{"rows":[],"row_count":0,"truncated":false}`,
		},
		{
			name: "join",
			op:   sqlOp(`SELECT o.id AS order_id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.id = $1 ORDER BY o.id`, num("1")),
			want: `{"rows":[{"order_id":10,"name":"Ada"},{"order_id":11,"name":"Ada"}],"row_count":2,"truncated":false}`,
			rows: 2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := ex.Execute(ctx, tc.op)
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			if string(out.Value) != tc.want {
				t.Errorf("value\n got %s\nwant %s", out.Value, tc.want)
			}
			if out.Rows != tc.rows {
				t.Errorf("Rows = %d, want %d", out.Rows, tc.rows)
			}
			if out.Bytes != len(out.Value) {
				t.Errorf("Bytes = %d, want len(Value) = %d", out.Bytes, len(out.Value))
			}
			if !json.Valid(out.Value) {
				t.Errorf("value is not valid JSON: %s", out.Value)
			}
		})
	}
}

func sqlMaxRows(t *testing.T, newExec NewSQLExecutor) {
	ctx := context.Background()
	ex := newExec(t, Seed)
	for _, tc := range []struct {
		max       int
		want      string
		truncated bool
	}{
		{1, `{"rows":[{"id":1}],"row_count":1,"truncated":true}`, true},
		{2, `{"rows":[{"id":1},{"id":2}],"row_count":2,"truncated":true}`, true},
		{3, `{"rows":[{"id":1},{"id":2},{"id":3}],"row_count":3,"truncated":false}`, false},
		{50, `{"rows":[{"id":1},{"id":2},{"id":3}],"row_count":3,"truncated":false}`, false},
	} {
		op := sqlOp(`SELECT id FROM customers ORDER BY id`)
		op.SQL.MaxRows = tc.max
		out, err := ex.Execute(ctx, op)
		if err != nil {
			t.Fatalf("max_rows %d: %v", tc.max, err)
		}
		if string(out.Value) != tc.want {
			t.Errorf("max_rows %d:\n got %s\nwant %s", tc.max, out.Value, tc.want)
		}
	}
	// A huge result is cut without reading it all into memory.
	op := sqlOp(`WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 200000) SELECT i FROM r`)
	op.SQL.MaxRows = 2
	out, err := ex.Execute(ctx, op)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"rows":[{"i":1},{"i":2}],"row_count":2,"truncated":true}`; string(out.Value) != want {
		t.Errorf("got %s, want %s", out.Value, want)
	}
}

func sqlInjectionIsBound(t *testing.T, newExec NewSQLExecutor) {
	ctx := context.Background()
	ex := newExec(t, Seed)
	for _, payload := range []string{
		`' OR '1'='1`,
		`Ada'; DROP TABLE customers; --`,
		`1 OR 1=1`,
		`Ada" OR ""="`,
		`$1`,
	} {
		out, err := ex.Execute(ctx, sqlOp(`SELECT id, name FROM customers WHERE name = $1`, payload))
		if err != nil {
			t.Fatalf("payload %q: %v", payload, err)
		}
		if want := `{"rows":[],"row_count":0,"truncated":false}`; string(out.Value) != want {
			t.Errorf("payload %q returned rows: %s", payload, out.Value)
		}
	}
	if got := count(t, ex, "customers"); got != 3 {
		t.Errorf("customers has %d rows after the injection attempts, want 3", got)
	}
}

func sqlWrites(t *testing.T, newExec NewSQLExecutor) {
	ctx := context.Background()
	ex := newExec(t, Seed)
	ro, known := ex.(ReadOnlyReporter)
	insert := sqlOp(`INSERT INTO orders (id, customer_id, note) VALUES ($1, $2, $3)`, num("99"), num("2"), "by the agent")
	out, err := ex.Execute(ctx, insert)
	if known && ro.ReadOnly() {
		if err == nil {
			t.Fatalf("a read-only target ran an INSERT: %s", out.Value)
		}
		if code := broker.CodeOf(err); code != broker.CodeForbidden {
			t.Errorf("code = %s, want %s (err: %v)", code, broker.CodeForbidden, err)
		}
		if !strings.Contains(err.Error(), "read-only") {
			t.Errorf("error %q does not say the target is read-only", err)
		}
		if got := count(t, ex, "orders"); got != 3 {
			t.Errorf("orders has %d rows after a refused write, want 3", got)
		}
		return
	}
	if err != nil {
		t.Fatalf("INSERT on a writable target: %v", err)
	}
	if want := `{"rows":[],"row_count":1,"truncated":false}`; string(out.Value) != want {
		t.Errorf("INSERT value = %s, want %s", out.Value, want)
	}
	if got := count(t, ex, "orders"); got != 4 {
		t.Errorf("orders has %d rows after the INSERT, want 4", got)
	}
}

func sqlErrors(t *testing.T, newExec NewSQLExecutor) {
	ctx := context.Background()
	ex := newExec(t, Seed)
	for _, tc := range []struct {
		name string
		op   broker.Operation
		code broker.Code
	}{
		{"syntax error", sqlOp(`SELEC id FROM customers`), broker.CodeTargetError},
		{"unknown table", sqlOp(`SELECT id FROM no_such_table`), broker.CodeTargetError},
		{"unknown column", sqlOp(`SELECT no_such_column FROM customers`), broker.CodeTargetError},
		{"not an SQL operation", broker.Operation{Target: "crm", HTTP: &broker.HTTPOperation{Method: "GET", Path: "/"}}, broker.CodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := ex.Execute(ctx, tc.op)
			if err == nil {
				t.Fatalf("no error; value %s", out.Value)
			}
			var be *broker.Error
			if !errors.As(err, &be) {
				t.Fatalf("error %T %v is not a *broker.Error", err, err)
			}
			if be.Code != tc.code {
				t.Errorf("code = %s, want %s (%v)", be.Code, tc.code, err)
			}
			if be.Message == "" {
				t.Error("empty message")
			}
		})
	}
	// The connector still works after errors.
	if got := count(t, ex, "customers"); got != 3 {
		t.Errorf("customers = %d after errors, want 3", got)
	}
}

func sqlCancelled(t *testing.T, newExec NewSQLExecutor) {
	ctx := context.Background()
	ex := newExec(t, Seed)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := ex.Execute(cctx, sqlOp(`SELECT id FROM customers`))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want one wrapping context.Canceled", err)
	}
	var be *broker.Error
	if !errors.As(err, &be) {
		t.Errorf("error %T is not a *broker.Error", err)
	}

	// Cancelling a running statement stops it promptly.
	cctx, cancel = context.WithCancel(ctx)
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err = ex.Execute(cctx, sqlOp(`WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 10000000000) SELECT count(*) AS n FROM r`))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want one wrapping context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancel took %s", d)
	}
	if got := count(t, ex, "customers"); got != 3 {
		t.Errorf("customers = %d after a cancel, want 3", got)
	}
}

// count returns the number of rows in a table through the executor.
func count(t *testing.T, ex broker.Executor, table string) int {
	t.Helper()
	out, err := ex.Execute(context.Background(), sqlOp(`SELECT count(*) AS n FROM `+table))
	if err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	var v struct {
		Rows []struct {
			N int `json:"n"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(out.Value, &v); err != nil || len(v.Rows) != 1 {
		t.Fatalf("count %s: unexpected value %s (%v)", table, out.Value, err)
	}
	return v.Rows[0].N
}
