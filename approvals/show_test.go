package approvals_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/toolgate/toolgate/approvals"
	"github.com/toolgate/toolgate/broker"
)

func TestSampleTable(t *testing.T) {
	sample := json.RawMessage(`[{"id":1,"name":"Ada\nLovelace\u001b[31m","ssn":null},{"id":2,"name":"a-very-long-name-indeed","extra":{"k":[1,2]}},{"id":3}]`)
	got := approvals.SampleTable(sample, 2, 10)
	want := []string{
		"id  name        ssn   extra",
		"1   Ada Lovel…  NULL  ",
		"2   a-very-lo…        {\"k\":[1,2…",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SampleTable =\n%q\nwant\n%q", got, want)
	}
	if got := approvals.SampleTable(json.RawMessage(`null`), 5, 10); len(got) != 0 {
		t.Errorf("empty sample = %q", got)
	}
}

func TestPreviewHeadline(t *testing.T) {
	for _, tc := range []struct {
		p    *broker.ApprovalPreview
		want string
	}{
		{nil, "no preview"},
		{&broker.ApprovalPreview{Unavailable: "the tool opts out: x"}, "no preview: the tool opts out: x"},
		{&broker.ApprovalPreview{Preview: broker.Preview{RowsAffected: 0}}, "rows affected: 0"},
		{&broker.ApprovalPreview{Preview: broker.Preview{RowsAffected: 1, Sample: json.RawMessage(`[{"id":1}]`), Image: broker.ImageBefore}},
			"rows affected: 1; below: 1 row as they are before the change"},
		{&broker.ApprovalPreview{Preview: broker.Preview{RowsAffected: 30, Sample: json.RawMessage(`[{"id":1},{"id":2}]`), Image: broker.ImageAfter, Truncated: true, Note: "n"},
			Tolerance: broker.Tolerance{Rows: 2, Percent: 5}},
			"rows affected: 30; below: 2 rows as they would be after the change (not every row is shown); the approved run may change up to 2 rows or 5% more or fewer; n"},
		{&broker.ApprovalPreview{Preview: broker.Preview{RowsAffected: -1, Sample: json.RawMessage(`[{"id":"o-1"}]`), Image: broker.ImageBefore}},
			"rows affected: unknown; below: the answer of the tool's preview request, before the change"},
	} {
		if got := approvals.PreviewHeadline(tc.p); got != tc.want {
			t.Errorf("PreviewHeadline(%+v) = %q, want %q", tc.p, got, tc.want)
		}
	}
}
