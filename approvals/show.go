package approvals

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/toolgate/toolgate/broker"
)

// How a request reads for people, the same in Slack and the CLI: its votes,
// and its preview as one headline and a text table of the (masked) sample.

// VoteLine says one vote in words: "user:ana@example.com approved via
// slack: reason".
func VoteLine(v broker.ApprovalVote) string {
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
func PreviewHeadline(p *broker.ApprovalPreview) string {
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
	case p.Image == broker.ImageAfter:
		fmt.Fprintf(&b, "; below: %s as they would be after the change", rows(n))
	case p.Image == broker.ImageBefore:
		fmt.Fprintf(&b, "; below: %s as they are before the change", rows(n))
	}
	if p.Truncated {
		b.WriteString(" (not every row is shown)")
	}
	if tol := p.Tolerance; tol != (broker.Tolerance{}) {
		fmt.Fprintf(&b, "; the approved run may change up to %s", tolerance(tol))
	}
	if p.Note != "" {
		b.WriteString("; " + p.Note)
	}
	return b.String()
}

func rows(n int) string {
	if n == 1 {
		return "1 row"
	}
	return strconv.Itoa(n) + " rows"
}

func tolerance(t broker.Tolerance) string {
	var parts []string
	if t.Rows > 0 {
		parts = append(parts, rows(int(t.Rows)))
	}
	if t.Percent > 0 {
		parts = append(parts, strconv.FormatFloat(t.Percent, 'f', -1, 64)+"%")
	}
	return strings.Join(parts, " or ") + " more or fewer"
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

// SampleTable renders a sample as aligned text: a line of column names,
// then one line per row, at most maxRows of them, each cell cut to width
// characters. An entry that is not an object (the body of an HTTP preview)
// is one line of compact JSON cut to width × 4 characters.
func SampleTable(sample json.RawMessage, maxRows, width int) []string {
	items := sampleEntries(sample)
	if len(items) > maxRows {
		items = items[:maxRows]
	}
	var objects []orderedRow
	var lines []string
	for _, it := range items {
		row, ok := decodeRow(it)
		if !ok {
			var c bytes.Buffer
			if json.Compact(&c, it) != nil {
				c.Reset()
				c.Write(it)
			}
			lines = append(lines, cut(c.String(), width*4))
			continue
		}
		objects = append(objects, row)
	}
	if len(objects) == 0 {
		return lines
	}
	return append(lines, table(objects, width)...)
}

// table aligns rows under the union of their column names, in the order
// they first appear.
func table(objects []orderedRow, width int) []string {
	var cols []string
	seen := map[string]bool{}
	for _, r := range objects {
		for _, c := range r.names {
			if !seen[c] {
				seen[c] = true
				cols = append(cols, c)
			}
		}
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	head := make([]string, len(cols))
	for i, c := range cols {
		head[i] = cut(c, width)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range objects {
		cells := make([]string, len(cols))
		for i, c := range cols {
			cells[i] = cut(r.values[c], width)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	_ = tw.Flush()
	return strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
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
