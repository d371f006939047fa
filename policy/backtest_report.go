package policy

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
)

// WriteText prints the report for a person: one line per change (rule
// paths relative to their graph), then a summary line.
func (r *BacktestReport) WriteText(w io.Writer) error {
	if len(r.Changes) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tRECORD\tGRAPH\tNODE\tTOOL\tBEFORE\tAFTER\tREASON")
		for _, c := range r.Changes {
			short := strings.NewReplacer("graphs."+c.Graph+".", "")
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Time.UTC().Format("2006-01-02T15:04:05Z"), c.Record,
				dash(c.Graph), dash(c.Node), dash(c.Tool), c.Before.text(short), c.After.text(short), short.Replace(c.Reason))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if _, err := io.WriteString(w, "\n"); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w, r.Summary())
	return err
}

// Summary is the report in one line: what was evaluated and how the
// changes break down by transition.
func (r *BacktestReport) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d evaluated, %d changed", r.Evaluated, r.Changed)
	if ts := r.transitions(); len(ts) > 0 {
		b.WriteString(" (" + strings.Join(ts, ", ") + ")")
	}
	fmt.Fprintf(&b, ", %d unknown, %d skipped", r.Unknown, r.Skipped)
	return b.String()
}

// transitions counts the changes by "before -> after", most frequent first.
func (r *BacktestReport) transitions() []string {
	counts := map[string]int{}
	for _, c := range r.Changes {
		if c.After.Decision == VerdictUnknown {
			continue
		}
		from, to := c.Before.kind(), c.After.kind()
		key := from + " -> " + to
		if from == to {
			key = "rule change"
		}
		counts[key]++
	}
	keys := slices.Sorted(maps.Keys(counts))
	sort.SliceStable(keys, func(i, j int) bool { return counts[keys[i]] > counts[keys[j]] })
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if k == "rule change" && counts[k] > 1 {
			out = append(out, fmt.Sprintf("%d rule changes", counts[k]))
			continue
		}
		out = append(out, fmt.Sprintf("%d %s", counts[k], k))
	}
	return out
}

// kind is the decision with its refusal code, without the rule.
func (v Verdict) kind() string {
	if v.Code != "" {
		return v.Decision + " (" + v.Code + ")"
	}
	return v.Decision
}

func (v Verdict) text(short *strings.Replacer) string {
	s := v.Decision
	if v.Rule != "" {
		s += " " + short.Replace(v.Rule)
	}
	if v.Code != "" {
		s += " [" + v.Code + "]"
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
