package postgres_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/connectors/postgres"
	"github.com/toolgate/toolgate/internal/connectortest"
)

// BenchmarkExecute measures one tool call's SQL through the connector
// (read-only transaction with statement timeout, SQLCommenter comment,
// ordered JSON) against the same query straight on the pool.
func BenchmarkExecute(b *testing.B) {
	dsn := seeded(b, connectortest.Seed)
	c, err := postgres.New(context.Background(), postgres.Config{Name: "crm", DSN: dsn, ReadOnly: true, StatementTimeout: 5 * time.Second}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	const stmt = `SELECT id, name, email FROM customers WHERE id = $1`
	for _, tc := range []struct {
		name string
		op   broker.Operation
	}{
		{"connector", broker.Operation{
			SQL:     &broker.SQLOperation{Statement: stmt, Args: []any{json.Number("1")}},
			Comment: map[string]string{"graph": "support-bot", "node": "triage", "run": "run-1"},
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Execute(context.Background(), tc.op); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	b.Run("bare_pool", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				rows, err := c.Pool().Query(context.Background(), stmt, 1)
				if err != nil {
					b.Error(err)
					return
				}
				for rows.Next() {
					_, _ = rows.Values()
				}
				rows.Close()
			}
		})
	})
}
