package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/connectors/postgres"
)

// bump is an approved write: it counts its runs in hits.
var bump = sqlOp(`UPDATE promo SET hits = hits + 1 WHERE tier = $1`, "a")

// hits returns the sum of hits and the number of tier-a rows.
func (e *previewEnv) hits(t *testing.T) (sum, tierA int) {
	t.Helper()
	if err := e.obs.QueryRow(context.Background(), `SELECT coalesce(sum(hits), 0), count(*) FILTER (WHERE tier = 'a') FROM promo`).Scan(&sum, &tierA); err != nil {
		t.Fatal(err)
	}
	return sum, tierA
}

func (e *previewEnv) addTierA(t *testing.T, n int) {
	t.Helper()
	if _, err := e.obs.Exec(context.Background(), `INSERT INTO promo (tier) SELECT 'a' FROM generate_series(1, $1)`, n); err != nil {
		t.Fatal(err)
	}
}

// TestMatchedRunExactlyOnce: the approved write runs once when the data is
// as previewed, and answers like Execute.
func TestMatchedRunExactlyOnce(t *testing.T) {
	e := newPreviewEnv(t, postgres.Config{StatementTimeout: 10 * time.Second})
	ctx := context.Background()
	p, err := e.c.Preview(ctx, bump, 0)
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.c.ExecuteExpecting(ctx, bump, broker.Expectation{RowsAffected: p.RowsAffected})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"rows":[],"row_count":3,"truncated":false}`; string(out.Value) != want {
		t.Errorf("output %s, want %s", out.Value, want)
	}
	if sum, _ := e.hits(t); sum != 3 {
		t.Errorf("hits = %d, want 3: each of the 3 rows changed once", sum)
	}
	e.assertClean(t)

	// A RETURNING statement returns its rows, capped like Execute.
	ret := broker.Operation{SQL: &broker.SQLOperation{Statement: `UPDATE promo SET hits = hits + 1 WHERE tier = 'b' RETURNING code`, MaxRows: 1}}
	out, err = e.c.ExecuteExpecting(ctx, ret, broker.Expectation{RowsAffected: 2})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"rows":[{"code":"B1"}],"row_count":1,"truncated":true}`; string(out.Value) != want && string(out.Value) != `{"rows":[{"code":"B2"}],"row_count":1,"truncated":true}` {
		t.Errorf("output %s, want %s", out.Value, want)
	}
	if sum, _ := e.hits(t); sum != 5 {
		t.Errorf("hits = %d, want 5", sum)
	}
}

// TestMatchedRunStale: rows added (or removed) between the preview and the
// run make the run roll back with approval_stale; nothing changes.
func TestMatchedRunStale(t *testing.T) {
	e := newPreviewEnv(t, postgres.Config{})
	ctx := context.Background()
	p, err := e.c.Preview(ctx, bump, 0)
	if err != nil || p.RowsAffected != 3 {
		t.Fatalf("preview = %+v, %v", p, err)
	}
	e.addTierA(t, 1)
	before := e.snapshot(t)
	_, err = e.c.ExecuteExpecting(ctx, bump, broker.Expectation{RowsAffected: p.RowsAffected})
	var be *broker.Error
	if !errors.As(err, &be) || be.Code != broker.CodeApprovalStale || !errors.Is(err, broker.ErrApprovalStale) {
		t.Fatalf("err = %v, want approval_stale", err)
	}
	if want := "the data changed since it was approved: 3 rows previewed, 4 now; nothing was changed; ask again"; be.Message != want {
		t.Errorf("message %q, want %q", be.Message, want)
	}
	if sum, n := e.hits(t); sum != 0 || n != 4 {
		t.Errorf("hits = %d over %d rows, want 0: the stale run changed data", sum, n)
	}
	if e.snapshot(t) != before {
		t.Error("the table changed")
	}
	e.assertClean(t)

	// Fewer rows are stale too.
	if _, err := e.obs.Exec(ctx, `DELETE FROM promo WHERE tier = 'a'`); err != nil {
		t.Fatal(err)
	}
	_, err = e.c.ExecuteExpecting(ctx, bump, broker.Expectation{RowsAffected: 3})
	if broker.CodeOf(err) != broker.CodeApprovalStale || err.Error() != "approval_stale: the data changed since it was approved: 3 rows previewed, 0 now; nothing was changed; ask again" {
		t.Errorf("err = %v", err)
	}
	e.assertClean(t)
}

func TestMatchedRunTolerance(t *testing.T) {
	e := newPreviewEnv(t, postgres.Config{})
	ctx := context.Background()
	// 3 previewed, 4 now: one row of slack lets it run.
	e.addTierA(t, 1)
	if _, err := e.c.ExecuteExpecting(ctx, bump, broker.Expectation{RowsAffected: 3, Tolerance: broker.Tolerance{Rows: 1}}); err != nil {
		t.Fatalf("within tolerance: %v", err)
	}
	if sum, _ := e.hits(t); sum != 4 {
		t.Errorf("hits = %d, want 4", sum)
	}
	// 4 previewed, 10 now: 100% allows 4 more, not 6.
	e.addTierA(t, 6)
	_, err := e.c.ExecuteExpecting(ctx, bump, broker.Expectation{RowsAffected: 4, Tolerance: broker.Tolerance{Rows: 1, Percent: 100}})
	if broker.CodeOf(err) != broker.CodeApprovalStale {
		t.Fatalf("beyond tolerance: err = %v", err)
	}
	if sum, _ := e.hits(t); sum != 4 {
		t.Errorf("hits = %d, want 4: the refused run changed data", sum)
	}
	if _, err := e.c.ExecuteExpecting(ctx, bump, broker.Expectation{RowsAffected: 5, Tolerance: broker.Tolerance{Percent: 100}}); err != nil {
		t.Fatalf("within percent tolerance: %v", err)
	}
	e.assertClean(t)
}

func TestMatchedRunRefusals(t *testing.T) {
	e := newPreviewEnv(t, postgres.Config{})
	ctx := context.Background()
	before := e.snapshot(t)
	for name, tc := range map[string]struct {
		op   broker.Operation
		want broker.Expectation
		code broker.Code
	}{
		"no previewed count": {bump, broker.Expectation{RowsAffected: -1}, broker.CodeInvalidRequest},
		"not sql":            {broker.Operation{HTTP: &broker.HTTPOperation{Method: "GET", Path: "/"}}, broker.Expectation{}, broker.CodeInvalidRequest},
		"failing statement":  {sqlOp(`UPDATE promo SET code = 'B1' WHERE tier = 'a'`), broker.Expectation{RowsAffected: 3}, broker.CodeTargetError},
	} {
		_, err := e.c.ExecuteExpecting(ctx, tc.op, tc.want)
		if broker.CodeOf(err) != tc.code {
			t.Errorf("%s: err = %v, want %s", name, err, tc.code)
		}
	}
	if e.snapshot(t) != before {
		t.Error("the table changed")
	}
	e.assertClean(t)
}
