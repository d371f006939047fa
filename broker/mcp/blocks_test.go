package mcp

import (
	"encoding/json"
	"testing"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

// TestBlocksResult: an upstream tool's result document reaches the client
// as its own content blocks and structured content, not as a JSON dump.
func TestBlocksResult(t *testing.T) {
	doc := json.RawMessage(`{"content":[{"type":"text","text":"card ************1111"},` +
		`{"type":"image","data":"aGk=","mimeType":"image/png"},` +
		`{"type":"resource","resource":{"uri":"file:///a.txt","text":"hello","mimeType":"text/plain"}},` +
		`{"type":"hologram","beam":1}],"structuredContent":{"card":"************1111"},"isError":false}`)
	out, ok := blocksResult(doc)
	if !ok || len(out.Content) != 4 {
		t.Fatalf("blocksResult = %+v, %v", out, ok)
	}
	if tc, ok := out.Content[0].(mcpgo.TextContent); !ok || tc.Text != "card ************1111" {
		t.Errorf("block 0 = %#v", out.Content[0])
	}
	if ic, ok := out.Content[1].(mcpgo.ImageContent); !ok || ic.Data != "aGk=" || ic.MIMEType != "image/png" {
		t.Errorf("block 1 = %#v", out.Content[1])
	}
	if _, ok := out.Content[2].(mcpgo.EmbeddedResource); !ok {
		t.Errorf("block 2 = %#v", out.Content[2])
	}
	if tc, ok := out.Content[3].(mcpgo.TextContent); !ok || tc.Text != `{"type":"hologram","beam":1}` {
		t.Errorf("a block mcp-go cannot represent = %#v", out.Content[3])
	}
	if sc, _ := out.StructuredContent.(json.RawMessage); string(sc) != `{"card":"************1111"}` || out.IsError {
		t.Errorf("structuredContent = %s, isError %v", sc, out.IsError)
	}
	twin, _ := blocksResult(json.RawMessage(`{"content":[{"type":"text","text":{"phone":"[REDACTED]"}}],"structuredContent":{"phone":"[REDACTED]"}}`))
	if tc, ok := twin.Content[0].(mcpgo.TextContent); !ok || tc.Text != `{"phone":"[REDACTED]"}` {
		t.Errorf("the structured twin = %#v, want it as text", twin.Content[0])
	}
	if _, ok := blocksResult(json.RawMessage(`{"rows":[]}`)); ok {
		t.Error("a document that is not an MCP result was taken for one")
	}
}
