package pgwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestReadMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want string // "" means ok
	}{
		{"query", []byte("Q\x00\x00\x00\x0dSELECT 1\x00"), ""},
		{"short length", []byte("Q\x00\x00\x00\x02"), "invalid message length"},
		{"too large", []byte("Q\x00\x10\x00\x00"), "exceeds"},
		{"truncated", []byte("Q\x00\x00\x00\x0dSEL"), io.ErrUnexpectedEOF.Error()},
		{"truncated header", []byte("Q\x00"), io.ErrUnexpectedEOF.Error()},
		{"empty", nil, io.EOF.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := readMessage(bufio.NewReader(bytes.NewReader(tc.in)), 1<<16, nil)
			if tc.want == "" {
				if err != nil || !bytes.Equal(msg, tc.in) {
					t.Fatalf("got %q, %v", msg, err)
				}
				return
			}
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzReadMessage feeds arbitrary bytes to the message and startup readers
// and the classifier: they must return an error or a well-formed message,
// never panic or read past the limit.
func FuzzReadMessage(f *testing.F) {
	f.Add([]byte("Q\x00\x00\x00\x0dSELECT 1\x00"))
	f.Add([]byte("P\x00\x00\x00\x10\x00SELECT 1\x00\x00\x00"))
	f.Add([]byte("\x00\x00\x00\x08\x04\xd2\x16\x2f"))
	f.Add([]byte("\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x00\x01\x00\x00\x00\x02"))
	f.Add([]byte("Q\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		for i := 0; i < 8; i++ {
			msg, err := readMessage(r, 4096, nil)
			if err != nil {
				var tl errTooLarge
				if errors.As(err, &tl) && tl.n <= 4096 {
					t.Fatalf("too-large error for %d bytes", tl.n)
				}
				break
			}
			if len(msg) < 5 || len(msg) > 4097 {
				t.Fatalf("message of %d bytes", len(msg))
			}
			if msg[0] == 'Q' && len(msg) > 5 {
				_ = Classify(string(msg[5 : len(msg)-1]))
			}
		}
		_, body, err := readStartup(bytes.NewReader(in))
		if err == nil && len(body) > maxStartupLen {
			t.Fatalf("startup body of %d bytes", len(body))
		}
	})
}
