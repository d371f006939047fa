package postgres_test

import (
	"testing"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/connectors/postgres"
)

// TestPlanPreviewRewrites: RETURNING * is added with the parser, kept when
// the statement has its own list, and added to MERGE only from
// PostgreSQL 17.
func TestPlanPreviewRewrites(t *testing.T) {
	for _, tc := range []struct {
		stmt  string
		major int
		text  string
		image string
		read  bool
	}{
		{`UPDATE promo SET tier = $2 WHERE tier = $1`, 15, `UPDATE promo SET tier = $2 WHERE tier = $1 RETURNING *`, broker.ImageAfter, false},
		{`insert into promo (tier) values ($1) on conflict (code) do update set hits = promo.hits + 1`, 15,
			`INSERT INTO promo (tier) VALUES ($1) ON CONFLICT (code) DO UPDATE SET hits = promo.hits + 1 RETURNING *`, broker.ImageAfter, false},
		{`DELETE FROM promo /* why */ WHERE id = $1;`, 15, `DELETE FROM promo WHERE id = $1 RETURNING *`, broker.ImageBefore, false},
		{`WITH old AS (SELECT id FROM promo WHERE hits = 0) DELETE FROM promo WHERE id IN (SELECT id FROM old)`, 15,
			`WITH old AS (SELECT id FROM promo WHERE hits = 0) DELETE FROM promo WHERE id IN (SELECT id FROM old) RETURNING *`, broker.ImageBefore, false},
		{`UPDATE promo SET hits = 0 RETURNING id, 'x' AS y`, 15, `UPDATE promo SET hits = 0 RETURNING id, 'x' AS y`, broker.ImageAfter, false},
		{`MERGE INTO promo p USING src s ON p.id = s.id WHEN MATCHED THEN DELETE`, 15,
			`MERGE INTO promo p USING src s ON p.id = s.id WHEN MATCHED THEN DELETE`, "", false},
		{`MERGE INTO promo p USING src s ON p.id = s.id WHEN MATCHED THEN DELETE`, 17,
			`MERGE INTO promo p USING src s ON p.id = s.id WHEN MATCHED THEN DELETE RETURNING *`, broker.ImageAfter, false},
		{`SELECT id FROM promo WHERE tier = $1`, 15, `SELECT id FROM promo WHERE tier = $1`, broker.ImageBefore, true},
	} {
		text, image, read, err := postgres.PlanPreview(tc.stmt, tc.major)
		if err != nil {
			t.Errorf("%s: %v", tc.stmt, err)
			continue
		}
		if text != tc.text || image != tc.image || read != tc.read {
			t.Errorf("%s (PostgreSQL %d):\n got %q image %q read %v\nwant %q image %q read %v", tc.stmt, tc.major, text, image, read, tc.text, tc.image, tc.read)
		}
	}
}
