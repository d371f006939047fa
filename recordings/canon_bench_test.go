package recordings_test

import (
	"testing"

	"github.com/toolgate/toolgate/recordings"
)

func BenchmarkCanonical(b *testing.B) {
	ev := event(1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := recordings.Canonical(ev); err != nil {
			b.Fatal(err)
		}
	}
}
