package broker_test

import (
	"encoding/json"
	"errors"
	"regexp"
	"testing"

	"github.com/toolgate/toolgate/broker"
)

func TestExpectationAllows(t *testing.T) {
	for _, tc := range []struct {
		want broker.Expectation
		n    int64
		ok   bool
	}{
		{broker.Expectation{RowsAffected: 3}, 3, true},
		{broker.Expectation{RowsAffected: 3}, 4, false},
		{broker.Expectation{RowsAffected: 3}, 2, false},
		{broker.Expectation{RowsAffected: 0}, 0, true},
		{broker.Expectation{RowsAffected: 3, Tolerance: broker.Tolerance{Rows: 1}}, 4, true},
		{broker.Expectation{RowsAffected: 3, Tolerance: broker.Tolerance{Rows: 1}}, 2, true},
		{broker.Expectation{RowsAffected: 3, Tolerance: broker.Tolerance{Rows: 1}}, 5, false},
		// 10% of 25 is 2.5, rounded down: 2.
		{broker.Expectation{RowsAffected: 25, Tolerance: broker.Tolerance{Percent: 10}}, 27, true},
		{broker.Expectation{RowsAffected: 25, Tolerance: broker.Tolerance{Percent: 10}}, 28, false},
		// The larger allowance wins.
		{broker.Expectation{RowsAffected: 25, Tolerance: broker.Tolerance{Rows: 5, Percent: 10}}, 30, true},
		{broker.Expectation{RowsAffected: 0, Tolerance: broker.Tolerance{Percent: 50}}, 1, false},
		// An unknown previewed count matches nothing.
		{broker.Expectation{RowsAffected: -1, Tolerance: broker.Tolerance{Rows: 100}}, 0, false},
	} {
		if got := tc.want.Allows(tc.n); got != tc.ok {
			t.Errorf("%+v.Allows(%d) = %v, want %v", tc.want, tc.n, got, tc.ok)
		}
	}
}

func TestStaleError(t *testing.T) {
	err := broker.StaleError(1, 7)
	if err.Code != broker.CodeApprovalStale || !errors.Is(err, broker.ErrApprovalStale) {
		t.Errorf("code %s", err.Code)
	}
	if want := "the data changed since it was approved: 1 row previewed, 7 now; nothing was changed; ask again"; err.Message != want {
		t.Errorf("message %q, want %q", err.Message, want)
	}
	np := broker.NoPreview(broker.CodePreviewUnavailable, "the tool opts out: %s", "it sends mail")
	if np.Error() != "preview_unavailable: no preview available: the tool opts out: it sends mail" {
		t.Errorf("NoPreview = %q", np.Error())
	}
}

func TestPreviewSum(t *testing.T) {
	p := broker.Preview{RowsAffected: 2, Sample: json.RawMessage(`[{"id": 1}, {"id": 2}]`), Image: broker.ImageAfter}
	sum := p.Sum()
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(sum) {
		t.Fatalf("sum %q is not hex SHA-256", sum)
	}
	same := p
	same.Sample = json.RawMessage(`[{"id":1},{"id":2}]`)
	same.Hash = "ignored"
	if same.Sum() != sum {
		t.Error("whitespace or Hash changed the sum")
	}
	for name, change := range map[string]func(*broker.Preview){
		"count":     func(p *broker.Preview) { p.RowsAffected = 3 },
		"sample":    func(p *broker.Preview) { p.Sample = json.RawMessage(`[{"id":1}]`) },
		"truncated": func(p *broker.Preview) { p.Truncated = true },
		"image":     func(p *broker.Preview) { p.Image = broker.ImageBefore },
		"note":      func(p *broker.Preview) { p.Note = "x" },
	} {
		q := p
		change(&q)
		if q.Sum() == sum {
			t.Errorf("changing the %s kept the sum", name)
		}
	}
}

// fakeMask masks like a tool rule on rows.#.card and body.card would.
func fakeMask(doc []byte) ([]byte, error) {
	var v map[string]any
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil, err
	}
	mask := func(x any) {
		if m, ok := x.(map[string]any); ok && m["card"] != nil {
			m["card"] = "****4242"
		}
	}
	if rows, ok := v["rows"].([]any); ok {
		for _, r := range rows {
			mask(r)
		}
	}
	mask(v["body"])
	return json.Marshal(v)
}

func TestPreviewMasked(t *testing.T) {
	sqlOp := broker.Operation{SQL: &broker.SQLOperation{Statement: "UPDATE cards SET x = 1"}}
	p := broker.Preview{RowsAffected: 1, Sample: json.RawMessage(`[{"card":"4242424242424242","id":1}]`), Image: broker.ImageAfter}
	m, err := p.Masked(sqlOp, fakeMask)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Sample) != `[{"card":"****4242","id":1}]` {
		t.Errorf("masked sample %s", m.Sample)
	}
	if m.Hash != m.Sum() || m.Hash == p.Sum() {
		t.Error("the hash is not over the masked preview")
	}

	httpOp := broker.Operation{HTTP: &broker.HTTPOperation{Method: "GET", Path: "/orders/1"}}
	h := broker.Preview{RowsAffected: -1, Sample: json.RawMessage(`[{"card":"4242424242424242"}]`), Image: broker.ImageBefore}
	if m, err = h.Masked(httpOp, fakeMask); err != nil || string(m.Sample) != `[{"card":"****4242"}]` {
		t.Errorf("masked http sample %s, %v", m.Sample, err)
	}

	count := broker.Preview{RowsAffected: 4, Note: "only the row count"}
	if m, err = count.Masked(sqlOp, func([]byte) ([]byte, error) { return nil, errors.New("not called") }); err != nil || m.Sample != nil || m.Hash != count.Sum() {
		t.Errorf("count-only preview: %+v, %v", m, err)
	}
	if _, err := (broker.Preview{Sample: json.RawMessage(`{"not":"an array"}`)}).Masked(sqlOp, fakeMask); err == nil {
		t.Error("a sample that is not an array was accepted")
	}
	if _, err := p.Masked(sqlOp, func([]byte) ([]byte, error) { return nil, errors.New("mask failed") }); err == nil {
		t.Error("a masking failure was ignored")
	}
}
