package broker

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestSampleGridOf: columns are the union of the objects' names in the
// order they appear, missing cells empty, values as text on one line and
// cut; an entry that is not an object is compact JSON; markup is kept as
// text for the channel to escape.
func TestSampleGridOf(t *testing.T) {
	sample := json.RawMessage(`[ "body", {"id":1,"note":"<script>alert(1)</script>","ssn":null}, {"id":2,"extra":{"k": [1, 2]}} ]`)
	got := SampleGridOf(sample, 5, 12)
	want := SampleGrid{
		Columns: []string{"id", "note", "ssn", "extra"},
		Rows:    [][]string{{"1", "<script>ale…", "NULL", ""}, {"2", "", "", `{"k":[1,2]}`}},
		Other:   []string{`"body"`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SampleGridOf =\n%#v\nwant\n%#v", got, want)
	}
	if got := SampleGridOf(sample, 1, 12); len(got.Other) != 1 || got.Rows != nil {
		t.Errorf("one entry = %#v", got)
	}
	if got := SampleGridOf(json.RawMessage(`{"id":1}`), 5, 12); !reflect.DeepEqual(got, SampleGrid{}) {
		t.Errorf("not an array = %#v", got)
	}
}

func TestPreviewHeadline(t *testing.T) {
	for _, tc := range []struct {
		p    *ApprovalPreview
		want string
	}{
		{nil, "no preview"},
		{&ApprovalPreview{Unavailable: "the tool opts out: x"}, "no preview: the tool opts out: x"},
		{&ApprovalPreview{Preview: Preview{RowsAffected: 0}}, "rows affected: 0"},
		{&ApprovalPreview{Preview: Preview{RowsAffected: 1, Sample: json.RawMessage(`[{"id":1}]`), Image: ImageBefore}},
			"rows affected: 1; below: 1 row as they are before the change"},
		{&ApprovalPreview{Preview: Preview{RowsAffected: 30, Sample: json.RawMessage(`[{"id":1},{"id":2}]`), Image: ImageAfter, Truncated: true, Note: "n"},
			Tolerance: Tolerance{Rows: 2, Percent: 5}},
			"rows affected: 30; below: 2 rows as they would be after the change (not every row is shown); the approved run may change up to 2 rows or 5% more or fewer; n"},
		{&ApprovalPreview{Preview: Preview{RowsAffected: -1, Sample: json.RawMessage(`[{"id":"o-1"}]`), Image: ImageBefore}},
			"rows affected: unknown; below: the answer of the tool's preview request, before the change"},
	} {
		if got := PreviewHeadline(tc.p); got != tc.want {
			t.Errorf("PreviewHeadline(%+v) = %q, want %q", tc.p, got, tc.want)
		}
	}
}
