package pgwire

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// Protocol codes of the untyped startup packets.
const (
	protocol30     = 3 << 16
	sslRequestCode = 80877103
	gssEncCode     = 80877104
	cancelCode     = 80877102
	// maxStartupLen is PostgreSQL's own MAX_STARTUP_PACKET_LENGTH.
	maxStartupLen = 10000
)

// errTooLarge is returned for messages over the configured limit.
type errTooLarge struct {
	typ    byte
	n, max int
}

func (e errTooLarge) Error() string {
	return fmt.Sprintf("message %q of %d bytes exceeds the %d-byte limit", e.typ, e.n, e.max)
}

// readStartup reads one untyped startup packet (length, code, body) from r
// without reading past it, so a TLS upgrade that follows sees no buffered
// plaintext.
func readStartup(r io.Reader) (code uint32, body []byte, err error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:4]))
	if n < 8 || n > maxStartupLen {
		return 0, nil, fmt.Errorf("invalid startup packet length %d", n)
	}
	if _, err := io.ReadFull(r, hdr[4:8]); err != nil {
		return 0, nil, err
	}
	body = make([]byte, n-8)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return binary.BigEndian.Uint32(hdr[4:8]), body, nil
}

// readMessage reads one typed message and returns it whole (type byte,
// length, body), reusing buf when it is large enough. A length below 4 or
// above max is an error; a message over max is left unread.
func readMessage(r *bufio.Reader, max int, buf []byte) ([]byte, error) {
	return readMessageLimit(r, func(byte) int { return max }, buf)
}

// readMessageLimit is readMessage with a limit per message type.
func readMessageLimit(r *bufio.Reader, limit func(typ byte) int, buf []byte) ([]byte, error) {
	hdr, err := r.Peek(5)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[1:5]))
	if n < 4 {
		return nil, fmt.Errorf("invalid message length %d for message %q", n, hdr[0])
	}
	if max := limit(hdr[0]); n > max {
		return nil, errTooLarge{typ: hdr[0], n: n, max: max}
	}
	total := n + 1
	if cap(buf) < total {
		buf = make([]byte, total)
	}
	buf = buf[:total]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// cstrings splits the first k NUL-terminated strings off b.
func cstrings(b []byte, k int) ([]string, bool) {
	out := make([]string, 0, k)
	for len(out) < k {
		i := indexByte(b, 0)
		if i < 0 {
			return nil, false
		}
		out = append(out, string(b[:i]))
		b = b[i+1:]
	}
	return out, true
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
