package pgroles

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// priv is one privilege a role holds on a relation ('r'), on one of its
// columns ('c') or on a sequence ('s').
type priv struct {
	kind        byte
	schema, rel string
	col         string
	name        string // SELECT, INSERT, UPDATE, DELETE, USAGE
}

// object is the relation or sequence a privilege is on.
type object struct {
	seq         bool
	schema, rel string
}

func (p priv) object() object { return object{seq: p.kind == 's', schema: p.schema, rel: p.rel} }

func (o object) String() string { return pgx.Identifier{o.schema, o.rel}.Sanitize() }

// relation is a table, view or foreign table of the catalog.
type relation struct {
	oid         uint32
	schema, rel string
	kind        string
}

// relationsSQL lists what a grant's globs may name: every table, view,
// materialized view and foreign table outside the system schemas.
const relationsSQL = `SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'`

// matches reports whether a grant's globs name the relation: a glob with a
// dot matches schema.name, one without matches a name in schema public,
// as passthrough policy reads a bare table name. Nil globs match all.
// Names are matched as the catalog spells them, case and all, as policy
// matches the names the parser gives ("Notes" is not notes).
func matches(globs []string, schema, rel string) bool {
	if globs == nil {
		return true
	}
	full := schema + "." + rel
	for _, g := range globs {
		if ok, _ := path.Match(g, full); ok {
			return true
		}
		if !strings.Contains(g, ".") && schema == "public" {
			if ok, _ := path.Match(g, rel); ok {
				return true
			}
		}
	}
	return false
}

// querier is a transaction or a connection.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// texts runs a query of one text column and returns its values.
func texts(ctx context.Context, q querier, sql string, args ...any) ([]string, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// splitColumn splits a mask key into schema, table and column.
func splitColumn(key string) (schema, table, col string, ok bool) {
	parts := strings.Split(key, ".")
	switch {
	case len(parts) == 2 && parts[0] != "" && parts[1] != "":
		return "public", parts[0], parts[1], true
	case len(parts) == 3 && parts[0] != "" && parts[1] != "" && parts[2] != "":
		return parts[0], parts[1], parts[2], true
	}
	return "", "", "", false
}

// desired computes the privileges a spec grants on the current catalog,
// and the schemas the role needs USAGE on.
func desired(ctx context.Context, tx pgx.Tx, sp spec) (map[priv]bool, []string, error) {
	rows, err := tx.Query(ctx, relationsSQL)
	if err != nil {
		return nil, nil, err
	}
	rels, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (relation, error) {
		var r relation
		err := row.Scan(&r.oid, &r.schema, &r.rel, &r.kind)
		return r, err
	})
	if err != nil {
		return nil, nil, err
	}
	denied := map[object]map[string]bool{}
	for _, d := range sp.deny {
		s, t, c, _ := splitColumn(d)
		o := object{schema: s, rel: t}
		if denied[o] == nil {
			denied[o] = map[string]bool{}
		}
		denied[o][c] = true
	}
	if err := denyInherited(ctx, tx, rels, denied); err != nil {
		return nil, nil, err
	}
	readers, err := denyReaders(ctx, tx, rels, denied)
	if err != nil {
		return nil, nil, err
	}
	want := map[priv]bool{}
	schemas := map[string]bool{}
	var writable []uint32
	for _, r := range rels {
		if !matches(sp.access.Tables, r.schema, r.rel) || readers[r.oid] {
			continue
		}
		var names []string
		if sp.access.Read {
			names = append(names, "SELECT")
		}
		if sp.access.Write && r.kind != "m" {
			names = append(names, "INSERT", "UPDATE", "DELETE")
			writable = append(writable, r.oid)
		}
		if len(names) == 0 {
			continue
		}
		schemas[r.schema] = true
		if err := grantRelation(ctx, tx, want, r, names, denied[object{schema: r.schema, rel: r.rel}]); err != nil {
			return nil, nil, err
		}
	}
	if err := grantSequences(ctx, tx, want, writable); err != nil {
		return nil, nil, err
	}
	out := make([]string, 0, len(schemas))
	for s := range schemas {
		out = append(out, s)
	}
	slices.Sort(out)
	return want, out, nil
}

// inheritedSQL lists the relations that share rows with relation $1
// through inheritance or partitioning: its descendants, whose rows it
// shows and which hold its columns, and its ancestors, which show its rows.
const inheritedSQL = `WITH RECURSIVE down(oid) AS (
  SELECT $1::oid
  UNION
  SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN down d ON i.inhparent = d.oid
), up(oid) AS (
  SELECT $1::oid
  UNION
  SELECT i.inhparent FROM pg_catalog.pg_inherits i JOIN up u ON i.inhrelid = u.oid
)
SELECT oid FROM down UNION SELECT oid FROM up`

// denyInherited extends denied to the partitions and inheritance children
// of a relation with a deny column, and to its parents: the same column
// is read through each of them (SELECT card_number FROM customers_2024).
func denyInherited(ctx context.Context, tx pgx.Tx, rels []relation, denied map[object]map[string]bool) error {
	byOID := make(map[uint32]relation, len(rels))
	var roots []relation
	for _, r := range rels {
		byOID[r.oid] = r
		if denied[object{schema: r.schema, rel: r.rel}] != nil {
			roots = append(roots, r)
		}
	}
	for _, root := range roots {
		cols := denied[object{schema: root.schema, rel: root.rel}]
		rows, err := tx.Query(ctx, inheritedSQL, root.oid)
		if err != nil {
			return err
		}
		related, err := pgx.CollectRows(rows, pgx.RowTo[uint32])
		if err != nil {
			return err
		}
		for _, oid := range related {
			r, ok := byOID[oid]
			if !ok {
				continue
			}
			o := object{schema: r.schema, rel: r.rel}
			if denied[o] == nil {
				denied[o] = map[string]bool{}
			}
			for c := range cols {
				denied[o][c] = true
			}
		}
	}
	return nil
}

// denyReadersSQL lists the views and materialized views that read one of
// the relations $1, directly or through other views (their rewrite rules
// depend on it; a view's rule also depends on the view itself).
const denyReadersSQL = `WITH RECURSIVE readers(oid) AS (
  SELECT r.ev_class FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
  WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
    AND d.refobjid = ANY($1::oid[]) AND r.ev_class <> d.refobjid
  UNION
  SELECT r.ev_class FROM readers v JOIN pg_catalog.pg_depend d ON d.refobjid = v.oid
    JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
  WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
    AND r.ev_class <> d.refobjid
)
SELECT oid FROM readers`

// denyReaders returns the views and materialized views that read a
// relation with a deny column. They run with their owner's privileges, so
// a role granted one would read the column through it; the catalog does
// not say which of a view's columns come from the denied one (a whole-row
// reference depends on the table alone), so none of them is granted.
func denyReaders(ctx context.Context, tx pgx.Tx, rels []relation, denied map[object]map[string]bool) (map[uint32]bool, error) {
	var oids []uint32
	for _, r := range rels {
		if denied[object{schema: r.schema, rel: r.rel}] != nil {
			oids = append(oids, r.oid)
		}
	}
	if len(oids) == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, denyReadersSQL, oids)
	if err != nil {
		return nil, err
	}
	list, err := pgx.CollectRows(rows, pgx.RowTo[uint32])
	if err != nil {
		return nil, err
	}
	out := make(map[uint32]bool, len(list))
	for _, o := range list {
		out[o] = true
	}
	return out, nil
}

// grantRelation adds a relation's privileges to want: table-wide, or, when
// the relation has denied columns, column by column for every other column
// (DELETE has no column form and stays table-wide).
func grantRelation(ctx context.Context, tx pgx.Tx, want map[priv]bool, r relation, names []string, deny map[string]bool) error {
	if len(deny) == 0 {
		for _, n := range names {
			want[priv{kind: 'r', schema: r.schema, rel: r.rel, name: n}] = true
		}
		return nil
	}
	cols, err := texts(ctx, tx, `SELECT attname::text FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, r.oid)
	if err != nil {
		return err
	}
	for _, n := range names {
		if n == "DELETE" {
			want[priv{kind: 'r', schema: r.schema, rel: r.rel, name: n}] = true
			continue
		}
		for _, c := range cols {
			if !deny[c] {
				want[priv{kind: 'c', schema: r.schema, rel: r.rel, col: c, name: n}] = true
			}
		}
	}
	return nil
}

// grantSequences adds USAGE on the sequences that serial columns of the
// writable relations draw from (an INSERT calls their nextval).
func grantSequences(ctx context.Context, tx pgx.Tx, want map[priv]bool, writable []uint32) error {
	if len(writable) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT n.nspname::text, s.relname::text
FROM pg_catalog.pg_depend d
JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
  AND d.deptype = 'a' AND d.refobjid = ANY($1::oid[])`, writable)
	if err != nil {
		return err
	}
	seqs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (object, error) {
		var o object
		err := r.Scan(&o.schema, &o.rel)
		return o, err
	})
	if err != nil {
		return err
	}
	for _, s := range seqs {
		want[priv{kind: 's', schema: s.schema, rel: s.rel, name: "USAGE"}] = true
	}
	return nil
}

// currentSQL lists the privileges granted to a role on the relations,
// columns and sequences of the current database.
const currentSQL = `SELECT CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END, n.nspname::text, c.relname::text, '', a.privilege_type
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace, LATERAL pg_catalog.aclexplode(c.relacl) a
WHERE a.grantee = $1
UNION ALL
SELECT 'c', n.nspname::text, c.relname::text, t.attname::text, a.privilege_type
FROM pg_catalog.pg_attribute t JOIN pg_catalog.pg_class c ON c.oid = t.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace,
     LATERAL pg_catalog.aclexplode(t.attacl) a
WHERE a.grantee = $1`

func current(ctx context.Context, tx pgx.Tx, role uint32) (map[priv]bool, error) {
	rows, err := tx.Query(ctx, currentSQL, role)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	have := map[priv]bool{}
	for rows.Next() {
		var k string
		var p priv
		if err := rows.Scan(&k, &p.schema, &p.rel, &p.col, &p.name); err != nil {
			return nil, err
		}
		p.kind = k[0]
		have[p] = true
	}
	return have, rows.Err()
}

// byObject groups privileges by what they are on.
func byObject(ps map[priv]bool) map[object][]priv {
	out := map[object][]priv{}
	for p := range ps {
		out[p.object()] = append(out[p.object()], p)
	}
	return out
}

// syncPrivileges makes the role's privileges equal want: every object whose
// privileges differ is revoked whole and granted again. It fails when the
// result still differs (the admin login lacks GRANT OPTION on something,
// or another role granted the role more).
func syncPrivileges(ctx context.Context, tx pgx.Tx, role string, oid uint32, want map[priv]bool) error {
	have, err := current(ctx, tx, oid)
	if err != nil {
		return err
	}
	if equal(have, want) {
		return nil
	}
	haveBy, wantBy := byObject(have), byObject(want)
	q := pgx.Identifier{role}.Sanitize()
	for o, ps := range haveBy {
		if !sameSet(ps, wantBy[o]) {
			if _, err := tx.Exec(ctx, "REVOKE ALL ON "+kindWord(o)+" "+o.String()+" FROM "+q); err != nil {
				return fmt.Errorf("revoke on %s: %w", o, err)
			}
		}
	}
	for o, ps := range wantBy {
		if sameSet(ps, haveBy[o]) {
			continue
		}
		if _, err := tx.Exec(ctx, "GRANT "+privList(ps)+" ON "+kindWord(o)+" "+o.String()+" TO "+q); err != nil {
			return fmt.Errorf("grant on %s: %w", o, err)
		}
	}
	if have, err = current(ctx, tx, oid); err != nil {
		return err
	}
	if !equal(have, want) {
		return fmt.Errorf("after GRANT the role's privileges differ from the grant's (%s): the admin login needs ownership of, or the privilege WITH GRANT OPTION on, each granted table, and no other role may grant to %s", diff(have, want), role)
	}
	return nil
}

func kindWord(o object) string {
	if o.seq {
		return "SEQUENCE"
	}
	return "TABLE"
}

// privList renders privileges of one object as GRANT wants them:
// "SELECT, DELETE, INSERT (a, b)".
func privList(ps []priv) string {
	cols := map[string][]string{}
	var parts []string
	for _, p := range ps {
		if p.kind == 'c' {
			cols[p.name] = append(cols[p.name], pgx.Identifier{p.col}.Sanitize())
		} else {
			parts = append(parts, p.name)
		}
	}
	for name, cs := range cols {
		slices.Sort(cs)
		parts = append(parts, name+" ("+strings.Join(cs, ", ")+")")
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

func sameSet(a, b []priv) bool {
	if len(a) != len(b) {
		return false
	}
	m := make(map[priv]bool, len(a))
	for _, p := range a {
		m[p] = true
	}
	for _, p := range b {
		if !m[p] {
			return false
		}
	}
	return true
}

func equal(a, b map[priv]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for p := range a {
		if !b[p] {
			return false
		}
	}
	return true
}

// diff describes up to three differences between have and want.
func diff(have, want map[priv]bool) string {
	var out []string
	for p := range want {
		if !have[p] {
			out = append(out, "missing "+p.String())
		}
	}
	for p := range have {
		if !want[p] {
			out = append(out, "extra "+p.String())
		}
	}
	slices.Sort(out)
	if len(out) > 3 {
		out = append(out[:3], fmt.Sprintf("and %d more", len(out)-3))
	}
	return strings.Join(out, ", ")
}

func (p priv) String() string {
	s := p.name + " ON " + p.object().String()
	if p.col != "" {
		s = p.name + " (" + pgx.Identifier{p.col}.Sanitize() + ") ON " + p.object().String()
	}
	return s
}
