package principals

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// reviewFixture has one of each finding: a key of a disabled owner, a key
// unused for the stale period, a key never used, a configured key without
// an owner, a graph whose only owner is disabled, a graph without owners,
// and a live grant whose minter is disabled.
func reviewFixture() ReviewInput {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	return ReviewInput{
		Now: now, Stale: 30 * day,
		Admins: []string{"user:admin@example.com"}, Auditors: []string{"key:auditor", "group:security"},
		Graphs: []ReviewGraph{
			{Name: "support-bot", Principals: []string{"key:support-bot", "workload:prod:system:serviceaccount:agents:support-bot"}, Owners: []string{"user:ana@example.com"}},
			{Name: "reporting", Principals: []string{"user:bo@example.com"}, Owners: []string{"user:Bo@Example.com", "user:cy@example.com"}},
			{Name: "legacy", Principals: []string{"key:legacy"}},
		},
		Approvers: []ApproverRole{{Principal: "group:finance", Rule: "graphs.support-bot.nodes.billing.rules[0]"}},
		Keys: []ReviewKey{
			{Name: "support-bot", Source: "api", Owner: "user:ana@example.com", CreatedBy: "user:admin@example.com", CreatedAt: now.Add(-40 * day), ExpiresAt: now.Add(50 * day), LastUsed: now.Add(-time.Hour)},
			{Name: "reporter", Source: "api", Owner: "user:bo@example.com", CreatedBy: "user:admin@example.com", CreatedAt: now.Add(-90 * day), ExpiresAt: now.Add(day), LastUsed: now.Add(-45 * day)},
			{Name: "fresh", Source: "api", Owner: "user:cy@example.com", CreatedBy: "user:admin@example.com", CreatedAt: now.Add(-2 * day), ExpiresAt: now.Add(88 * day)},
			{Name: "old", Source: "api", Owner: "user:cy@example.com", CreatedBy: "user:ana@example.com", CreatedAt: now.Add(-100 * day), ExpiresAt: now.Add(-10 * day)},
			{Name: "gone", Source: "api", Owner: "user:ana@example.com", CreatedBy: "user:admin@example.com", CreatedAt: now.Add(-5 * day), ExpiresAt: now.Add(85 * day), RevokedAt: now.Add(-day)},
			{Name: "legacy", Source: "config", LastUsed: now.Add(-3 * day)},
			{Name: "auditor", Source: "config", Owner: "user:dee@example.com", ExpiresAt: now.Add(300 * day), LastUsed: now.Add(-day)},
		},
		Grants: []ReviewGrant{
			{ID: "gr_b", Graph: "support-bot", Run: "run-7", Nodes: []string{"triage"}, MintedBy: "workload:prod:system:serviceaccount:agents:support-bot", ExpiresAt: now.Add(10 * time.Minute)},
			{ID: "gr_a", Graph: "support-bot", Run: "run-6", Nodes: []string{"triage", "refund"}, MintedBy: "user:ana@example.com", ExpiresAt: now.Add(5 * time.Minute)},
		},
		Disabled: map[string]time.Time{"user:ana@example.com": now.Add(-2 * time.Hour)},
	}
}

// TestReviewGolden: the review of the fixture, as text and as JSON.
func TestReviewGolden(t *testing.T) {
	r := Review(reviewFixture())
	var text, js bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	golden(t, "review.txt", text.Bytes())
	golden(t, "review.json", js.Bytes())
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}
