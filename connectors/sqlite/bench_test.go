package sqlite_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/connectors/sqlite"
	"github.com/toolgate/toolgate/internal/connectortest"
)

// BenchmarkExecute measures one tool call's SQL through the connector
// against the same query straight on database/sql.
func BenchmarkExecute(b *testing.B) {
	c, err := sqlite.New(sqlite.Config{Name: "demo", Path: seeded(b, connectortest.Seed), ReadOnly: true}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	const stmt = `SELECT id, name, email FROM customers WHERE id = $1`
	op := broker.Operation{SQL: &broker.SQLOperation{Statement: stmt, Args: []any{json.Number("1")}}}
	b.Run("connector", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Execute(context.Background(), op); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("bare_db", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var id int64
			var name, email string
			for pb.Next() {
				if err := c.DB().QueryRow(stmt, 1).Scan(&id, &name, &email); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
