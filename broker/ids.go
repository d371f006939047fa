package broker

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// NewID returns a random id with a prefix that sorts by creation time:
// 6 bytes of Unix milliseconds of now, then 12 random bytes, hex-encoded.
// The time prefix makes the audit store's unique id index grow at its right
// edge instead of splitting random B-tree pages on every write. Packages
// that mint records pass their clock's now.
func NewID(prefix string, now time.Time) string { return newID(prefix, now) }

func newID(prefix string, now time.Time) string {
	var b [18]byte
	ms := uint64(now.UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

// newTraceID starts a trace id for a record whose call came with none.
func newTraceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
