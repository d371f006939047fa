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
}

const catalogSQL = `SELECT n.nspname, c.relname, a.attnum::text, a.attname
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
WHERE c.oid = $1::oid`

// column returns "table.column" ("schema.table.column" outside public).
func (c *catalog) column(ctx context.Context, oid uint32, att uint16) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tables[oid]
	if t == nil || t.cols[att] == "" {
		var err error
		if t, err = c.load(ctx, oid); err != nil {
			return "", err
		}
	}
	col, ok := t.cols[att]
	if !ok {
		return "", fmt.Errorf("table %d has no column %d", oid, att)
	}
	return t.name + "." + col, nil
}

// tableColumns returns the masking keys of every column of a table, named
// as a statement named it.
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
	keys := make([]string, 0, len(t.cols))
	for _, col := range t.cols {
		keys = append(keys, t.name+"."+col)
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
		schema, rel := string(row[0]), string(row[1])
		t.name = rel
		if schema != "public" {
			t.name = schema + "." + rel
		}
		n, err := strconv.Atoi(string(row[2]))
		if err != nil {
			continue
		}
		t.cols[uint16(n)] = string(row[3])
	}
	c.tables[oid] = t
	return t, nil
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
