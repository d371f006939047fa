package mcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

// TestTopScanner finds a message's top-level id wherever it is, and only
// there.
func TestTopScanner(t *testing.T) {
	for _, c := range []struct {
		name, msg string
		id        string // RequestId.String(), "" for none
		method    bool
	}{
		{"id first", `{"jsonrpc":"2.0","id":7,"result":{"content":[]}}`, "int64:7", false},
		{"id last, as the TypeScript SDK writes it", `{"result":{"content":[{"type":"text","text":"x"}]},"jsonrpc":"2.0","id":"toolgate-3"}`, "string:toolgate-3", false},
		{"quoted id in a string", `{"result":{"text":"\"id\":5, \\\"id\\\":6"},"jsonrpc":"2.0","id":8}`, "int64:8", false},
		{"nested id", `{"result":{"id":9,"items":[{"id":10}]},"id":11}`, "int64:11", false},
		{"spaces", "{ \"id\" : \"a b\" ,\n \"error\": {}}", "string:a b", false},
		{"notification", `{"jsonrpc":"2.0","method":"notifications/progress","params":{"id":1}}`, "", true},
		{"request", `{"jsonrpc":"2.0","id":4,"method":"sampling/createMessage"}`, "int64:4", true},
		{"no id", `{"jsonrpc":"2.0","result":{}}`, "", false},
		{"object id", `{"id":{"x":1},"result":{}}`, "", false},
		{"long id", `{"id":"` + strings.Repeat("a", 200) + `","result":{}}`, "", false},
		{"long key ending in id", `{"` + strings.Repeat("k", 40) + `id":1,"result":{}}`, "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, chunk := range []int{1, 3, len(c.msg)} { // split anywhere
				var s topScanner
				for i := 0; i < len(c.msg); i += chunk {
					s.feed([]byte(c.msg[i:min(i+chunk, len(c.msg))]))
				}
				got := ""
				if id := s.requestID(); id != nil {
					got = id.String()
				}
				if got != c.id || s.method != c.method {
					t.Errorf("chunk %d: id %q method %v, want %q %v", chunk, got, s.method, c.id, c.method)
				}
			}
		})
	}
}

// TestLineCap passes lines up to the cap unchanged and replaces a longer
// response by an error for its id, never holding it whole.
func TestLineCap(t *testing.T) {
	big := strings.Repeat("y", 100_000)
	in := strings.Join([]string{
		`{"id":1,"result":{}}`,
		`{"result":{"content":[{"type":"text","text":"` + big + `"}]},"jsonrpc":"2.0","id":"toolgate-2"}`,
		`{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"` + big + `"}}`,
		`{"result":{"text":"` + big + `"}}`,
		`{"id":3,"result":{"text":"` + strings.Repeat("z", 971) + `"}}`,
		`{"id":4,"result":{}}`, // no final line break
	}, "\n")
	var dropped []string
	lc := newLineCap(strings.NewReader(in), 1000, func(id *mcpgo.RequestId) {
		if id == nil {
			dropped = append(dropped, "<none>")
			return
		}
		dropped = append(dropped, id.String())
	})
	out, err := io.ReadAll(lc)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("got %d lines:\n%.500s", len(lines), out)
	}
	if lines[0] != `{"id":1,"result":{}}` || !strings.HasPrefix(lines[2], `{"id":3,`) || len(lines[2]) != 1000 || lines[3] != `{"id":4,"result":{}}` {
		t.Errorf("lines passed changed:\n%.300s", out)
	}
	var resp struct {
		ID    mcpgo.RequestId           `json:"id"`
		Error mcpgo.JSONRPCErrorDetails `json:"error"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &resp); err != nil || resp.ID.String() != "string:toolgate-2" ||
		!strings.Contains(resp.Error.Message, "max_result_bytes (1000 bytes)") {
		t.Errorf("replacement %s (%v)", lines[1], err)
	}
	if strings.Join(dropped, ",") != "string:toolgate-2,<none>,<none>" {
		t.Errorf("dropped %v", dropped)
	}
}

// TestBodyCaps: a JSON body is capped whole, an event stream per event.
func TestBodyCaps(t *testing.T) {
	read := func(r io.Reader) (int, error) {
		b, err := io.ReadAll(r)
		return len(b), err
	}
	st := &callState{}
	if n, err := read(&bodyCap{rc: io.NopCloser(strings.NewReader(strings.Repeat("a", 100))), left: 100, st: st}); n != 100 || err != nil || st.oversized.Load() {
		t.Errorf("a body at the cap: %d, %v", n, err)
	}
	if _, err := read(&bodyCap{rc: io.NopCloser(strings.NewReader(strings.Repeat("a", 101))), left: 100, st: st}); !errors.Is(err, errTooLarge) || !st.oversized.Load() {
		t.Errorf("a body over the cap: %v, flagged %v", err, st.oversized.Load())
	}

	event := "event: message\ndata: " + strings.Repeat("b", 60) + "\n\n"
	st = &callState{}
	stream := strings.Repeat(event, 50) // many events, each under the cap
	if n, err := read(&eventCap{rc: io.NopCloser(strings.NewReader(stream)), max: 100, st: st}); n != len(stream) || err != nil {
		t.Errorf("events under the cap: %d of %d, %v", n, len(stream), err)
	}
	long := "data: " + strings.Repeat("c", 60) + "\r\ndata: " + strings.Repeat("c", 60) + "\r\n\r\n"
	if _, err := read(&eventCap{rc: io.NopCloser(strings.NewReader(event + long)), max: 100, st: st}); !errors.Is(err, errTooLarge) || !st.oversized.Load() {
		t.Errorf("an event over the cap split across data lines: %v", err)
	}
	var sink bytes.Buffer
	if _, err := io.Copy(&sink, &eventCap{rc: io.NopCloser(strings.NewReader(event)), max: 10}); !errors.Is(err, errTooLarge) {
		t.Errorf("without a call state the cap still holds: %v", err)
	}
}

func TestStructuredText(t *testing.T) {
	sc := json.RawMessage(`{"n":1.50,"s":"x"}`)
	for _, c := range []struct{ block, want string }{
		{`{"type":"text","text":"{\"s\":\"x\",\"n\":1.50}"}`, `{"text":{"n":1.50,"s":"x"},"type":"text"}`},
		{`{"type":"text","text":"{\"s\":\"x\",\"n\":1.5}"}`, `{"type":"text","text":"{\"s\":\"x\",\"n\":1.5}"}`},
		{`{"type":"text","text":"n is 1.50"}`, `{"type":"text","text":"n is 1.50"}`},
		{`{"type":"image","data":"aGk=","mimeType":"image/png"}`, `{"type":"image","data":"aGk=","mimeType":"image/png"}`},
	} {
		if got := string(structuredText(json.RawMessage(c.block), sc)); got != c.want {
			t.Errorf("structuredText(%s) = %s, want %s", c.block, got, c.want)
		}
	}
	if got := string(structuredText(json.RawMessage(`{"type":"text","text":"{}"}`), nil)); got != `{"type":"text","text":"{}"}` {
		t.Errorf("without structured content: %s", got)
	}
}
