package broker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// How an approval request reads for people, the same in every channel
// (Slack, the CLI, the console): its votes in words, and its preview as one
// headline and a grid of the (masked) sample. Channels only lay these out
// (mrkdwn, aligned text, an HTML table); none words a request itself.

// VoteLine says one vote in words: "user:ana@example.com approved via
// slack: reason".
func VoteLine(v ApprovalVote) string {
	verb := "approved"
	if !v.Approve {
		verb = "denied"
	}
	line := fmt.Sprintf("%s %s via %s", v.Approver, verb, v.Channel)
	if v.Reason != "" {
		line += ": " + v.Reason
	}
	return line
}

// PreviewHeadline says in one line what a request's preview shows: the
// rows affected, which image the sample is, the tolerance, or why there is
// no preview.
func PreviewHeadline(p *ApprovalPreview) string {
	switch {
	case p == nil:
		return "no preview"
	case p.Unavailable != "":
		return "no preview: " + p.Unavailable
	}
	var b strings.Builder
	if p.RowsAffected < 0 {
		b.WriteString("rows affected: unknown")
	} else {
		fmt.Fprintf(&b, "rows affected: %d", p.RowsAffected)
	}
	n := len(sampleEntries(p.Sample))
	switch {
	case p.RowsAffected < 0 && n > 0:
		b.WriteString("; below: the answer of the tool's preview request, before the change")
	case p.Image == ImageAfter:
		fmt.Fprintf(&b, "; below: %s as they would be after the change", rowCount(int64(n)))
	case p.Image == ImageBefore:
		fmt.Fprintf(&b, "; below: %s as they are before the change", rowCount(int64(n)))
	}
	if p.Truncated {
		b.WriteString(" (not every row is shown)")
	}
	if tol := p.Tolerance; tol != (Tolerance{}) {
		fmt.Fprintf(&b, "; the approved run may change up to %s", toleranceWords(tol))
	}
	if p.Note != "" {
		b.WriteString("; " + p.Note)
	}
	return b.String()
}

func toleranceWords(t Tolerance) string {
	var parts []string
	if t.Rows > 0 {
		parts = append(parts, rowCount(t.Rows))
	}
	if t.Percent > 0 {
		parts = append(parts, strconv.FormatFloat(t.Percent, 'f', -1, 64)+"%")
	}
	return strings.Join(parts, " or ") + " more or fewer"
}

// SampleGrid is a preview's sample as people read it. Columns are the
// member names of the sample's objects in the order they first appear,
// Rows one per object, a cell per column ("" when the object lacks it):
// strings as their text, null as "NULL", anything else as compact JSON.
// Other holds the entries that are not objects (the body of an HTTP
// preview), each as compact JSON. Every text is on one line (control
// characters become spaces) and cut to a width (ending "…" when cut).
// The texts are the masked values as they are: a channel escapes them for
// its own format.
type SampleGrid struct {
	Columns []string
	Rows    [][]string
	Other   []string
}

// SampleGridOf reads sample (a preview's JSON array) into a SampleGrid of at most
// maxRows entries, names and cells cut to width characters and other
// entries to width × 4; it is empty when the sample is empty or not an
// array.
func SampleGridOf(sample json.RawMessage, maxRows, width int) SampleGrid {
	items := sampleEntries(sample)
	if len(items) > maxRows {
		items = items[:maxRows]
	}
	var g SampleGrid
	var objects []orderedRow
	for _, it := range items {
		row, ok := decodeRow(it)
		if !ok {
			var c bytes.Buffer
			if json.Compact(&c, it) != nil {
				c.Reset()
				c.Write(it)
			}
			g.Other = append(g.Other, cut(c.String(), width*4))
			continue
		}
		objects = append(objects, row)
	}
	seen := map[string]bool{}
	var cols []string
	for _, r := range objects {
		for _, c := range r.names {
			if !seen[c] {
				seen[c] = true
				cols = append(cols, c)
			}
		}
	}
	for _, c := range cols {
		g.Columns = append(g.Columns, cut(c, width))
	}
	for _, r := range objects {
		cells := make([]string, len(cols))
		for i, c := range cols {
			cells[i] = cut(r.values[c], width)
		}
		g.Rows = append(g.Rows, cells)
	}
	return g
}

// sampleEntries splits a sample (a JSON array) into its entries; nil when
// it is empty or not an array.
func sampleEntries(sample json.RawMessage) []json.RawMessage {
	var items []json.RawMessage
	if len(sample) == 0 || json.Unmarshal(sample, &items) != nil {
		return nil
	}
	return items
}

// orderedRow is a JSON object's members as text, in their order.
type orderedRow struct {
	names  []string
	values map[string]string
}

// decodeRow reads a JSON object into an orderedRow: strings as their text,
// null as "NULL", anything else as compact JSON.
func decodeRow(obj json.RawMessage) (orderedRow, bool) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return orderedRow{}, false
	}
	r := orderedRow{values: map[string]string{}}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return orderedRow{}, false
		}
		name, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return orderedRow{}, false
		}
		r.names = append(r.names, name)
		r.values[name] = cellText(v)
	}
	return r, true
}

func cellText(v json.RawMessage) string {
	if bytes.Equal(v, []byte("null")) {
		return "NULL"
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	var c bytes.Buffer
	if json.Compact(&c, v) != nil {
		return string(v)
	}
	return c.String()
}

// cut shortens s to at most n characters (ending "…" when cut) on one
// line: control characters (newlines, tabs) become spaces.
func cut(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	runes := []rune(s)
	return string(runes[:max(0, n-1)]) + "…"
}

// StaleLine says that a stale request no longer counts, and why: its rule
// changed, or its call ran on data that no longer matched the preview and
// was rolled back (reason, as the request stored it).
func StaleLine(reason string) string {
	if reason == "" {
		return "no longer counts"
	}
	return "no longer counts: " + reason
}
