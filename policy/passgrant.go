package policy

import (
	"slices"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
)

// PassAccess is what a node's passthrough entry for a target lets its
// sessions do, as the database lock (the per-grant roles of
// connectors/pgroles) must grant it.
type PassAccess struct {
	// Statements are the allowed statement classes, sorted.
	Statements []string
	// Tables are the table globs, lower case; nil means any table.
	Tables []string
	// Role is the operator-declared login, nil when toolgate provisions one.
	Role *config.PassthroughRole
}

// PassthroughAccess returns the caller's node's passthrough entry for a
// target; false when the node has none.
func (e *Engine) PassthroughAccess(c broker.Caller, target string) (PassAccess, bool) {
	pp := e.passFor(c, target)
	if pp == nil {
		return PassAccess{}, false
	}
	a := PassAccess{Statements: sortedSet(pp.statements), Role: pp.role}
	if len(pp.tables) > 0 {
		a.Tables = slices.Clone(pp.tables)
	}
	return a, true
}
