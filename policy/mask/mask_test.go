package mask

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/internal/config"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/golden")

const testKey = "test-hash-key-0123456789"

func newMasker(t testing.TB, cfg Config) *Masker {
	t.Helper()
	if cfg.HashKey == nil {
		cfg.HashKey = []byte(testKey)
	}
	m, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

// maskResult masks doc for tool and checks the output is valid JSON.
func maskResult(t *testing.T, m *Masker, tool *broker.Tool, doc string) (string, broker.MaskStats) {
	t.Helper()
	out, stats, err := m.MaskResult(tool, []byte(doc))
	if err != nil {
		t.Fatalf("MaskResult(%s): %v", doc, err)
	}
	if !json.Valid(out) || !utf8.Valid(out) {
		t.Fatalf("MaskResult(%s) is not valid JSON: %s", doc, out)
	}
	return string(out), stats
}

// compact re-encodes JSON without spaces so expectations read simply.
func compact(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("compact %s: %v", s, err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestActions(t *testing.T) {
	m := newMasker(t, Config{})
	h := func(v string) string {
		w := walker{hashKey: []byte(testKey)}
		return string(w.appendHash(nil, []byte(v)))
	}
	tests := []struct {
		name, action, value, want string
	}{
		{"redact string", ActionRedact, `"secret"`, `"[REDACTED]"`},
		{"redact number", ActionRedact, `42`, `"[REDACTED]"`},
		{"redact object", ActionRedact, `{"a":{"b":[1,2]}}`, `"[REDACTED]"`},
		{"redact array", ActionRedact, `[1,"x"]`, `"[REDACTED]"`},
		{"redact bool", ActionRedact, `true`, `"[REDACTED]"`},
		{"redact null stays null", ActionRedact, `null`, `null`},
		{"last4 card string", ActionLast4, `"4242424242424242"`, `"************4242"`},
		{"last4 card number", ActionLast4, `4242424242424242`, `"************4242"`},
		{"last4 short", ActionLast4, `"abcd"`, `"****"`},
		{"last4 unicode", ActionLast4, `"héllo wörld"`, `"*******örld"`},
		{"last4 object", ActionLast4, `{"a":1}`, `"[REDACTED]"`},
		{"email", ActionEmail, `"jane.doe@example.com"`, `"j***@example.com"`},
		{"email not an address", ActionEmail, `"jane"`, `"[REDACTED]"`},
		{"email number", ActionEmail, `12`, `"[REDACTED]"`},
		{"hash string", ActionHash, `"jane"`, `"` + h("jane") + `"`},
		{"hash escaped string equals plain", ActionHash, `"ja\u006ee"`, `"` + h("jane") + `"`},
		{"hash number", ActionHash, `42`, `"` + h("42") + `"`},
		{"hash object", ActionHash, `{"a":1}`, `"` + h(`{"a":1}`) + `"`},
		{"null", ActionNull, `"x"`, `null`},
		{"null object", ActionNull, `{"a":[1]}`, `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tool := &broker.Tool{Name: "t", Mask: map[string]string{"v": tt.action}}
			got, stats := maskResult(t, m, tool, `{"k":1,"v":`+tt.value+`,"z":2}`)
			want := `{"k":1,"v":` + tt.want + `,"z":2}`
			if got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
			if stats["rule:v"] != 1 {
				t.Errorf("stats = %v, want rule:v = 1", stats)
			}
		})
	}
	h1, h2 := h("jane"), h("john")
	if !strings.HasPrefix(h1, "h_") || len(h1) != 14 || h1 == h2 {
		t.Errorf("hash tokens %q %q: want distinct h_ + 12 hex", h1, h2)
	}
	other := walker{hashKey: []byte("another-key-0123456789")}
	if string(other.appendHash(nil, []byte("jane"))) == h1 {
		t.Error("hash does not depend on the key")
	}
}

func TestDrop(t *testing.T) {
	m := newMasker(t, Config{})
	tests := []struct {
		name  string
		rules map[string]string
		doc   string
		want  string
	}{
		{"first member", map[string]string{"a": ActionDrop}, `{"a":1,"b":2}`, `{"b":2}`},
		{"last member", map[string]string{"b": ActionDrop}, `{"a":1,"b":2}`, `{"a":1}`},
		{"only member", map[string]string{"a": ActionDrop}, `{"a":{"x":[1]}}`, `{}`},
		{"all members", map[string]string{"a": ActionDrop, "b": ActionDrop}, `{ "a" : 1 , "b" : 2 }`, `{}`},
		{"array element", map[string]string{"xs.0": ActionDrop}, `{"xs":[1,2,3]}`, `{"xs":[2,3]}`},
		{"every element", map[string]string{"xs.#": ActionDrop}, `{"xs":[1,2,3]}`, `{"xs":[]}`},
		{"middle and last elements", map[string]string{"xs.1": ActionDrop, "xs.2": ActionDrop}, `{"xs":[1,2,3]}`, `{"xs":[1]}`},
		{"middle member", map[string]string{"b": ActionDrop}, `{"a":1,"b":[2],"c":3}`, `{"a":1,"c":3}`},
		{"in rows", map[string]string{"rows.#.ssn": ActionDrop}, `{"rows":[{"id":1,"ssn":"x"},{"ssn":"y","id":2}]}`, `{"rows":[{"id":1},{"id":2}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := maskResult(t, m, &broker.Tool{Name: "t", Mask: tt.rules}, tt.doc)
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestPaths(t *testing.T) {
	m := newMasker(t, Config{})
	tests := []struct {
		name  string
		rules map[string]string
		doc   string
		want  string
	}{
		{"rows column", map[string]string{"rows.#.card_number": ActionLast4},
			`{"rows":[{"card_number":"4111111111111111"},{"card_number":"5555555555554444"},{"other":1}]}`,
			`{"rows":[{"card_number":"************1111"},{"card_number":"************4444"},{"other":1}]}`},
		{"nested arrays", map[string]string{"body.items.#.owners.#.email": ActionEmail},
			`{"status":200,"body":{"items":[{"owners":[{"email":"ann@x.io"},{"email":"bob@y.io"}]},{"owners":[]},{"owners":[{"email":"cy@z.io"}]}]}}`,
			`{"status":200,"body":{"items":[{"owners":[{"email":"a***@x.io"},{"email":"b***@y.io"}]},{"owners":[]},{"owners":[{"email":"c***@z.io"}]}]}}`},
		{"array of arrays", map[string]string{"m.#.#": ActionRedact}, `{"m":[[1,2],[3]]}`, `{"m":[["[REDACTED]","[REDACTED]"],["[REDACTED]"]]}`},
		{"index", map[string]string{"rows.1.ssn": ActionRedact}, `{"rows":[{"ssn":"a"},{"ssn":"b"}]}`, `{"rows":[{"ssn":"a"},{"ssn":"[REDACTED]"}]}`},
		{"wildcard key", map[string]string{"rows.#.card_*": ActionRedact}, `{"rows":[{"card_no":"1","card_exp":"2","id":3}]}`, `{"rows":[{"card_no":"[REDACTED]","card_exp":"[REDACTED]","id":3}]}`},
		{"escaped dot", map[string]string{`a\.b`: ActionRedact}, `{"a.b":1,"a":{"b":2}}`, `{"a.b":"[REDACTED]","a":{"b":2}}`},
		{"escaped key in document", map[string]string{"card_number": ActionRedact}, `{"card\u005fnumber":"1"}`, `{"card\u005fnumber":"[REDACTED]"}`},
		{"object subtree", map[string]string{"rows.#.address": ActionRedact}, `{"rows":[{"address":{"street":"1 Main","zip":["9"]}}]}`, `{"rows":[{"address":"[REDACTED]"}]}`},
		{"matches nothing", map[string]string{"nope.#.x": ActionRedact, "rows.#.nope": ActionDrop}, `{"rows":[{"id":1}], "n" : [ 1, 2.5e3, true, null ] }`, `{"rows":[{"id":1}],"n":[1,2.5e3,true,null]}`},
		{"path on scalar", map[string]string{"a.b.c": ActionRedact}, `{"a":{"b":"str"}}`, `{"a":{"b":"str"}}`},
		{"root array", map[string]string{"#.email": ActionEmail}, `[{"email":"x@y.io"}]`, `[{"email":"x***@y.io"}]`},
		{"outer rule wins over inner", map[string]string{"a": ActionRedact, "a.b": ActionHash}, `{"a":{"b":1}}`, `{"a":"[REDACTED]"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := maskResult(t, m, &broker.Tool{Name: "t", Mask: tt.rules}, tt.doc)
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestMerge checks global < target < tool, by path and between paths.
func TestMerge(t *testing.T) {
	m := newMasker(t, Config{
		Rules: map[string]string{"a": ActionRedact, "b": ActionRedact, "c": ActionRedact},
		Targets: map[string]TargetConfig{
			"db": {Rules: map[string]string{"b": ActionNull, "c": ActionNull}},
		},
	})
	doc := `{"a":"1","b":"2","c":"3","d":{"e":"4"}}`
	tests := []struct {
		name string
		tool *broker.Tool
		want string
	}{
		{"global only", &broker.Tool{Name: "t", Target: "other"}, `{"a":"[REDACTED]","b":"[REDACTED]","c":"[REDACTED]","d":{"e":"4"}}`},
		{"target over global", &broker.Tool{Name: "t", Target: "db"}, `{"a":"[REDACTED]","b":null,"c":null,"d":{"e":"4"}}`},
		{"tool over target", &broker.Tool{Name: "t", Target: "db", Mask: map[string]string{"c": ActionDrop}}, `{"a":"[REDACTED]","b":null,"d":{"e":"4"}}`},
		{"tool path beats global path on same value", &broker.Tool{Name: "t", Target: "other", Mask: map[string]string{"*": ActionNull}}, `{"a":null,"b":null,"c":null,"d":null}`},
		{"nil tool", nil, `{"a":"[REDACTED]","b":"[REDACTED]","c":"[REDACTED]","d":{"e":"4"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := maskResult(t, m, tt.tool, doc)
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestDetectorSwitches checks the defaults and the switches.
func TestDetectorSwitches(t *testing.T) {
	m := newMasker(t, Config{Targets: map[string]TargetConfig{
		"crm":   {Detectors: map[string]bool{DetectorEmail: true}},
		"cards": {Detectors: map[string]bool{DetectorCard: false}},
	}})
	doc := `{"email":"jane@example.com","card":"4242424242424242","n":4242424242424242}`
	tests := []struct {
		name string
		tool *broker.Tool
		want string
	}{
		{"email off for results by default", &broker.Tool{Name: "t"}, `{"email":"jane@example.com","card":"************4242","n":"************4242"}`},
		{"tool turns email on", &broker.Tool{Name: "t", Detectors: map[string]bool{"email": true}}, `{"email":"[REDACTED:email]","card":"************4242","n":"************4242"}`},
		{"target turns email on", &broker.Tool{Name: "t", Target: "crm"}, `{"email":"[REDACTED:email]","card":"************4242","n":"************4242"}`},
		{"tool turns email off again", &broker.Tool{Name: "t", Target: "crm", Detectors: map[string]bool{"email": false}}, `{"email":"jane@example.com","card":"************4242","n":"************4242"}`},
		{"target turns card off", &broker.Tool{Name: "t", Target: "cards"}, doc},
		{"tool turns card off", &broker.Tool{Name: "t", Detectors: map[string]bool{"card": false}}, doc},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := maskResult(t, m, tt.tool, doc)
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
	rec, err := m.MaskRecord([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"email":"[REDACTED:email]","card":"************4242","n":"************4242"}`; string(rec) != want {
		t.Errorf("MaskRecord = %s, want %s", rec, want)
	}
	off := newMasker(t, Config{Detectors: map[string]bool{DetectorEmail: false}})
	if got := off.MaskText("jane@example.com"); got != "jane@example.com" {
		t.Errorf("global email off: MaskText = %q", got)
	}
}

func TestStats(t *testing.T) {
	m := newMasker(t, Config{Rules: map[string]string{"rows.#.card_number": ActionLast4}})
	doc := `{"rows":[{"card_number":"4242424242424242","notes":"also 4111111111111111"},{"card_number":"x"},{"card_number":null}],"4242424242424242":1}`
	out, stats := maskResult(t, m, &broker.Tool{Name: "t"}, doc)
	want := broker.MaskStats{"rule:rows.#.card_number": 3, "detector:card": 2}
	if len(stats) != len(want) || stats["rule:rows.#.card_number"] != 3 || stats["detector:card"] != 2 {
		t.Fatalf("stats = %v, want %v (out %s)", stats, want, out)
	}
	for k := range stats {
		if strings.Contains(k, "4242") || strings.Contains(k, "4111") {
			t.Fatalf("stats key %q holds a value", k)
		}
	}
}

func TestEscapesAndUnicode(t *testing.T) {
	m := newMasker(t, Config{})
	tests := []struct {
		name, doc, want string
	}{
		{"card spelled with escapes", `{"a":"\u0034\u0032\u0034\u0032\u0034\u0032\u0034\u0032\u0034\u0032\u0034\u0032\u0034\u0032\u0034\u0032"}`, `{"a":"************4242"}`},
		{"escaped separator", `{"a":"card:\t4242424242424242\n"}`, `{"a":"card:\t************4242\n"}`},
		{"card in a key", `{"4242424242424242":1}`, `{"************4242":1}`},
		{"non-ASCII around a card", `{"a":"日本 4242424242424242 ü"}`, `{"a":"日本 ************4242 ü"}`},
		{"escaped non-ASCII passes through", `{"a":"caf\u00e9 \ud83d\ude00"}`, `{"a":"caf\u00e9 \ud83d\ude00"}`},
		{"invalid UTF-8 repaired", "{\"a\":\"x\xffy\"}", `{"a":"x\ufffdy"}`},
		{"card escaped twice in nested JSON text", `{"payload":"{\"card\":\"\\u0034242424242424242\"}"}`, `{"payload":"{\"card\":\"************4242\"}"}`},
		{"quotes survive masking", `{"a":"\"4242424242424242\" said \\o/"}`, `{"a":"\"************4242\" said \\o/"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := maskResult(t, m, &broker.Tool{Name: "t"}, tt.doc)
			if compact(t, got) != compact(t, tt.want) {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestHugeString(t *testing.T) {
	m := newMasker(t, Config{})
	big := strings.Repeat("lorem ipsum dolor sit amet ", 400_000) // ~10 MB
	doc := `{"a":"` + big + `4242424242424242","b":"` + big + `"}`
	got, stats := maskResult(t, m, &broker.Tool{Name: "t"}, doc)
	if strings.Contains(got, "4242424242424242") || !strings.Contains(got, "************4242") {
		t.Fatal("card at the end of a 10 MB string not masked")
	}
	if len(got) != len(doc) || stats["detector:card"] != 1 {
		t.Fatalf("len %d (want %d), stats %v", len(got), len(doc), stats)
	}
}

func TestDepthLimit(t *testing.T) {
	m := newMasker(t, Config{})
	nest := func(n int) string { return strings.Repeat("[", n) + "1" + strings.Repeat("]", n) }
	if _, _, err := m.MaskResult(&broker.Tool{Name: "t"}, []byte(nest(MaxDepth))); err != nil {
		t.Fatalf("depth %d refused: %v", MaxDepth, err)
	}
	tool := &broker.Tool{Name: "t", Mask: map[string]string{"a": ActionRedact}}
	for name, doc := range map[string]string{
		"arrays":           nest(MaxDepth + 1),
		"objects":          strings.Repeat(`{"a":`, 500) + "1" + strings.Repeat("}", 500),
		"inside a rule":    `{"a":` + nest(MaxDepth+5) + `}`,
		"invalid and deep": strings.Repeat("[", 10000),
	} {
		t.Run(name, func(t *testing.T) {
			out, stats, err := m.MaskResult(tool, []byte(doc))
			if !errors.Is(err, ErrTooDeep) {
				t.Fatalf("err = %v, want ErrTooDeep", err)
			}
			if out != nil || stats != nil {
				t.Fatal("a refused document still produced output")
			}
			if _, err := m.MaskRecord([]byte(doc)); !errors.Is(err, ErrTooDeep) {
				t.Fatalf("MaskRecord err = %v, want ErrTooDeep", err)
			}
		})
	}
}

// TestInvalidJSON checks that text that is not JSON never passes raw.
func TestInvalidJSON(t *testing.T) {
	m := newMasker(t, Config{Rules: map[string]string{"a": ActionRedact}})
	tests := []struct {
		name, doc, want string
	}{
		{"truncated", `{"a":"x","card":"4242424242424242"`, `"{\"a\":\"x\",\"card\":\"************4242\""`},
		{"plain text", "ERROR: card 4242-4242-4242-4242\n", `"ERROR: card ************4242\n"`},
		{"empty", "", `""`},
		{"trailing garbage", `{"a":1} 4242424242424242`, `"{\"a\":1} ************4242"`},
		{"bad escape", `{"x":"\q 123-45-6789"}`, `"{\"x\":\"\\q [REDACTED:ssn]\"}"`},
		{"control character", "{\"x\":\"a\x01b\"}", `"{\"x\":\"a\u0001b\"}"`},
		{"bad literal", `[tru]`, `"[tru]"`},
		{"bad number", `[01]`, `"[01]"`},
		{"invalid inside a rule match", `{"a":{"b":}}`, `"{\"a\":{\"b\":}}"`},
		{"escaped card in broken JSON", `{"c":"\u0034\u0032\u0034\u0032\u0034\u0032\u0034\u0032\u0034\u0032\u0034\u0032\u0034\u0032\u0034\u0032"`, `"{\"c\":\"************4242\""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, stats := maskResult(t, m, &broker.Tool{Name: "t"}, tt.doc)
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if _, ok := stats["rule:a"]; ok {
				t.Errorf("stats count a rule on a document that is not JSON: %v", stats)
			}
			rec, err := m.MaskRecord([]byte(tt.doc))
			if err != nil || !json.Valid(rec) {
				t.Errorf("MaskRecord = %s, %v", rec, err)
			}
		})
	}
}

func TestMaskCell(t *testing.T) {
	m := newMasker(t, Config{
		Rules: map[string]string{"customers.ssn": ActionRedact},
		Targets: map[string]TargetConfig{"db": {
			Rules:     map[string]string{"customers.card": ActionLast4, "customers.secret": ActionNull, "customers.email": ActionEmail},
			Detectors: map[string]bool{DetectorIBAN: false},
		}},
	})
	tests := []struct {
		name, target, column, value, want string
		changed, null                     bool
	}{
		{"target rule", "db", "customers.card", "4242424242424242", "************4242", true, false},
		{"email rule", "db", "customers.email", "jane@example.com", "j***@example.com", true, false},
		{"null rule", "db", "customers.secret", "x", "", true, true},
		{"global rule", "db", "customers.ssn", "anything", "[REDACTED]", true, false},
		{"detector", "db", "customers.notes", "paid with 4111 1111 1111 1111", "paid with ************1111", true, false},
		{"target switched iban off", "db", "customers.notes", "DE89370400440532013000", "DE89370400440532013000", false, false},
		{"email off for cells by default", "db", "customers.notes", "jane@example.com", "jane@example.com", false, false},
		{"unknown target uses global", "other", "customers.ssn", "x", "[REDACTED]", true, false},
		{"untouched", "db", "customers.name", "Jane", "Jane", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed := m.MaskCell(tt.target, tt.column, []byte(tt.value))
			if changed != tt.changed || string(got) != tt.want || (got == nil) != tt.null {
				t.Errorf("MaskCell = %q, %v; want %q, %v (null %v)", got, changed, tt.want, tt.changed, tt.null)
			}
			// MaskColumn, resolved once, masks every cell as MaskCell does.
			mask := m.MaskColumn(tt.target, tt.column, false)
			got, changed = mask([]byte(tt.value))
			if changed != tt.changed || string(got) != tt.want || (got == nil) != tt.null {
				t.Errorf("MaskColumn = %q, %v; want %q, %v (null %v)", got, changed, tt.want, tt.changed, tt.null)
			}
		})
	}
}

// A column of short integers skips the detectors, which cannot match
// one, but never a rule naming the column, nor a credential an integer
// could spell.
func TestMaskColumnShortInteger(t *testing.T) {
	m := newMasker(t, Config{Targets: map[string]TargetConfig{"db": {Rules: map[string]string{"customers.pin": ActionRedact}}}})
	if f := m.MaskColumn("db", "customers.id", true); f != nil {
		t.Error("a short-integer column without a rule is scanned; want it skipped")
	}
	if f := m.MaskColumn("db", "customers.id", false); f == nil {
		t.Error("a text column without a rule is skipped; the detectors must run")
	}
	f := m.MaskColumn("db", "customers.pin", true)
	if f == nil {
		t.Fatal("a short-integer column named by a rule is skipped")
	}
	if got, changed := f([]byte("1234")); !changed || string(got) != "[REDACTED]" {
		t.Errorf("rule on a short-integer column = %q, %v", got, changed)
	}

	// No detector matches any short integer: what skipping relies on.
	for _, v := range []string{"-2147483648", "2147483647", "4294967295", "1234567890", "t", "f", "0"} {
		if out, _, changed := m.maskText([]byte(v), detAll); changed || string(out) != v {
			t.Errorf("detectors changed the integer %q to %q", v, out)
		}
	}

	digits := newMasker(t, Config{Secrets: []Secret{{Where: "targets.db.dsn", Value: "918273645"}}})
	f = digits.MaskColumn("db", "customers.id", true)
	if f == nil {
		t.Fatal("with a credential spelled in digits, a short-integer column is skipped")
	}
	if got, changed := f([]byte("918273645")); !changed || string(got) == "918273645" {
		t.Errorf("a credential in an integer column = %q, %v; want it redacted", got, changed)
	}
	letters := newMasker(t, Config{Secrets: []Secret{{Where: "targets.db.dsn", Value: "s3cret-pw-1"}}})
	if f := letters.MaskColumn("db", "customers.id", true); f != nil {
		t.Error("a credential with letters keeps a short-integer column scanned")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"empty is fine", Config{}, ""},
		{"good", Config{HashKey: []byte(testKey), Rules: map[string]string{"rows.#.a": ActionHash}, Detectors: map[string]bool{"email": true}}, ""},
		{"unknown action", Config{Rules: map[string]string{"a": "scramble"}}, `unknown action "scramble"`},
		{"empty path", Config{Rules: map[string]string{"": ActionRedact}}, "empty path"},
		{"empty segment", Config{Rules: map[string]string{"a..b": ActionRedact}}, "empty segment"},
		{"query", Config{Rules: map[string]string{`rows.#(id>1).ssn`: ActionRedact}}, "gjson query"},
		{"modifier", Config{Rules: map[string]string{"@reverse": ActionRedact}}, "modifier"},
		{"pipe", Config{Rules: map[string]string{"a|b": ActionRedact}}, "pipe"},
		{"unknown detector", Config{Detectors: map[string]bool{"phone": true}}, `unknown detector "phone"`},
		{"target unknown detector", Config{Targets: map[string]TargetConfig{"db": {Detectors: map[string]bool{"x": false}}}}, "targets.db.mask.detectors"},
		{"hash without key", Config{Targets: map[string]TargetConfig{"db": {Rules: map[string]string{"a": ActionHash}}}}, "hash_key"},
		{"hash with short key", Config{HashKey: []byte("short"), Rules: map[string]string{"a": ActionHash}}, "at least 16 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.wantErr)
			}
			if m, err := New(tt.cfg, nil); err == nil || m != nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

// TestBadToolRules checks that a tool rule that cannot apply withholds the
// result instead of passing it through.
func TestBadToolRules(t *testing.T) {
	noKey, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	doc := []byte(`{"a":"4242424242424242"}`)
	for name, tool := range map[string]*broker.Tool{
		"bad action":       {Name: "t", Mask: map[string]string{"a": "nope"}},
		"bad path":         {Name: "t", Mask: map[string]string{"#(a==1)": ActionRedact}},
		"bad detector":     {Name: "t", Detectors: map[string]bool{"phone": true}},
		"hash without key": {Name: "t", Mask: map[string]string{"a": ActionHash}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := noKey.CheckTool(tool); err == nil {
				t.Fatal("CheckTool accepted the tool")
			}
			// Twice: the second answer comes from the compiled-tool cache.
			for range 2 {
				out, stats, err := noKey.MaskResult(tool, doc)
				if err == nil || out != nil || stats != nil {
					t.Fatalf("MaskResult = %s, %v, %v; want an error and no output", out, stats, err)
				}
			}
		})
	}
}

// TestGolden masks realistic documents and compares with testdata/golden.
func TestGolden(t *testing.T) {
	m := newMasker(t, Config{
		Rules: map[string]string{"rows.#.ssn": ActionRedact},
		Targets: map[string]TargetConfig{"crm": {
			Rules:     map[string]string{"body.contacts.#.phones.#": ActionLast4},
			Detectors: map[string]bool{DetectorEmail: true},
		}},
	})
	tools := map[string]*broker.Tool{
		"customers": {Name: "customers", Target: "db", Mask: map[string]string{
			"rows.#.card_number": ActionLast4, "rows.#.email": ActionEmail, "rows.#.name": ActionHash, "rows.#.internal": ActionDrop,
		}},
		"contacts": {Name: "contacts", Target: "crm", Mask: map[string]string{"body.contacts.#.address": ActionRedact}},
		"broken":   {Name: "broken", Target: "db"},
	}
	dirs, err := filepath.Glob("testdata/golden/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, dir := range dirs {
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			tool, ok := tools[strings.SplitN(name, "-", 2)[0]]
			if !ok {
				t.Fatalf("no tool for case %s", name)
			}
			in, err := os.ReadFile(filepath.Join(dir, "input.json"))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := maskResult(t, m, tool, string(in))
			path := filepath.Join(dir, "output.json")
			if *update {
				if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got+"\n" != string(want) {
				t.Errorf("masked output differs from %s\n got %s\nwant %s", path, got, want)
			}
		})
	}
}

func TestFromConfig(t *testing.T) {
	c := config.Config{
		Masking: config.Masking{HashKey: testKey, Rules: map[string]string{"rows.#.ssn": ActionHash}, Detectors: map[string]bool{"email": true}},
		Targets: map[string]config.Target{
			"db":  {Kind: "postgres", Mask: map[string]string{"customers.card": ActionLast4}, Detectors: map[string]bool{"iban": false}},
			"api": {Kind: "http"},
		},
	}
	mc := FromConfig(c)
	if err := mc.Validate(); err != nil {
		t.Fatal(err)
	}
	if string(mc.HashKey) != testKey || mc.Rules["rows.#.ssn"] != ActionHash || !mc.Detectors["email"] {
		t.Fatalf("masking section not carried: %+v", mc)
	}
	if _, ok := mc.Targets["api"]; ok || mc.Targets["db"].Rules["customers.card"] != ActionLast4 || mc.Targets["db"].Detectors["iban"] {
		t.Fatalf("targets not carried: %+v", mc.Targets)
	}
}

// TestConcurrent runs one Masker from many goroutines (run with -race).
func TestConcurrent(t *testing.T) {
	m := newMasker(t, Config{Rules: map[string]string{"rows.#.name": ActionHash, "rows.#.card": ActionLast4}})
	doc := []byte(`{"rows":[{"name":"Jane","card":"4242424242424242","notes":"ssn 123-45-6789"}]}`)
	want, _, err := m.MaskResult(&broker.Tool{Name: "t"}, doc)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tool := &broker.Tool{Name: "t", Mask: map[string]string{"rows.#.zip": ActionDrop}}
			for i := 0; i < 200; i++ {
				got, _, err := m.MaskResult(tool, doc)
				if err != nil || string(got) != string(want) {
					t.Errorf("concurrent MaskResult = %s, %v; want %s", got, err, want)
					return
				}
				_ = m.MaskText("4242424242424242")
			}
		}()
	}
	wg.Wait()
}

// TestPrepareTool: each tool's masking is compiled once, by PrepareTool,
// and belongs to that tool alone; what the declaration says afterwards is
// not read again (masking is prepared at load, nothing is looked up per
// call).
func TestPrepareTool(t *testing.T) {
	m := newMasker(t, Config{})
	doc := []byte(`{"a":"x","b":"y"}`)
	ta := &broker.Tool{Name: "ta", Mask: map[string]string{"a": ActionRedact}}
	tb := &broker.Tool{Name: "tb", Mask: map[string]string{"b": ActionRedact}}
	ma, err := m.PrepareTool(ta)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := m.PrepareTool(tb)
	if err != nil {
		t.Fatal(err)
	}
	ta.Mask["b"] = ActionRedact // after preparing: not seen
	for _, c := range []struct {
		tm   broker.ToolMask
		want string
	}{{ma, `{"a":"[REDACTED]","b":"y"}`}, {mb, `{"a":"x","b":"[REDACTED]"}`}} {
		out, _, err := c.tm.Mask(doc)
		if err != nil || string(out) != c.want {
			t.Errorf("Mask = %s, %v; want %s", out, err, c.want)
		}
	}
	if _, err := m.PrepareTool(&broker.Tool{Name: "bad", Mask: map[string]string{"a": "shred"}}); err == nil {
		t.Error("PrepareTool accepted an unknown action")
	}
}
