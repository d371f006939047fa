package pgwire

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"
	"google.golang.org/protobuf/encoding/protowire"
)

// sameAsParse fails unless the cache's answer for sql is exactly Classify's.
func sameAsParse(t *testing.T, c *classCache, sql string) {
	t.Helper()
	want := Classify(sql)
	if got := c.classify(sql); !reflect.DeepEqual(got, want) {
		t.Fatalf("cache classified %q as\n%+v\nthe parser as\n%+v", sql, got, want)
	}
}

// TestClassCacheMatchesParse is the cache's soundness proof: for the whole
// bypass corpus, and for templates filled with random constants after a
// warm-up with another constant, the cached classification (class,
// command, tables, functions, text, unclassified) equals a fresh parse.
func TestClassCacheMatchesParse(t *testing.T) {
	c := newClassCache()
	for _, tc := range bypassCorpus {
		sameAsParse(t, c, tc.sql) // miss
		sameAsParse(t, c, tc.sql) // hit, when cacheable
		sameAsParse(t, c, tc.sql+";")
		sameAsParse(t, c, "  "+tc.sql+" ;  ")
	}

	templates := []string{
		"SELECT abalance FROM pgbench_accounts WHERE aid = %s;",
		"SELECT abalance FROM pgbench_accounts WHERE aid = %s",
		"select * from public.customers c where c.id >= %s and c.name <> %s",
		"SELECT * FROM customers WHERE id = %s FOR UPDATE",
		"SELECT id + %s, id - %s, id * %s, id / %s, id %% %s FROM customers",
		"SELECT * FROM customers WHERE id < %s OR id > %s OR id <= %s",
		"UPDATE customers SET note = %s WHERE id = %s",
		"DELETE FROM customers WHERE id = %s",
		"INSERT INTO orders (id, note) VALUES (%s, %s)",
		"INSERT INTO orders SELECT * FROM customers WHERE id = %s",
		"WITH x AS (DELETE FROM customers WHERE id = %s RETURNING *) SELECT * FROM x",
		"WITH x AS (SELECT * FROM customers WHERE id = %s) SELECT * FROM x",
		"SELECT * INTO newtab FROM customers WHERE id = %s",
		"SELECT set_config('role', %s, false) WHERE 1 = %s",
		"SELECT pg_catalog.pg_read_file(%s)",
		"SELECT * FROM customers WHERE id IN (%s, %s)",
		"SELECT * FROM customers LIMIT %s OFFSET %s",
		"SELECT %s::float(%s)",
		"SELECT 1 = %s::float(%s)",
		"SELECT x = %s::varchar(%s) FROM customers",
		"SELECT interval %s = %s",
		"SELECT now() - interval %s",
		"SELECT E'\\\\' = %s",
		"EXPLAIN (ANALYZE %s) DELETE FROM customers WHERE id = %s",
		"COPY customers TO %s",
		"SET search_path = %s",
		"SET ROLE %s",
		"VALUES (%s), (%s)",
		"TABLE customers",
		"(SELECT 1 = %s)",
		"SELECT 1 = %s; DELETE FROM customers WHERE id = %s",
		"SELECT * FROM customers WHERE id = %s -- comment",
		"SELECT * FROM customers WHERE id = %s /* ; DELETE FROM customers */",
		"SELECT U&'d\\0061t\\+000061' = %s",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tpl := range templates {
		c := newClassCache()
		for i := 0; i < 60; i++ {
			n := strings.Count(tpl, "%s")
			args := make([]any, n)
			for j := range args {
				args[j] = randomConstant(rng)
			}
			sameAsParse(t, c, fmt.Sprintf(tpl, args...))
		}
		if strings.HasPrefix(tpl, "SELECT abalance") && (len(c.m) == 0 || len(c.m) > 3) {
			t.Errorf("%q: %d cache entries for 60 statements; want one per constant kind", tpl, len(c.m))
		}
	}
}

// randomConstant returns a literal PostgreSQL constant of a random kind,
// including values a grammar action would reject or read.
func randomConstant(rng *rand.Rand) string {
	switch rng.IntN(12) {
	case 0:
		return "0"
	case 1:
		return fmt.Sprint(rng.Int64())
	case 2:
		return "99999999999999999999999999"
	case 3:
		return fmt.Sprintf("%d.%d", rng.IntN(1000), rng.IntN(1000))
	case 4:
		return "1e308"
	case 5:
		return "''"
	case 6:
		return "'off'"
	case 7:
		return "'/tmp/x'"
	case 8:
		return "'a''; DELETE FROM customers; --'"
	case 9:
		return "$$ $tag$ ; DELETE $$"
	case 10:
		return "E'\\\\x41 \\' ; '"
	}
	return fmt.Sprint(rng.IntN(100000))
}

func TestCacheKeySharesConstants(t *testing.T) {
	a, ta, ok1 := cacheKey("SELECT abalance FROM pgbench_accounts WHERE aid = 12345;")
	b, _, ok2 := cacheKey("SELECT abalance FROM pgbench_accounts WHERE aid = 7;")
	if !ok1 || !ok2 || a != b {
		t.Fatalf("pgbench statements do not share a key: %v %v", ok1, ok2)
	}
	if ta != "SELECT abalance FROM pgbench_accounts WHERE aid = 12345" {
		t.Fatalf("text = %q", ta)
	}
	for _, pair := range [][2]string{
		{"SELECT * FROM a WHERE id = 1", "SELECT * FROM b WHERE id = 1"},
		{"SELECT * FROM customers WHERE id = 1", "SELECT * FROM Customers WHERE id = 1"},
		{"SELECT 1::float(0)", "SELECT 1::float(5)"},
		{"SELECT f(1)", "SELECT f(2)"},
		{"SELECT 1 = 1", "SELECT 1 = '1'"},
	} {
		a, _, _ := cacheKey(pair[0])
		b, _, _ := cacheKey(pair[1])
		if a == b {
			t.Errorf("%q and %q share a key", pair[0], pair[1])
		}
	}
}

// TestCacheKeyParses lists statements the cache never keys: they always
// take the full parse.
func TestCacheKeyParses(t *testing.T) {
	for _, sql := range []string{
		"",
		"SELECT 'unterminated",
		"SELECT 1 = 1; SELECT 2 = 2",
		"SELECT 1 = 1;;",
		"/* x */ SELECT 1 = 1",
		"SELECT 1 = 1 -- x",
		"SELECT U&'\\0061' = 'a'",
		"EXPLAIN ANALYZE DELETE FROM customers WHERE id = 1",
		"COPY customers TO '/tmp/x'",
		"SET search_path = 'evil'",
		"DO $$BEGIN DELETE FROM customers; END$$",
		"PREPARE p AS DELETE FROM customers WHERE id = 1",
	} {
		if _, _, ok := cacheKey(sql); ok {
			t.Errorf("cacheKey(%q) keyed a statement that must be parsed", sql)
		}
	}
}

// TestScanTokenDecodes checks the key's reading of the lexer output
// against pg_query.Scan's own decoding.
func TestScanTokenDecodes(t *testing.T) {
	sql := "SELECT abalance, 'x' FROM pgbench_accounts WHERE aid >= 12345.5;"
	res, err := pg_query.Scan(sql)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := parser.ScanToProtobuf(sql)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(pb) > 0 {
		num, typ, l := protowire.ConsumeTag(pb)
		pb = pb[l:]
		if num != 2 || typ != protowire.BytesType {
			pb = pb[protowire.ConsumeFieldValue(num, typ, pb):]
			continue
		}
		msg, l := protowire.ConsumeBytes(pb)
		pb = pb[l:]
		start, end, tok, ok := scanToken(msg)
		if !ok {
			t.Fatal("undecodable token")
		}
		got = append(got, fmt.Sprintf("%d:%d:%d", start, end, tok))
	}
	var want []string
	for _, tk := range res.Tokens {
		want = append(want, fmt.Sprintf("%d:%d:%d", tk.Start, tk.End, tk.Token))
	}
	if !reflect.DeepEqual(got, want) || len(want) != 11 {
		t.Fatalf("decoded %v, pg_query.Scan %v", got, want)
	}
}

func BenchmarkClassifyCached(b *testing.B) {
	c := newClassCache()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = c.classify(fmt.Sprintf("SELECT abalance FROM pgbench_accounts WHERE aid = %d;", i%100000))
	}
}
