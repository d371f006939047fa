package mask

import (
	"strings"
	"testing"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
)

// TestStructuredPaths: on an mcp target, mask paths are relative to a
// result's structuredContent and hold in the text twin that repeats it
// too; text blocks are left to the detectors, which mask every value.
func TestStructuredPaths(t *testing.T) {
	cfg := FromConfig(config.Config{Targets: map[string]config.Target{
		"up":  {Kind: config.KindMCP, MCP: &config.MCPTarget{URL: "http://x/mcp"}, Mask: map[string]string{"card": "last4"}},
		"api": {Kind: config.KindHTTP, HTTP: &config.HTTPTarget{BaseURL: "http://x"}, Mask: map[string]string{"card": "last4"}},
	}})
	if got := cfg.Targets["api"].Rules; len(got) != 1 || got["card"] != "last4" {
		t.Errorf("an http target's rules changed: %v", got)
	}
	m := newMasker(t, cfg)
	tool := &broker.Tool{Name: "up_get", Target: "up", Mask: StructuredPaths(map[string]string{"phone": "redact"})}
	doc := `{"content":[{"type":"text","text":{"phone":"555 0100","card":"4111111111111111"}},` +
		`{"type":"text","text":"call 555 0100, card 4111111111111111"}],` +
		`"structuredContent":{"phone":"555 0100","card":"4111111111111111"},"isError":false}`
	out, _, err := m.MaskResult(tool, []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"content":[{"type":"text","text":{"phone":"[REDACTED]","card":"************1111"}},` +
		`{"type":"text","text":"call 555 0100, card ************1111"}],` +
		`"structuredContent":{"phone":"[REDACTED]","card":"************1111"},"isError":false}`
	if string(out) != want {
		t.Errorf("masked:\n%s\nwant:\n%s", out, want)
	}
	if strings.Contains(string(out), "4111111111111111") {
		t.Error("a card is left")
	}
}
