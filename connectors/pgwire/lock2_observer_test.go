package pgwire_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// observer reads the target from the superuser's side: what the database
// itself says was written or read, whatever the proxy believed.
type observer struct {
	t      *testing.T
	conn   *pgx.Conn
	db     string
	marker string
	taken  int // snapshots taken
}

func newObserver(t *testing.T, su, db, marker string) *observer {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, su)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	// Read the statistics as they are now, not as cached at the start of
	// a transaction.
	if _, err := conn.Exec(ctx, "SET stats_fetch_consistency = none"); err != nil {
		t.Fatal(err)
	}
	return &observer{t: t, conn: conn, db: db, marker: marker}
}

// snapshotSQL is every fact a passthrough session must not change, one
// "name: value" per row. Canary rows are listed with xmin and ctid, so an
// UPDATE that writes the same value still shows; other tables' scan
// counters show a read; the rest shows objects created anywhere.
const snapshotSQL = `
SELECT 'customers: ' || string_agg(xmin::text || ctid::text || id || coalesce(name, '') || coalesce(card_number, ''), ',' ORDER BY id) FROM customers
UNION ALL SELECT 'notes: ' || string_agg(xmin::text || ctid::text || id || secret, ',' ORDER BY id) FROM notes
UNION ALL SELECT 'orders: ' || string_agg(xmin::text || ctid::text || id || customer_id || total, ',' ORDER BY id) FROM orders
UNION ALL SELECT 'leads: ' || string_agg(xmin::text || ctid::text || id || email, ',' ORDER BY id) FROM sales.leads
UNION ALL SELECT 'sequences: ' || string_agg(s.relname || '=' || pg_sequence_last_value(s.oid::regclass)::text, ',' ORDER BY s.relname) FROM pg_class s WHERE s.relkind = 'S'
UNION ALL SELECT 'relations: ' || count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname !~ '^pg_(toast|temp)'
UNION ALL SELECT 'functions: ' || count(*) FROM pg_proc
UNION ALL SELECT 'large objects: ' || count(*) FROM pg_largeobject_metadata
UNION ALL SELECT 'prepared xacts: ' || count(*) FROM pg_prepared_xacts
UNION ALL SELECT 'roles: ' || string_agg(rolname || ':' || rolcanlogin || rolsuper || coalesce(rolvaliduntil::text, ''), ',' ORDER BY rolname) FROM pg_roles
UNION ALL SELECT 'acl ' || relname || ': ' || coalesce(relacl::text, '') FROM pg_class WHERE relname IN ('customers', 'notes', 'orders', 'leads')
UNION ALL SELECT 'database settings: ' || count(*) FROM pg_db_role_setting WHERE setrole = 0`

// statsSQL reads the tables' counters. The observer's own reads of the
// canary rows are one sequential scan per table and snapshot ($1 of them
// before this one, flushed by pg_stat_force_next_flush); they are taken
// off, so what is left is what the sessions did.
const statsSQL = `SELECT 'stats ' || relname || ': ' || concat_ws('/', n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd, n_live_tup,
  CASE WHEN relname <> 'customers' THEN concat_ws('/', seq_scan - $1, idx_scan) END) FROM pg_stat_user_tables`

// snapshot waits until no passthrough backend (application_name lock2)
// is left (a backend flushes
// its statistics when it exits), then reads every fact.
func (o *observer) snapshot() map[string]string {
	o.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := o.conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'lock2'`, o.db).Scan(&n); err != nil {
			o.t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			o.t.Fatalf("%d passthrough backends did not end", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := o.conn.Exec(ctx, "SELECT pg_stat_force_next_flush()"); err != nil {
		o.t.Fatal(err)
	}
	if _, err := o.conn.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
		o.t.Fatal(err)
	}
	var facts []string
	for _, q := range []struct {
		sql  string
		args []any
	}{{statsSQL, []any{o.taken}}, {snapshotSQL, nil}} {
		rows, err := o.conn.Query(ctx, q.sql, q.args...)
		if err != nil {
			o.t.Fatal(err)
		}
		fs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			o.t.Fatal(err)
		}
		facts = append(facts, fs...)
	}
	o.taken++
	out := map[string]string{}
	for _, f := range facts {
		k, v, _ := strings.Cut(f, ": ")
		out[k] = v
	}
	files, _ := filepath.Glob(filepath.Join(o.marker, "lock2-marker*"))
	out["marker files"] = strings.Join(files, ",")
	return out
}

// changes lists the facts that differ between two snapshots.
func changes(before, after map[string]string) []string {
	var out []string
	for k, v := range after {
		if before[k] != v {
			out = append(out, fmt.Sprintf("%s: %q -> %q", k, before[k], v))
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			out = append(out, k+" disappeared")
		}
	}
	slices.Sort(out)
	return out
}

// leaks lists the canary card fragments found in what the client saw: the
// number, its reverse, its base64, or any 8 consecutive digits of either.
func leaks(out outcome) []string {
	var texts []string
	for _, r := range out.rows {
		texts = append(texts, r...)
	}
	for _, e := range out.errs {
		texts = append(texts, e.Message, e.Detail, e.Hint, e.Where)
	}
	var found []string
	for _, card := range canaryCards {
		rev := []byte(card)
		slices.Reverse(rev)
		pieces := []string{base64.StdEncoding.EncodeToString([]byte(card))}
		for _, s := range []string{card, string(rev)} {
			for i := 0; i+8 <= len(s); i++ {
				pieces = append(pieces, s[i:i+8])
			}
		}
		for _, text := range texts {
			for _, p := range pieces {
				if strings.Contains(text, p) {
					found = append(found, fmt.Sprintf("%q in %.80q", p, text))
				}
			}
		}
	}
	return found
}

// markerExists is for the positive control.
func markerExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
