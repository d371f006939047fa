package scaffold

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ErrNoTable is returned (wrapped) for a table that does not exist.
var ErrNoTable = errors.New("no such table")

// PostgresTable reads one table (optionally schema-qualified) through
// pg_catalog: columns, types, nullability, defaults, primary key, foreign
// keys, comments, and a sample of SampleRows rows as text.
func PostgresTable(ctx context.Context, conn *pgx.Conn, name string) (Table, error) {
	var oid uint32
	var ident, comment string
	err := conn.QueryRow(ctx, `SELECT c.oid, c.oid::regclass::text, coalesce(obj_description(c.oid, 'pg_class'), '')
		FROM pg_class c WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')`, name).Scan(&oid, &ident, &comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return Table{}, fmt.Errorf("%w %q (names are case-sensitive when quoted; qualify with a schema if it is not on the search_path)", ErrNoTable, name)
	}
	if err != nil {
		return Table{}, err
	}
	t := Table{Name: name, Ident: ident, Comment: comment}
	rows, err := conn.Query(ctx, `
		SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
		       a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '',
		       coalesce(col_description(a.attrelid, a.attnum), ''),
		       coalesce((SELECT true FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary AND a.attnum = ANY(i.indkey)), false),
		       coalesce((SELECT co.confrelid::regclass::text || '.' || af.attname
		                 FROM pg_constraint co
		                 CROSS JOIN LATERAL unnest(co.conkey, co.confkey) AS k(c, f)
		                 JOIN pg_attribute af ON af.attrelid = co.confrelid AND af.attnum = k.f
		                 WHERE co.conrelid = a.attrelid AND co.contype = 'f' AND k.c = a.attnum LIMIT 1), '')
		FROM pg_attribute a
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, oid)
	if err != nil {
		return Table{}, err
	}
	for rows.Next() {
		var c Column
		if err := rows.Scan(&c.Name, &c.DBType, &c.Nullable, &c.Default, &c.Comment, &c.PK, &c.Ref); err != nil {
			rows.Close()
			return Table{}, err
		}
		c.Ident = pgx.Identifier{c.Name}.Sanitize()
		t.Columns = append(t.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return Table{}, err
	}
	t.Samples, err = samplePostgres(ctx, conn, t)
	return t, err
}

// samplePostgres reads SampleRows rows, every column cast to text.
func samplePostgres(ctx context.Context, conn *pgx.Conn, t Table) (map[string][]string, error) {
	exprs := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		exprs[i] = c.Ident + "::text"
	}
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT %s FROM %s LIMIT %d", strings.Join(exprs, ", "), t.Ident, SampleRows))
	if err != nil {
		return nil, fmt.Errorf("sample %s: %w", t.Name, err)
	}
	defer rows.Close()
	return collectSamples(rows, t.Columns)
}

// rowScanner is what pgx.Rows and *sql.Rows share.
type rowScanner interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// collectSamples reads text rows into each column's non-NULL values.
func collectSamples(rows rowScanner, cols []Column) (map[string][]string, error) {
	out := map[string][]string{}
	vals := make([]*string, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		for i, v := range vals {
			if v != nil {
				out[cols[i].Name] = append(out[cols[i].Name], *v)
			}
		}
	}
	return out, rows.Err()
}

// sqliteIdent quotes an SQLite identifier.
func sqliteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// SQLiteTable reads one table through the table_info and foreign_key_list
// pragmas, and a sample of SampleRows rows as text. SQLite keeps no
// comments.
func SQLiteTable(ctx context.Context, db *sql.DB, name string) (Table, error) {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type IN ('table', 'view') AND name = ?`, name).Scan(&n); err != nil {
		return Table{}, err
	}
	if n == 0 {
		return Table{}, fmt.Errorf("%w %q", ErrNoTable, name)
	}
	t := Table{Name: name, Ident: sqliteIdent(name)}
	refs, err := sqliteRefs(ctx, db, name)
	if err != nil {
		return Table{}, err
	}
	rows, err := db.QueryContext(ctx, `SELECT name, type, "notnull", dflt_value IS NOT NULL, pk FROM pragma_table_info(?) ORDER BY cid`, name)
	if err != nil {
		return Table{}, err
	}
	var pks int
	for rows.Next() {
		var c Column
		var notNull bool
		var pk int
		if err := rows.Scan(&c.Name, &c.DBType, &notNull, &c.Default, &pk); err != nil {
			rows.Close()
			return Table{}, err
		}
		c.Nullable, c.PK, c.Ident, c.Ref = !notNull && pk == 0, pk > 0, sqliteIdent(c.Name), refs[c.Name]
		if c.PK {
			pks++
		}
		t.Columns = append(t.Columns, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Table{}, err
	}
	// A lone INTEGER PRIMARY KEY is the rowid: SQLite fills it.
	for i, c := range t.Columns {
		if c.PK && pks == 1 && strings.EqualFold(c.DBType, "INTEGER") {
			t.Columns[i].Default = true
		}
	}
	t.Samples, err = sampleSQLite(ctx, db, t)
	return t, err
}

func sqliteRefs(ctx context.Context, db *sql.DB, table string) (map[string]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT "from", "table", coalesce("to", '') FROM pragma_foreign_key_list(?)`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	refs := map[string]string{}
	for rows.Next() {
		var from, to, col string
		if err := rows.Scan(&from, &to, &col); err != nil {
			return nil, err
		}
		refs[from] = to + "." + col
	}
	return refs, rows.Err()
}

func sampleSQLite(ctx context.Context, db *sql.DB, t Table) (map[string][]string, error) {
	exprs := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		exprs[i] = "CAST(" + c.Ident + " AS TEXT)"
	}
	rows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT %s FROM %s LIMIT %d", strings.Join(exprs, ", "), t.Ident, SampleRows))
	if err != nil {
		return nil, fmt.Errorf("sample %s: %w", t.Name, err)
	}
	defer rows.Close()
	return collectSamples(rows, t.Columns)
}
