package recordings

import (
	"bytes"
	"errors"
	"slices"

	"github.com/toolgate/toolgate/broker"
)

// Canonical returns the canonical JSON of ev, the bytes its record hashes:
// ev with Time in UTC, encoded as encoding/json encodes it (strings escaped
// as encoding/json escapes them, HTML characters included; raw arguments
// and results compacted), with the members of every object sorted by their
// encoded keys, byte-wise. Numbers and strings are kept exactly as encoded;
// there is no insignificant whitespace. The encoder is written by hand for
// broker.Event; TestCanonicalMatchesReference holds it to that definition.
func Canonical(ev broker.Event) ([]byte, error) {
	ev.Time = ev.Time.UTC()
	out, err := appendEvent(make([]byte, 0, 384+len(ev.Args)+len(ev.Result)), &ev)
	if err != nil {
		return nil, err
	}
	return out, nil
}

var errSyntax = errors.New("canonical: malformed JSON")

// member is one object member: its encoded key and its value, in src.
type member struct{ key, val []byte }

// sortValue appends the canonical form of the value at src[i:] to dst and
// returns the index after it. src is compact JSON from encoding/json.
func sortValue(dst, src []byte, i int) ([]byte, int, error) {
	if i >= len(src) {
		return dst, i, errSyntax
	}
	switch src[i] {
	case '{':
		// Most objects have few members: keep them off the heap.
		var buf [24]member
		members := buf[:0]
		sorted := true
		i++
		if i < len(src) && src[i] == '}' {
			return append(dst, '{', '}'), i + 1, nil
		}
		for {
			ks := i
			ke, err := skipString(src, i)
			if err != nil {
				return dst, i, err
			}
			if ke >= len(src) || src[ke] != ':' {
				return dst, i, errSyntax
			}
			vs := ke + 1
			ve, err := skipValue(src, vs)
			if err != nil {
				return dst, i, err
			}
			if n := len(members); n > 0 && sorted && bytes.Compare(members[n-1].key, src[ks:ke]) > 0 {
				sorted = false
			}
			members = append(members, member{src[ks:ke], src[vs:ve]})
			if ve >= len(src) {
				return dst, ve, errSyntax
			}
			i = ve + 1
			if src[ve] == '}' {
				break
			}
			if src[ve] != ',' {
				return dst, ve, errSyntax
			}
		}
		if !sorted {
			slices.SortStableFunc(members, func(a, b member) int { return bytes.Compare(a.key, b.key) })
		}
		dst = append(dst, '{')
		for n, m := range members {
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, m.key...)
			dst = append(dst, ':')
			var err error
			if dst, _, err = sortValue(dst, m.val, 0); err != nil {
				return dst, i, err
			}
		}
		return append(dst, '}'), i, nil
	case '[':
		dst = append(dst, '[')
		i++
		if i < len(src) && src[i] == ']' {
			return append(dst, ']'), i + 1, nil
		}
		for {
			var err error
			if dst, i, err = sortValue(dst, src, i); err != nil {
				return dst, i, err
			}
			if i >= len(src) {
				return dst, i, errSyntax
			}
			c := src[i]
			i++
			if c == ']' {
				return append(dst, ']'), i, nil
			}
			if c != ',' {
				return dst, i, errSyntax
			}
			dst = append(dst, ',')
		}
	default:
		end, err := skipValue(src, i)
		if err != nil {
			return dst, i, err
		}
		return append(dst, src[i:end]...), end, nil
	}
}

// skipValue returns the index after the value at src[i:].
func skipValue(src []byte, i int) (int, error) {
	if i >= len(src) {
		return i, errSyntax
	}
	switch src[i] {
	case '"':
		return skipString(src, i)
	case '{', '[':
		depth := 0
		for i < len(src) {
			switch src[i] {
			case '"':
				end, err := skipString(src, i)
				if err != nil {
					return i, err
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
			i++
		}
		return i, errSyntax
	default: // number, true, false, null
		for i < len(src) {
			switch src[i] {
			case ',', '}', ']':
				return i, nil
			}
			i++
		}
		return i, nil
	}
}

// skipString returns the index after the string starting at src[i].
func skipString(src []byte, i int) (int, error) {
	if i >= len(src) || src[i] != '"' {
		return i, errSyntax
	}
	for i++; i < len(src); i++ {
		switch src[i] {
		case '\\':
			i++
		case '"':
			return i + 1, nil
		}
	}
	return i, errSyntax
}
