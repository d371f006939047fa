package db_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/toolgate/toolgate/internal/db"
	"github.com/toolgate/toolgate/internal/db/dbtest"
)

// readOnlySuite: OpenReadOnly reads a migrated store, refuses every write,
// and refuses a store that lacks the schema.
func readOnlySuite(t *testing.T, cfg db.Config) {
	ctx := context.Background()
	if _, err := db.OpenReadOnly(ctx, cfg, nil); err == nil || !strings.Contains(err.Error(), "schema") {
		t.Fatalf("a store without the schema: %v, want a schema refusal", err)
	}
	w, err := db.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"CREATE TABLE probe (x INTEGER)", "INSERT INTO probe (x) VALUES (1)"} {
		if _, err := w.SQL().ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	r, err := db.OpenReadOnly(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var n int
	if err := r.SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM probe").Scan(&n); err != nil || n != 1 {
		t.Fatalf("read: %d, %v", n, err)
	}
	for _, q := range []string{
		"DELETE FROM probe",
		"CREATE TABLE mine (x INTEGER)",
		"DROP TABLE probe",
	} {
		if _, err := r.SQL().ExecContext(ctx, q); err == nil {
			t.Errorf("%s ran on a read-only store", q)
		}
	}
	if err := r.SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM probe").Scan(&n); err != nil || n != 1 {
		t.Fatalf("after the refused writes: %d rows, %v", n, err)
	}
}

func TestOpenReadOnlySQLite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tg.db")
	if _, err := db.OpenReadOnly(context.Background(), db.Config{Path: p}, nil); err == nil {
		t.Fatal("a missing store opened")
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("opening a missing store read-only created it: %v", err)
	}
	// An empty file is a store without the schema.
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	readOnlySuite(t, db.Config{Path: p})
}

func TestOpenReadOnlyPostgres(t *testing.T) {
	readOnlySuite(t, db.Config{Driver: "postgres", DSN: dbtest.Postgres(t)})
}
