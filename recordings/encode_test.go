package recordings

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/toolgate/toolgate/broker"
)

// marshalCanonical is the definition appendEvent implements: json.Marshal
// of the event with Time in UTC, then every object's members sorted by
// encoded key.
func marshalCanonical(ev broker.Event) ([]byte, error) {
	ev.Time = ev.Time.UTC()
	raw, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	out, _, err := sortValue(nil, raw, 0)
	return out, err
}

// Strings that exercise every escaping rule of encoding/json.
var trickyStrings = []string{
	"", "a", "a b", "a\"c", `a\b`, "<script>&amp;</script>", "tab\there", "nl\nx", "\b\f\r\x00\x1f\x7f",
	"é", "日本", "\u2028\u2029", "bad \xff utf8", "\xe2\x80", "k!", "k", "k#", "\xe2\x80\xa8",
}

// Raw JSON values: canonical ones (copied), and ones that take the
// json.Marshal path (whitespace, unsorted keys, HTML characters, U+2028).
var trickyRaw = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-1.5e+3`, `"s"`, `"a\u00e9\/\n"`,
	`{"a":1,"b":[1,2,{"c":null}]}`, `{"b":1,"a":2}`, `{ "a" : 1 }`, ` [1, 2] `,
	`{"rows":[{"card_number":"************4242","email":"c***@example.com","id":1,"name":"Customer 1","ssn":"123-45-0001"}],"row_count":1,"truncated":false}`,
	`{"a":"<b>"}`, `{"a":"\u2028"}`, `["` + "\u2028" + `"]`, `{"a b":1,"a":2}`, `{"a":2,"a b":1}`,
	`{"a":1,"a":2}`, `{"z":{"y":{"x":[{"k2":1,"k1":"a,b}]"}]}},"a":-1.5e3,"m":true,"n":null}`,
	`{"é":1,"e":2,"a\\b":3,"a\"c":4,"a b":5}`, `[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
	`1e400`, `123456789012345678901234567890`, `"bad \xff"`,
}

var trickyFloats = []float64{0, math.Copysign(0, -1), 1, 0.5, 1e-7, 1e21, 123.456, -2.5e-9, 1e20, 3.3333333333333335}

func randomEvent(r *rand.Rand) broker.Event {
	s := func() string {
		if r.IntN(3) == 0 {
			return ""
		}
		return trickyStrings[r.IntN(len(trickyStrings))]
	}
	raw := func() json.RawMessage {
		if r.IntN(4) == 0 {
			return nil
		}
		return json.RawMessage(trickyRaw[r.IntN(len(trickyRaw))])
	}
	ev := broker.Event{
		ID: s(), Time: time.Unix(r.Int64N(1<<34), r.Int64N(1e9)).In(time.FixedZone("X", 3600*r.IntN(12))),
		Kind: broker.EventKind(s()), Principal: s(), AuthMethod: s(), TokenID: s(), Graph: s(), Node: s(),
		Run: s(), Thread: s(), ToolCallID: s(), Tool: s(), Target: s(), Door: s(), Args: raw(), ArgsHash: s(),
		Decision: s(), Rule: s(), PolicyVersion: s(), ApprovalID: s(), Status: broker.Status(s()),
		ErrorCode: s(), Error: s(), Rows: r.IntN(3) - 1, Bytes: r.IntN(100000) * r.IntN(2),
		DurationMS: trickyFloats[r.IntN(len(trickyFloats))], ExecMS: trickyFloats[r.IntN(len(trickyFloats))],
		Result: raw(), TraceID: s(),
	}
	if r.IntN(2) == 0 {
		ev.Masked = broker.MaskStats{}
		for range r.IntN(4) {
			ev.Masked[trickyStrings[r.IntN(len(trickyStrings))]] = r.IntN(5)
		}
	}
	if r.IntN(3) == 0 {
		ev.Detail = map[string]any{s(): s(), "n": 1.5, "list": []any{map[string]any{"b": 1, "a": s()}}}
	}
	return ev
}

func TestAppendEventMatchesMarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		ev := randomEvent(r)
		want, werr := marshalCanonical(ev)
		got, gerr := Canonical(ev)
		if (werr != nil) != (gerr != nil) {
			t.Fatalf("event %d: error %v, json.Marshal path %v\n%+v", i, gerr, werr, ev)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("event %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

func TestAppendEventRefusals(t *testing.T) {
	base := broker.Event{ID: "x", Kind: broker.EventToolCall, Time: time.Unix(0, 0)}
	for name, ev := range map[string]broker.Event{
		"invalid args":   func() broker.Event { e := base; e.Args = json.RawMessage(`{"a":`); return e }(),
		"invalid result": func() broker.Event { e := base; e.Result = json.RawMessage(`[1,]`); return e }(),
		"trailing data":  func() broker.Event { e := base; e.Args = json.RawMessage(`{} {}`); return e }(),
		"NaN":            func() broker.Event { e := base; e.DurationMS = math.NaN(); return e }(),
		"infinity":       func() broker.Event { e := base; e.ExecMS = math.Inf(1); return e }(),
		"year 10000":     func() broker.Event { e := base; e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC); return e }(),
		"bad detail":     func() broker.Event { e := base; e.Detail = map[string]any{"c": make(chan int)}; return e }(),
	} {
		if _, err := marshalCanonical(ev); err == nil {
			t.Fatalf("%s: the json.Marshal path accepts it; the case tests nothing", name)
		}
		if got, err := Canonical(ev); err == nil {
			t.Errorf("%s: Canonical = %s, want an error", name, got)
		}
	}
}

func TestScanCanonical(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want bool
	}{
		{`{"a":1,"b":[true,false,null,"x"]}`, true},
		{`{"a b":1,"a":2}`, true}, // sorted by encoded key: ' ' < '"'
		{`{"a":2,"a b":1}`, true}, // valid, only unsorted
		{`-0.5e-3`, true},
		{`01`, false}, {`1.`, false}, {`-`, false}, {`1e`, false}, {`.5`, false},
		{`"\u00e9"`, true}, {`"\u00g9"`, false}, {`"\x"`, false}, {"\"\x01\"", false},
		{`"<"`, false}, {`"a&b"`, false}, {"\"\u2028\"", false},
		{`{"a" :1}`, false}, {`[1 ]`, false}, {`tru`, false}, {`nul`, false},
		{`{"a":1,}`, false}, {`[1,]`, false}, {`{"a"}`, false}, {`{1:2}`, false},
	} {
		sorted := true
		end, ok := scanCanonical([]byte(c.raw), 0, 0, &sorted)
		if got := ok && end == len(c.raw); got != c.want {
			t.Errorf("scanCanonical(%s) = %v, want %v", c.raw, got, c.want)
		}
	}
}
