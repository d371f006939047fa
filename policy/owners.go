package policy

import "slices"

// Owners returns the owners graph declares (graphs.<g>.owners) in normal
// form, nil for an unknown graph or one without owners. The principals
// service suspends a graph whose every owner is disabled.
func (e *Engine) Owners(graph string) []string {
	gp := e.graphs[graph]
	if gp == nil {
		return nil
	}
	return slices.Clone(gp.owners)
}
