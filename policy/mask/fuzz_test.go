package mask

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/toolgate/toolgate/broker"
)

// fuzzSecrets are the sensitive values seeded into the fuzz corpus. None may
// appear in masked output as a standalone token: for the numbers, not
// glued to other digits (a card glued to letters is still found; one
// padded with digits is a different number); for the key, not glued to
// letters, digits or underscores (a different word).
var fuzzSecrets = []string{
	"4242424242424242", "4111111111111111", "5555555555554444", "378282246310005",
	"123-45-6789", "078-05-1120", "AKIAIOSFODNN7EXAMPLE",
}

// standalone reports whether tok occurs in s with no word byte on either
// side or, when tok starts with a digit, no digit on either side.
func standalone(s, tok string) bool {
	glued := isWord
	if isDigit(tok[0]) {
		glued = isDigit
	}
	for off := 0; ; {
		i := strings.Index(s[off:], tok)
		if i < 0 {
			return false
		}
		i += off
		end := i + len(tok)
		if (i == 0 || !glued(s[i-1])) && (end == len(s) || !glued(s[end])) {
			return true
		}
		off = i + 1
	}
}

func checkMasked(t *testing.T, in, out []byte) {
	t.Helper()
	if !json.Valid(out) || !utf8.Valid(out) {
		t.Fatalf("output is not valid JSON\n in %q\nout %q", in, out)
	}
	// The output may spell a value with JSON escapes: check it decoded too.
	var decoded strings.Builder
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				decoded.WriteString(" " + k + " ")
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		case string:
			decoded.WriteString(" " + v + " ")
		case json.Number:
			decoded.WriteString(" " + v.String() + " ")
		}
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode output: %v", err)
	}
	walk(v)
	unescaped, _ := unescapeU([]byte(decoded.String()))
	for _, s := range fuzzSecrets {
		if standalone(string(out), s) || standalone(decoded.String(), s) || standalone(string(unescaped), s) {
			t.Fatalf("output leaks %s\n in %q\nout %q", s, in, out)
		}
	}
}

func fuzzMasker(t testing.TB) *Masker {
	return newMasker(t, Config{
		Rules: map[string]string{
			"rows.#.card_number": ActionLast4, "rows.#.email": ActionEmail, "rows.#.name": ActionHash,
			"rows.#.internal": ActionDrop, "body.#.secret": ActionNull,
		},
	})
}

func addSeeds(f *testing.F) {
	for _, s := range []string{
		`{"rows":[{"id":1,"name":"Jane","email":"jane@example.com","card_number":"4242424242424242","ssn":"123-45-6789","notes":"card 4111 1111 1111 1111"}]}`,
		`{"a":4242424242424242,"b":[378282246310005,"078-05-1120"],"AKIAIOSFODNN7EXAMPLE":true}`,
		`{"a":"\u0034\u0032\u0034\u0032\u0034\u0032\u0034\u0032\u0034\u0032\u0034\u0032\u0034\u0032\u0034\u0032"}`,
		`[{"x":"5555-5555-5555-4444"},null,-4242424242424242.5e3]`,
		`not json 4242424242424242 at all`,
		`{"glued":"a4242424242424242","agg":"42424242424242425555555555554444","err":"invalid input syntax for type integer: \"x4111111111111111\"","ssn":"id123-45-6789"}`,
	} {
		f.Add([]byte(s))
	}
}

// FuzzMaskResult checks that result masking always yields valid JSON that
// holds none of the seeded sensitive values.
func FuzzMaskResult(f *testing.F) {
	addSeeds(f)
	m := fuzzMasker(f)
	tool := &broker.Tool{Name: "t", Mask: map[string]string{"rows.#.ssn": ActionRedact}}
	f.Fuzz(func(t *testing.T, doc []byte) {
		out, stats, err := m.MaskResult(tool, doc)
		if err != nil {
			if out != nil || stats != nil {
				t.Fatal("an error came with output")
			}
			return // too deep: withheld
		}
		checkMasked(t, doc, out)
	})
}

// FuzzMaskRecord checks the same property for recordings.
func FuzzMaskRecord(f *testing.F) {
	addSeeds(f)
	m := fuzzMasker(f)
	f.Fuzz(func(t *testing.T, doc []byte) {
		out, err := m.MaskRecord(doc)
		if err != nil {
			if out != nil {
				t.Fatal("an error came with output")
			}
			return
		}
		checkMasked(t, doc, out)
		if standalone(string(out), "jane@example.com") {
			t.Fatalf("record leaks an email: %s", out)
		}
	})
}
