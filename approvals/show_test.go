package approvals_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/toolgate/toolgate/approvals"
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
