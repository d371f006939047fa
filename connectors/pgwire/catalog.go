package pgwire

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// catalog resolves table OIDs to names over its own connection to the
// target, and caches them.
type catalog struct {
	up     *pgconn.Config
	mu     sync.Mutex
	conn   *pgconn.PgConn
	tables map[uint32]*tableInfo
}

type tableInfo struct {
	name string
	cols map[uint16]string
	// parents are the names of the tables it inherits from or is a
	// partition of, nearest first: their columns' mask rules apply to it.
	parents []string
	// sources, for a view or materialized view, are the masking keys of
	// every column of every relation it reads, through other views and
	// parents: the catalog cannot tell which of its columns comes from
	// which, so each of its columns takes the first rule among them.
	sources []string
}

const catalogSQL = `SELECT n.nspname, c.relname, a.attnum::text, a.attname
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
WHERE c.oid = $1::oid`

// parentsSQL lists the ancestors of a partition or an inheritance child,
// nearest first.
const parentsSQL = `WITH RECURSIVE up(oid, depth) AS (
  SELECT i.inhparent, 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = $1::oid
  UNION ALL
  SELECT i.inhparent, u.depth + 1 FROM pg_catalog.pg_inherits i JOIN up u ON i.inhrelid = u.oid
)
SELECT n.nspname, c.relname FROM up JOIN pg_catalog.pg_class c ON c.oid = up.oid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ORDER BY up.depth`

// sourcesSQL lists every column of every relation a view or materialized
// view reads (its SELECT rule's dependencies), through other views and
// inheritance parents; nothing for other relations.
const sourcesSQL = `WITH RECURSIVE src(oid) AS (
  SELECT c.oid FROM pg_catalog.pg_class c WHERE c.oid = $1::oid AND c.relkind IN ('v', 'm')
  UNION
  SELECT e.parent FROM src JOIN (
    SELECT r.ev_class AS child, d.refobjid AS parent FROM pg_catalog.pg_rewrite r
    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
      AND d.refclassid = 'pg_catalog.pg_class'::regclass
    WHERE r.ev_type = '1'
    UNION ALL
    SELECT i.inhrelid, i.inhparent FROM pg_catalog.pg_inherits i
  ) e ON e.child = src.oid
)
SELECT n.nspname, c.relname, a.attname FROM src
JOIN pg_catalog.pg_class c ON c.oid = src.oid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE src.oid <> $1::oid
ORDER BY 1, 2, a.attnum`

// keys are a column's masking keys: its own, then the same column of each
// parent (a partition's rows are its parent's), then a view's sources.
func (t *tableInfo) keys(col string) []string {
	out := []string{t.name + "." + col}
	for _, p := range t.parents {
		out = append(out, p+"."+col)
	}
	return append(out, t.sources...)
}

// column returns the masking keys of a column: "table.column"
// ("schema.table.column" outside public), then its parents' (tableInfo.keys).
func (c *catalog) column(ctx context.Context, oid uint32, att uint16) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tables[oid]
	if t == nil || t.cols[att] == "" {
		var err error
		if t, err = c.load(ctx, oid); err != nil {
			return nil, err
		}
	}
	col, ok := t.cols[att]
	if !ok {
		return nil, fmt.Errorf("table %d has no column %d", oid, att)
	}
	return t.keys(col), nil
}

// tableColumns returns the masking keys of every column of a table, named
// as a statement named it, its parents' included.
func (c *catalog) tableColumns(ctx context.Context, name string) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res := c.conn.ExecParams(ctx, "SELECT $1::regclass::oid::text", [][]byte{[]byte(name)}, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 {
		return nil, fmt.Errorf("table %s not found", name)
	}
	oid, err := strconv.ParseUint(string(res.Rows[0][0]), 10, 32)
	if err != nil {
		return nil, err
	}
	t, err := c.load(ctx, uint32(oid))
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(t.cols)*(1+len(t.parents)))
	for _, col := range t.cols {
		keys = append(keys, t.keys(col)...)
	}
	return keys, nil
}

// connect opens the catalog connection; c.mu is held.
func (c *catalog) connect(ctx context.Context) error {
	if c.conn != nil && !c.conn.IsClosed() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, c.up)
	if err != nil {
		return err
	}
	c.conn = conn
	return nil
}

// load reads one table's name and columns; c.mu is held.
func (c *catalog) load(ctx context.Context, oid uint32) (*tableInfo, error) {
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res := c.conn.ExecParams(ctx, catalogSQL, [][]byte{[]byte(strconv.FormatUint(uint64(oid), 10))}, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, res.Err
	}
	t := &tableInfo{cols: map[uint16]string{}}
	for _, row := range res.Rows {
		t.name = tableName(string(row[0]), string(row[1]))
		n, err := strconv.Atoi(string(row[2]))
		if err != nil {
			continue
		}
		t.cols[uint16(n)] = string(row[3])
	}
	res = c.conn.ExecParams(ctx, parentsSQL, [][]byte{[]byte(strconv.FormatUint(uint64(oid), 10))}, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, res.Err
	}
	for _, row := range res.Rows {
		t.parents = append(t.parents, tableName(string(row[0]), string(row[1])))
	}
	res = c.conn.ExecParams(ctx, sourcesSQL, [][]byte{[]byte(strconv.FormatUint(uint64(oid), 10))}, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, res.Err
	}
	for _, row := range res.Rows {
		t.sources = append(t.sources, tableName(string(row[0]), string(row[1]))+"."+string(row[2]))
	}
	c.tables[oid] = t
	return t, nil
}

// tableName is a table's name in masking keys: bare in schema public.
func tableName(schema, rel string) string {
	if schema == "public" {
		return rel
	}
	return schema + "." + rel
}

func (c *catalog) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = c.conn.Close(ctx)
		cancel()
		c.conn = nil
	}
}
