package pgwire

import (
	"strings"
	"testing"

	"github.com/toolgate/toolgate/broker"
)

// TestClassifyBypassCorpus is the bypass corpus: statements that try to
// write, escalate or hide behind quoting must not classify as plain reads.
// bypassCorpus is shared with TestClassCacheMatchesParse.
var bypassCorpus = []struct {
	sql     string
	classes string // one class per statement, comma-separated
	tables  string // tables of the last statement
	funcs   string // side-effecting functions of the last statement
	unclass bool
}{
	{sql: "SELECT id, name FROM customers WHERE id = 1", classes: "read", tables: "customers"},
	{sql: "select * from public.customers c join orders o on o.customer_id = c.id", classes: "read", tables: "orders,public.customers"},
	{sql: "SELECT E'\\'; DELETE FROM customers; --'", classes: "read"},
	{sql: "SELECT $$; DELETE FROM customers; $$", classes: "read"},
	{sql: "SELECT $tag$ $$ DELETE $$ $tag$ FROM customers", classes: "read", tables: "customers"},
	{sql: "SELECT 1 /* nested /* comment */ ; DELETE FROM customers; */", classes: "read"},
	{sql: "/* x */ DELETE /* y */ FROM customers", classes: "write", tables: "customers"},
	{sql: "WITH x AS (DELETE FROM customers RETURNING *) SELECT * FROM x", classes: "write", tables: "customers"},
	{sql: "WITH x AS (SELECT * FROM customers) SELECT * FROM x", classes: "read", tables: "customers"},
	{sql: "SELECT * FROM customers FOR UPDATE", classes: "write", tables: "customers"},
	{sql: "SELECT * INTO newtab FROM customers", classes: "ddl", tables: "customers,newtab"},
	{sql: "MERGE INTO customers c USING orders o ON o.customer_id = c.id WHEN MATCHED THEN DELETE", classes: "write", tables: "customers,orders"},
	{sql: "COPY customers FROM STDIN", classes: "write", tables: "customers"},
	{sql: "COPY customers TO STDOUT", classes: "other", tables: "customers"},
	{sql: "COPY customers TO '/tmp/x'", classes: "other", tables: "customers", funcs: "copy file or program"},
	{sql: "EXPLAIN SELECT * FROM customers", classes: "read", tables: "customers"},
	{sql: "EXPLAIN ANALYZE DELETE FROM customers", classes: "write", tables: "customers"},
	{sql: "EXPLAIN (ANALYZE) DELETE FROM customers", classes: "write", tables: "customers"},
	{sql: "EXPLAIN DELETE FROM customers", classes: "read", tables: "customers"},
	{sql: "DO $$BEGIN DELETE FROM customers; END$$", classes: "other"},
	{sql: "PREPARE p AS DELETE FROM customers", classes: "other", tables: "customers"},
	{sql: "EXECUTE p", classes: "other"},
	{sql: "CALL do_things()", classes: "other"},
	{sql: "SELECT set_config('role', 'postgres', false)", classes: "read", funcs: "set_config"},
	{sql: "SELECT pg_catalog.pg_read_file('/etc/passwd')", classes: "read", funcs: "pg_read_file"},
	{sql: "SELECT lo_import('/etc/passwd')", classes: "read", funcs: "lo_import"},
	{sql: "SELECT * FROM dblink('host=x', 'DELETE FROM t') AS t(a int)", classes: "read", funcs: "dblink"},
	{sql: "SELECT pg_terminate_backend(123)", classes: "read", funcs: "pg_terminate_backend"},
	{sql: "SET ROLE postgres", classes: "other", funcs: "set role"},
	{sql: "SET SESSION AUTHORIZATION postgres", classes: "other", funcs: "set role"},
	{sql: "SET search_path = evil", classes: "other"},
	{sql: "SHOW search_path", classes: "read"},
	{sql: "BEGIN", classes: "read"},
	{sql: "SELECT 1; DELETE FROM customers", classes: "read,write", tables: "customers"},
	{sql: "CREATE TABLE t (a int)", classes: "ddl", tables: "t"},
	{sql: "DROP TABLE customers", classes: "ddl"},
	{sql: "TRUNCATE customers", classes: "ddl", tables: "customers"},
	{sql: "GRANT ALL ON customers TO public", classes: "ddl", tables: "customers"},
	{sql: "ALTER TABLE customers ADD COLUMN x int", classes: "ddl", tables: "customers"},
	{sql: "INSERT INTO orders SELECT * FROM customers", classes: "write", tables: "customers,orders"},
	{sql: "LISTEN chan", classes: "other"},
	{sql: "SELEC 1", unclass: true},
	{sql: "SELECT 'unterminated", unclass: true},
}

func TestClassifyBypassCorpus(t *testing.T) {
	for _, tc := range bypassCorpus {
		t.Run(tc.sql, func(t *testing.T) {
			sts := Classify(tc.sql)
			if tc.unclass {
				if len(sts) != 1 || sts[0].Unclassified == "" {
					t.Fatalf("Classify(%q) = %+v, want unclassified", tc.sql, sts)
				}
				return
			}
			var classes []string
			for _, s := range sts {
				if s.Unclassified != "" {
					t.Fatalf("unclassified: %s", s.Unclassified)
				}
				classes = append(classes, s.Class)
			}
			if got := strings.Join(classes, ","); got != tc.classes {
				t.Errorf("classes = %s, want %s", got, tc.classes)
			}
			last := sts[len(sts)-1]
			if got := strings.Join(last.Tables, ","); got != tc.tables {
				t.Errorf("tables = %s, want %s", got, tc.tables)
			}
			if got := strings.Join(last.Functions, ","); got != tc.funcs {
				t.Errorf("functions = %s, want %s", got, tc.funcs)
			}
		})
	}
}

func TestClassifySplitsText(t *testing.T) {
	sts := Classify("SELECT 1; DELETE FROM customers ;")
	if len(sts) != 2 || sts[0].Text != "SELECT 1" || sts[1].Text != "DELETE FROM customers" {
		t.Fatalf("split = %+v", sts)
	}
	if sts[1].Kind != broker.KindSQL || sts[1].Command != "DELETE" {
		t.Fatalf("second = %+v", sts[1])
	}
}
