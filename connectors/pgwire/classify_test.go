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
	funcs   string // functions off the built-in list, last statement
	unclass bool
	refused string // part of the classification refusal of the last statement
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
	{sql: "CALL do_things()", classes: "other", funcs: "do_things"},
	{sql: "SELECT set_config('role', 'postgres', false)", refused: "role"},
	{sql: "SELECT set_config('search_path', 'evil', false)", classes: "read", funcs: "set_config"},
	{sql: "SELECT pg_catalog.pg_read_file('/etc/passwd')", classes: "read", funcs: "pg_catalog.pg_read_file"},
	{sql: "SELECT lo_import('/etc/passwd')", classes: "read", funcs: "lo_import"},
	{sql: "SELECT * FROM dblink('host=x', 'DELETE FROM t') AS t(a int)", classes: "read", funcs: "dblink"},
	{sql: "SELECT pg_terminate_backend(123)", classes: "read", funcs: "pg_terminate_backend"},
	{sql: "SET ROLE postgres", refused: "role"},
	{sql: "SET SESSION AUTHORIZATION postgres", refused: "role"},
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
	// Functions: only the built-in list passes without a rule.
	{sql: "SELECT ts_stat('SELECT body FROM notes')", classes: "read", funcs: "ts_stat"},
	{sql: "SELECT * FROM ts_stat('SELECT body FROM notes')", classes: "read", funcs: "ts_stat"},
	{sql: "SELECT ts_rewrite('a'::tsquery, 'SELECT t, s FROM aliases')", classes: "read", funcs: "ts_rewrite"},
	{sql: "SELECT * FROM pg_stat_get_activity(NULL)", classes: "read", funcs: "pg_stat_get_activity"},
	{sql: "SELECT * FROM pg_hba_file_rules()", classes: "read", funcs: "pg_hba_file_rules"},
	{sql: "SELECT * FROM pg_catalog.pg_show_all_file_settings()", classes: "read", funcs: "pg_catalog.pg_show_all_file_settings"},
	{sql: "SELECT pg_stat_reset()", classes: "read", funcs: "pg_stat_reset"},
	{sql: "SELECT txid_current(), pg_current_xact_id(), pg_export_snapshot()", classes: "read", funcs: "pg_current_xact_id,pg_export_snapshot,txid_current"},
	{sql: "SELECT query_to_xml('SELECT * FROM notes', true, true, '')", classes: "read", funcs: "query_to_xml"},
	{sql: "SELECT nextval('s'), pg_advisory_lock(1), pg_notify('c', 'x'), pg_sleep(1)", classes: "read", funcs: "nextval,pg_advisory_lock,pg_notify,pg_sleep"},
	{sql: `SELECT "LOWER"(name), "lower"(name) FROM customers`, classes: "read", tables: "customers", funcs: `"LOWER"`},
	{sql: "SELECT public.lower(name), pg_catalog.upper(name) FROM customers", classes: "read", tables: "customers", funcs: "public.lower"},
	{sql: "SELECT x.pg_catalog.lower(name) FROM customers", classes: "read", tables: "customers", funcs: "x.pg_catalog.lower"},
	{sql: "SELECT 'notes'::regclass, 'x'::pg_catalog.regtype, regproc('now'), CAST(1 AS public.int4)", classes: "read", funcs: "pg_catalog.regtype,public.int4,regclass,regproc"},
	{sql: "SELECT id::int, id::bigint, name::varchar(10), name::text[], '1 day'::interval, x::\"char\", TREAT(id AS int) FROM customers", classes: "read", tables: "customers"},
	{sql: "SELECT CAST(name AS mydomain) FROM customers", classes: "read", tables: "customers", funcs: "mydomain"},
	{sql: "SELECT 1 === 2, 1 OPERATOR(public.+) 2, 1 OPERATOR(pg_catalog.+) 2", classes: "read", funcs: "operator ===,operator public.+"},
	{sql: "SELECT * FROM customers ORDER BY id USING OPERATOR(public.<)", classes: "read", tables: "customers", funcs: "operator public.<"},
	{sql: "SELECT 1 =# ANY (SELECT id FROM orders)", classes: "read", tables: "orders", funcs: "operator =#"},
	{sql: "SELECT a BETWEEN 1 AND 2, b NOT BETWEEN SYMMETRIC 1 AND 2, c IN (1, 2), d IS DISTINCT FROM e, NULLIF(a, b), a = ANY(b), 'a' LIKE 'b' ESCAPE 'c', 'a' SIMILAR TO 'b', 'a' ~~* 'b', j->>'k', j #> '{a}', t @@ q FROM x", classes: "read", tables: "x"},
	{sql: "SELECT now(), extract(year FROM now()), substring('abc' FROM 1 FOR 2), position('a' IN 'b'), overlay('a' PLACING 'b' FROM 1), trim(both ' ' FROM ' x '), now() AT TIME ZONE 'UTC', 'a' IS NORMALIZED, current_date, current_user", classes: "read"},
	{sql: "SELECT COLLATION FOR ('a'), SYSTEM_USER", classes: "read", funcs: "pg_catalog.pg_collation_for,pg_catalog.system_user"},
	{sql: "SELECT string_agg(card_number, ''), count(*) FILTER (WHERE id > 1), row_number() OVER (ORDER BY id), percentile_cont(0.5) WITHIN GROUP (ORDER BY id) FROM customers", classes: "read", tables: "customers"},
	{sql: "SELECT format('%s%s', 'a', card_number), 'a' || card_number, encode(convert_to(card_number, 'UTF8'), 'base64'), reverse(card_number) FROM customers", classes: "read", tables: "customers"},
	{sql: "SELECT * FROM customers, LATERAL evil(customers.id)", classes: "read", tables: "customers", funcs: "evil"},
	{sql: "SELECT * FROM ROWS FROM (generate_series(1, 2), evil())", classes: "read", funcs: "evil"},
	{sql: "SELECT * FROM unnest(ARRAY[1, 2]) WITH ORDINALITY", classes: "read"},
	{sql: "SELECT * FROM xmltable('/a' PASSING evil() COLUMNS x int PATH 'x')", classes: "read", funcs: "evil"},
	{sql: "SELECT * FROM xmltable('/a' PASSING doc COLUMNS x mytype PATH 'x')", classes: "read", funcs: "mytype"},
	{sql: "SELECT * FROM json_table('[]'::jsonb, '$[*]' COLUMNS (a int PATH '$.a', b mytype PATH '$.b'))", classes: "read", funcs: "mytype"},
	{sql: "SELECT JSON_VALUE('{}'::jsonb, '$.a' RETURNING mytype)", classes: "read", funcs: "mytype"},
	{sql: "SELECT * FROM json_to_record('{}') AS x(a int, b mytype)", classes: "read", funcs: "mytype"},
	{sql: "VALUES (evil())", classes: "read", funcs: "evil"},
	{sql: "WITH x AS (SELECT evil()) SELECT * FROM x", classes: "read", funcs: "evil"},
	{sql: "SELECT (SELECT evil()), EXISTS (SELECT 1 FROM orders WHERE evil2())", classes: "read", tables: "orders", funcs: "evil,evil2"},
	{sql: "EXPLAIN SELECT evil()", classes: "read", funcs: "evil"},
	{sql: "CREATE TABLE t AS SELECT evil()", classes: "ddl", tables: "t", funcs: "evil"},
	{sql: "CREATE TABLE t (a mytype, b serial)", classes: "ddl", tables: "t"},
	{sql: "COPY (SELECT evil()) TO STDOUT", classes: "other", funcs: "evil"},
	{sql: "PREPARE q(mytype) AS SELECT $1", classes: "other", funcs: "mytype"},
	{sql: "SELECT * FROM customers TABLESAMPLE system (10), orders TABLESAMPLE bernoulli (5)", classes: "read", tables: "customers,orders"},
	{sql: "SELECT * FROM customers TABLESAMPLE evil_method (10)", classes: "read", tables: "customers", funcs: "evil_method"},
	{sql: "SELECT current_setting('search_path'), version(), pg_typeof(1)", classes: "read"},
	// Settings toolgate refuses whatever policy says.
	{sql: "SELECT set_config('client_encoding', 'SJIS', false)", refused: "client encoding"},
	{sql: "SELECT pg_catalog.set_config('CLIENT_ENCODING'::text, 'SJIS', false)", refused: "client encoding"},
	{sql: "SELECT set_config(name, 'SJIS', false) FROM settings", refused: "not a constant"},
	{sql: "SELECT set_config('session_authorization', 'postgres', false)", refused: "role"},
	{sql: "SET client_encoding = 'SJIS'", refused: "client encoding"},
	{sql: "SET LOCAL client_encoding TO 'BIG5'", refused: "client encoding"},
	{sql: "SET NAMES 'GBK'", refused: "client encoding"},
	{sql: "RESET client_encoding", refused: "client encoding"},
	{sql: "RESET ALL", refused: "client encoding"},
	{sql: "DISCARD ALL", refused: "RESET ALL"},
	{sql: "DISCARD PLANS", classes: "other"},
	{sql: "RESET ROLE", refused: "role"},
	{sql: "RESET SESSION AUTHORIZATION", refused: "role"},
	{sql: "SET LOCAL ROLE postgres", refused: "role"},
	// The same, in other spellings: quoted and mixed-case setting names,
	// SESSION, DEFAULT, comments for spaces, escaped and dollar-quoted or
	// named set_config arguments.
	{sql: `SET "ROLE" TO postgres`, refused: "role"},
	{sql: `SET "role" = 'postgres'`, refused: "role"},
	{sql: "SET SESSION ROLE postgres", refused: "role"},
	{sql: "SET SESSION AUTHORIZATION DEFAULT", refused: "role"},
	{sql: `SET "Session_Authorization" TO postgres`, refused: "role"},
	{sql: "/* x */ reset/**/all", refused: "RESET ALL"},
	{sql: "SELECT 1; RESET ALL", refused: "RESET ALL"},
	{sql: `SELECT set_config(U&'r\006Fle', 'postgres', false)`, refused: "role"},
	{sql: `SELECT set_config(U&'r!006Fle' UESCAPE '!', 'postgres', false)`, refused: "role"},
	{sql: `SELECT set_config(E'r\x6fle', 'postgres', false)`, refused: "role"},
	{sql: "SELECT set_config($x$ROLE$x$, 'postgres', false)", refused: "role"},
	{sql: `SELECT "set_config"('role', 'postgres', false)`, refused: "role"},
	{sql: "SELECT set_config(setting_name => 'role', new_value => 'postgres', is_local => false)", refused: "not a constant"},
	{sql: `SELECT set_config('role' COLLATE "C", 'postgres', false)`, refused: "not a constant"},
	{sql: "SELECT set_config('ro' || 'le', 'postgres', false)", refused: "not a constant"},
	{sql: "SET NAMES DEFAULT", refused: "client encoding"},
	{sql: "UPDATE pg_settings SET setting = 'SJIS' WHERE name = 'client_encoding'", refused: "pg_settings"},
	{sql: "WITH s AS (UPDATE pg_catalog.pg_settings SET setting = 'x' RETURNING 1) SELECT * FROM s", refused: "pg_settings"},
	{sql: "SELECT setting FROM pg_settings WHERE name = 'client_encoding'", classes: "read", tables: "pg_settings"},
	// Transaction control and two-phase commit.
	{sql: "BEGIN; SAVEPOINT a; RELEASE SAVEPOINT a; ROLLBACK TO SAVEPOINT a; COMMIT; ROLLBACK", classes: "read,read,read,read,read,read"},
	{sql: "BEGIN READ ONLY; START TRANSACTION ISOLATION LEVEL SERIALIZABLE; SET TRANSACTION READ ONLY", classes: "read,read,other"},
	{sql: "PREPARE TRANSACTION 'x'", classes: "other"},
	{sql: "COMMIT PREPARED 'x'", classes: "other"},
	{sql: "ROLLBACK PREPARED 'x'", classes: "other"},
	{sql: "BEGIN READ WRITE", classes: "write"},
	{sql: "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE", classes: "write"},
	{sql: "SET TRANSACTION READ WRITE", classes: "write"},
	{sql: "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", classes: "write"},
	{sql: "SET default_transaction_read_only = off", classes: "write"},
	{sql: "SET transaction_read_only TO 'n'", classes: "write"},
	{sql: "RESET default_transaction_read_only", classes: "write"},
	{sql: "SET default_transaction_read_only = on", classes: "other"},
	// CTE names hide a table only where PostgreSQL sees them.
	{sql: "SELECT * FROM (WITH notes AS (SELECT 1) SELECT * FROM notes) a, notes", classes: "read", tables: "notes"},
	{sql: "WITH notes AS (SELECT * FROM notes) SELECT * FROM notes", classes: "read", tables: "notes"},
	{sql: "WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a, b", classes: "read", tables: "b"},
	{sql: "WITH RECURSIVE r AS (SELECT 1 UNION ALL SELECT * FROM r) SELECT * FROM r", classes: "read"},
	{sql: "WITH x AS (SELECT 1) SELECT * FROM x UNION SELECT * FROM (SELECT * FROM x) y", classes: "read"},
	{sql: "SELECT * FROM x WHERE EXISTS (WITH x AS (SELECT 1) SELECT * FROM x)", classes: "read", tables: "x"},
	{sql: "WITH x AS (SELECT 1) SELECT * FROM public.x", classes: "read", tables: "public.x"},
	{sql: "SELEC 1", unclass: true},
	{sql: "SELECT 'unterminated", unclass: true},
}

func TestClassifyBypassCorpus(t *testing.T) {
	for _, tc := range bypassCorpus {
		t.Run(tc.sql, func(t *testing.T) {
			sts := Classify(tc.sql)
			if tc.refused != "" {
				if last := sts[len(sts)-1]; !strings.Contains(last.Unclassified, tc.refused) {
					t.Fatalf("Classify(%q) = %+v, want a refusal about %q", tc.sql, last, tc.refused)
				}
				return
			}
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

// TestClassifyOrdinaryReads: what clients and agents commonly send reads
// as plain reads that call nothing off the built-in lists.
func TestClassifyOrdinaryReads(t *testing.T) {
	for _, sql := range []string{
		`SELECT "customers"."id" FROM "customers" WHERE "customers"."id" = $1 LIMIT $2`,
		"SELECT * FROM customers WHERE name ILIKE $1 AND name NOT LIKE 'x%' AND name ~ '^A' AND name !~* 'z'",
		"SELECT count(*), count(DISTINCT id), avg(id)::numeric(10,2), max(name), min(id) FROM customers",
		"SELECT id FROM customers ORDER BY id DESC NULLS LAST LIMIT 1 OFFSET 0",
		"SELECT now()::date, EXTRACT(EPOCH FROM now()), date_trunc('day', now()) AT TIME ZONE 'UTC', interval '1 day' * 2",
		"SELECT $1::text, CAST($2 AS varchar(20)), $3::uuid, $4::bigint, $5::double precision, $6::timestamp without time zone, $7::character varying, $8::bool, NULL::int, $9::int[]",
		"SELECT coalesce(name, ''), nullif(name, ''), greatest(1, 2), least(1, 2), CASE WHEN id > 1 THEN 'a' ELSE 'b' END FROM customers",
		"SELECT name FROM customers WHERE id = ANY($1::int[]) OR id IN (SELECT customer_id FROM orders)",
		"SELECT jsonb_agg(c), json_agg(c.name), row_to_json(c), to_jsonb(c) FROM customers c GROUP BY c.id",
		"SELECT '{\"a\":1}'::jsonb -> 'a', '{\"a\":1}'::jsonb ->> 'a', '{\"a\":1}'::jsonb @> '{\"a\":1}', '{\"a\":[1]}'::jsonb #> '{a,0}', jsonb_path_query('{}', '$.a')",
		"SELECT version(), pg_catalog.version(), current_schema(), current_database(), current_user, session_user",
		"SHOW server_version",
		"SHOW transaction isolation level",
		"SELECT name || ' ' || id::text, to_char(now(), 'YYYY-MM-DD'), md5(name), split_part(name, ' ', 1), length(name), upper(name) FROM customers",
		"SELECT array_length(ARRAY[1, 2], 1), unnest(ARRAY['a']), string_to_array('a,b', ','), array_agg(id ORDER BY id) FROM customers",
		"SELECT * FROM generate_series(1, 10) AS g(i) CROSS JOIN LATERAL (SELECT i * 2) x",
		"SELECT gen_random_uuid(), random(), round(random() * 10)::int, abs(-1), sqrt(4), power(2, 3), mod(5, 2), ceil(1.5), floor(1.5)",
		"SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY id), lag(id) OVER w, rank() OVER w, row_number() OVER (PARTITION BY name) FROM customers WINDOW w AS (ORDER BY id) ",
		"SELECT xmlelement(name a, 'x'), xmlforest(name), xpath('/a', '<a/>'::xml), json_build_object('a', 1), json_object('{a,b}')",
		"SELECT '[1,2]'::int4range @> 1, to_tsvector('english', 'x') @@ to_tsquery('x'), 'english'::regconfig, '192.168.0.1'::inet << '192.168.0.0/16'::cidr",
		"SELECT id FROM customers WHERE created_at BETWEEN now() - interval '7 days' AND now() AND name IS NOT NULL AND NOT (id IS DISTINCT FROM 1)",
		"SELECT regexp_replace(name, '[0-9]', '', 'g'), regexp_matches(name, 'a'), substring(name FROM 1 FOR 3), position('a' IN name), trim(name), lpad(name, 10), concat_ws(',', name, id) FROM customers",
		"SELECT json_object_keys('{}'), jsonb_each('{}'), jsonb_array_elements('[]'), json_typeof('1'), jsonb_set('{}', '{a}', '1')",
		"WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM t WHERE n < 10) SELECT sum(n) FROM t",
		"SELECT DISTINCT ON (name) name, id FROM customers ORDER BY name, id",
		"SELECT * FROM customers c JOIN orders o USING (id) LEFT JOIN orders p ON p.id = c.id WHERE EXISTS (SELECT 1 FROM orders WHERE orders.id = c.id)",
		"SELECT format('%s-%I-%L', name, 'col', 'v'), quote_ident(name), encode(sha256(name::bytea), 'hex'), decode('00', 'hex') FROM customers",
		"SELECT age(now(), '2020-01-01'), make_date(2020, 1, 1), justify_days(interval '40 days'), to_timestamp(0), isfinite(now())",
		"EXPLAIN (FORMAT JSON) SELECT * FROM customers WHERE id = 1",
		"BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
		"COMMIT",
	} {
		sts := Classify(sql)
		for _, st := range sts {
			if st.Unclassified != "" || st.Class != broker.ClassRead || len(st.Functions) > 0 {
				t.Errorf("Classify(%q) = class %s, functions %v, unclassified %q; want a plain read", sql, st.Class, st.Functions, st.Unclassified)
			}
		}
	}
}
