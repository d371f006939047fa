package mask

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/toolgate/toolgate/broker"
)

// customerRows builds a JSON result of customer rows of about size bytes.
func customerRows(size int) []byte {
	cards := []string{"4242424242424242", "4111111111111111", "5555555555554444", "378282246310005"}
	var b bytes.Buffer
	b.WriteString(`{"rows":[`)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"Customer %d Example","email":"customer%d@example.com","card_number":"%s","ssn":"%03d-%02d-%04d","notes":"Called on 2024-03-%02d about order #%d; prefers email, asked to update the billing address and the delivery window for next week."}`,
			i, i, i, cards[i%len(cards)], 100+i%500, 1+i%98, 1+i%9998, 1+i%28, 100000+i)
	}
	b.WriteString(`],"row_count":1,"truncated":false}`)
	return b.Bytes()
}

func benchMasker(b *testing.B) *Masker {
	m, err := New(Config{
		HashKey: []byte("bench-hash-key-0123456789"),
		Rules: map[string]string{
			"rows.#.card_number": ActionLast4,
			"rows.#.ssn":         ActionRedact,
			"rows.#.email":       ActionEmail,
			"rows.#.name":        ActionHash,
			"rows.#.internal":    ActionDrop,
		},
		Detectors: map[string]bool{DetectorEmail: true},
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkMask1MB masks a ~1 MB result: 5 path rules, every detector on.
func BenchmarkMask1MB(b *testing.B) {
	m := benchMasker(b)
	doc := customerRows(1 << 20)
	// As a server masks it: prepared once when the catalog loads.
	tm, err := m.PrepareTool(&broker.Tool{Name: "customers", Target: "db"})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := tm.Mask(doc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMaskRecord1MB masks the same document as a recording.
func BenchmarkMaskRecord1MB(b *testing.B) {
	m := benchMasker(b)
	doc := customerRows(1 << 20)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.MaskRecord(doc); err != nil {
			b.Fatal(err)
		}
	}
}
