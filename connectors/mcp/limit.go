package mcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sync/atomic"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

// errTooLarge ends a read past max_result_bytes.
var errTooLarge = errors.New("the upstream message exceeds max_result_bytes")

// callState follows one request through the transport, so a cap tripped
// deep inside it can be told apart from a broken connection.
type callState struct{ oversized atomic.Bool }

type callStateKey struct{}

func withCallState(ctx context.Context, st *callState) context.Context {
	return context.WithValue(ctx, callStateKey{}, st)
}

// capTransport bounds what an HTTP upstream can make the client read: a
// JSON response body as a whole, an event stream per event (the bytes
// between two blank lines, one JSON-RPC message). mcp-go reads both without
// a limit, so the cap sits under it, at the http.RoundTripper.
type capTransport struct {
	base http.RoundTripper
	max  int64
}

// RoundTrip sends req and wraps the response body in the cap.
func (t *capTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	st, _ := req.Context().Value(callStateKey{}).(*callState)
	// "application/json", the common answer, needs no parsing; whatever is
	// not an event stream gets the stricter cap, on the whole body.
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		if mt, _, _ := mime.ParseMediaType(ct); mt == "text/event-stream" {
			resp.Body = &eventCap{rc: resp.Body, max: t.max, st: st}
			return resp, nil
		}
	}
	resp.Body = &bodyCap{rc: resp.Body, left: t.max, st: st}
	return resp, nil
}

// bodyCap fails a read once more than its budget has been read.
type bodyCap struct {
	rc   io.ReadCloser
	left int64
	st   *callState
}

func (b *bodyCap) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		if b.st != nil {
			b.st.oversized.Store(true)
		}
		return 0, errTooLarge
	}
	return n, err
}

func (b *bodyCap) Close() error { return b.rc.Close() }

// eventCap fails a read once one server-sent event grows past max bytes.
// An event ends at an empty line.
type eventCap struct {
	rc      io.ReadCloser
	max     int64
	st      *callState
	event   int64 // bytes of the current event
	line    int64 // bytes of the current line, without its line break
	tripped bool
}

func (e *eventCap) Read(p []byte) (int, error) {
	if e.tripped {
		return 0, errTooLarge
	}
	n, err := e.rc.Read(p)
	for _, c := range p[:n] {
		switch c {
		case '\n':
			if e.line == 0 {
				e.event = 0
				continue
			}
			e.line = 0
		case '\r':
		default:
			e.line++
		}
		if e.event++; e.event > e.max {
			e.tripped = true
			if e.st != nil {
				e.st.oversized.Store(true)
			}
			return 0, errTooLarge
		}
	}
	return n, err
}

func (e *eventCap) Close() error { return e.rc.Close() }

// lineCap sits between a stdio server's stdout and mcp-go's reader, which
// reads a line (one JSON-RPC message) without a limit. A line up to max
// bytes passes unchanged. A longer one is never held whole: its bytes are
// scanned as they stream past for the message's id, then dropped, and a
// response carrying a JSON-RPC error for that id takes its place, so the
// request that asked for it fails at once and the session lives on.
type lineCap struct {
	r       *bufio.Reader
	max     int
	pending []byte
	// dropped is told the id of each dropped response (nil when the
	// dropped message was a notification or a request, or had no id).
	dropped func(id *mcpgo.RequestId)
}

func newLineCap(r io.Reader, max int, dropped func(*mcpgo.RequestId)) *lineCap {
	return &lineCap{r: bufio.NewReaderSize(r, 64<<10), max: max, dropped: dropped}
}

func (l *lineCap) Read(p []byte) (int, error) {
	for len(l.pending) == 0 {
		line, err := l.next()
		l.pending = line
		if err != nil && len(line) == 0 {
			return 0, err
		}
		if err != nil {
			break
		}
	}
	n := copy(p, l.pending)
	l.pending = l.pending[n:]
	return n, nil
}

// next returns the next line (with its line break) or its replacement.
func (l *lineCap) next() ([]byte, error) {
	var line []byte
	for {
		chunk, err := l.r.ReadSlice('\n')
		if len(line)+len(chunk) > l.max+1 {
			return l.drop(append(line, chunk...), err)
		}
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		return line, err
	}
}

// drop consumes the rest of an oversized line, scanning it for the id,
// and returns the replacement line.
func (l *lineCap) drop(head []byte, err error) ([]byte, error) {
	var sc topScanner
	sc.feed(head)
	for err == bufio.ErrBufferFull {
		var chunk []byte
		chunk, err = l.r.ReadSlice('\n')
		sc.feed(chunk)
	}
	id := sc.requestID()
	if sc.method || id == nil {
		l.dropped(nil)
		return nil, err
	}
	l.dropped(id)
	resp := struct {
		JSONRPC string                    `json:"jsonrpc"`
		ID      mcpgo.RequestId           `json:"id"`
		Error   mcpgo.JSONRPCErrorDetails `json:"error"`
	}{mcpgo.JSONRPC_VERSION, *id, mcpgo.JSONRPCErrorDetails{Code: mcpgo.INTERNAL_ERROR,
		Message: fmt.Sprintf("toolgate dropped the upstream's response: it exceeds max_result_bytes (%d bytes)", l.max)}}
	b, mErr := json.Marshal(resp)
	if mErr != nil {
		return nil, mErr
	}
	return append(b, '\n'), err
}

// topScanner reads a JSON object as a stream of bytes, holding nothing but
// the raw value of its top-level "id" (when short) and whether it has a
// top-level "method". It works on any prefix and never looks back.
type topScanner struct {
	depth       int
	inString    bool
	escaped     bool
	expectKey   bool
	capturing   bool // reading a key at depth 1
	key         []byte
	lastKey     string
	inID        bool // reading the value of "id"
	idRaw       []byte
	id          []byte
	idOverflow  bool
	method      bool
	keyOverflow bool
}

const maxIDBytes = 128

func (s *topScanner) feed(b []byte) {
	for _, c := range b {
		s.step(c)
	}
}

func (s *topScanner) step(c byte) {
	if s.inID && (s.inString || !(s.depth == 1 && (c == ',' || c == '}'))) {
		if len(s.idRaw) < maxIDBytes {
			s.idRaw = append(s.idRaw, c)
		} else {
			s.idOverflow = true
		}
	}
	if s.inString {
		s.stringByte(c)
		return
	}
	switch c {
	case '"':
		s.inString = true
		if s.depth == 1 && s.expectKey {
			s.capturing, s.key, s.keyOverflow = true, s.key[:0], false
		}
	case '{', '[':
		s.depth++
		if s.depth == 1 {
			s.expectKey = c == '{'
		}
	case '}', ']':
		if s.depth == 1 {
			s.endValue()
		}
		s.depth--
	case ':':
		if s.depth == 1 {
			s.expectKey = false
			s.inID = s.lastKey == "id"
			s.idRaw = s.idRaw[:0]
			s.method = s.method || s.lastKey == "method"
		}
	case ',':
		if s.depth == 1 {
			s.endValue()
			s.expectKey = true
		}
	}
}

func (s *topScanner) stringByte(c byte) {
	switch {
	case s.escaped:
		s.escaped = false
	case c == '\\':
		s.escaped = true
	case c == '"':
		s.inString = false
		if s.capturing {
			s.capturing = false
			s.lastKey = string(s.key)
			if s.keyOverflow {
				s.lastKey = ""
			}
		}
		return
	}
	if s.capturing {
		if len(s.key) < 16 {
			s.key = append(s.key, c)
		} else {
			s.keyOverflow = true
		}
	}
}

func (s *topScanner) endValue() {
	if s.inID {
		s.inID = false
		if !s.idOverflow {
			s.id = append(s.id[:0], bytes.TrimSpace(s.idRaw)...)
		}
	}
}

// requestID returns the id found, or nil.
func (s *topScanner) requestID() *mcpgo.RequestId {
	if len(s.id) == 0 {
		return nil
	}
	var id mcpgo.RequestId
	if err := json.Unmarshal(s.id, &id); err != nil || id.IsNil() {
		return nil
	}
	return &id
}
