package main

import (
	"testing"

	"github.com/toolgate/toolgate/internal/config"
)

// TestEveryKindHasAConnector keeps the connectors in step with the kinds
// config declares: a kind without a connector, or a connector for no kind,
// fails here rather than at serve.
func TestEveryKindHasAConnector(t *testing.T) {
	open := connectors()
	for _, k := range config.Kinds() {
		if open[k.Name] == nil {
			t.Errorf("kind %s has no connector", k.Name)
		}
		delete(open, k.Name)
	}
	for name := range open {
		t.Errorf("connector for %s, which is not a kind config knows", name)
	}
}
