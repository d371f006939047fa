package approvals

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/toolgate/toolgate/broker"
)

// SampleTable renders a sample as aligned text for the text channels
// (Slack, the CLI): the entries that are not objects first, one line of
// compact JSON each, then a line of column names and one line per row, at
// most maxRows entries in all, each cell cut to width characters. The
// words are broker.SampleGridOf's; this only aligns them.
func SampleTable(sample json.RawMessage, maxRows, width int) []string {
	g := broker.SampleGridOf(sample, maxRows, width)
	lines := g.Other
	if len(g.Columns) == 0 {
		return lines
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(g.Columns, "\t"))
	for _, cells := range g.Rows {
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	_ = tw.Flush()
	return append(lines, strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")...)
}
