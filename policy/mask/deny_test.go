package mask

import (
	"testing"

	"github.com/toolgate/toolgate/broker"
)

// TestDenyActsAsDropOutsideTheDatabase: deny removes a result member like
// drop, and a passthrough cell that still reaches the proxy becomes NULL.
func TestDenyActsAsDropOutsideTheDatabase(t *testing.T) {
	m, err := New(Config{Targets: map[string]TargetConfig{"crm": {Rules: map[string]string{"customers.card_number": ActionDeny}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := maskResult(t, m, &broker.Tool{Name: "t", Mask: map[string]string{"rows.#.card": ActionDeny}},
		`{"rows":[{"id":1,"card":"4111111111111111"},{"id":2,"card":{"n":1}}]}`)
	if got != `{"rows":[{"id":1},{"id":2}]}` {
		t.Errorf("deny in a result = %s", got)
	}
	cell, changed := m.MaskCell("crm", "customers.card_number", []byte("4111111111111111"))
	if cell != nil || !changed {
		t.Errorf("deny in a passthrough cell = %q, %v", cell, changed)
	}
	if err := ValidateRules(map[string]string{"a.b": ActionDeny}); err != nil {
		t.Errorf("deny is not a valid action: %v", err)
	}
}
