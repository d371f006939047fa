package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// previewSpec is fakeSpec with a preview plan: a dry run of the call's own
// statement with a declared tolerance.
type previewSpec struct{ fakeSpec }

func (s previewSpec) PreviewPlan(args map[string]any) (PreviewPlan, error) {
	op, err := s.Operation(args)
	return PreviewPlan{Op: op, Tolerance: Tolerance{Rows: 1}}, err
}

// previewExec is fakeExec that previews (answering preview, or failing
// with previewErr) and runs matched (keeping what it was asked to match).
type previewExec struct {
	*fakeExec
	preview    Preview
	previewErr error
	limit      int
	comment    map[string]string
	matched    []Expectation
}

func (e *previewExec) Preview(_ context.Context, op Operation, limit int) (Preview, error) {
	e.limit, e.comment = limit, op.Comment
	return e.preview, e.previewErr
}

func (e *previewExec) ExecuteExpecting(ctx context.Context, op Operation, want Expectation) (Output, error) {
	e.matched = append(e.matched, want)
	return e.Execute(ctx, op)
}

// heldApprovals takes the preview of every request, as the approval gate
// does when it makes one, and answers out.
type heldApprovals struct {
	out   ApprovalOutcome
	taken []ApprovalPreview
}

func (a *heldApprovals) Await(ctx context.Context, req ApprovalRequest) (ApprovalOutcome, error) {
	if req.Preview != nil {
		a.taken = append(a.taken, req.Preview(ctx))
	}
	return a.out, nil
}

// previewEnv is env whose refund tool previews on a previewing target.
func previewEnv(t *testing.T, out ApprovalOutcome, mod func(*Config)) (*env, *previewExec, *heldApprovals) {
	t.Helper()
	exec := &previewExec{}
	held := &heldApprovals{out: out}
	e := newEnv(t, func(c *Config) {
		c.Live.Catalog.(fakeCatalog)["refund"].Spec = previewSpec{fakeSpec{args: []string{"customer_id", "amount"}}}
		exec.fakeExec = c.Targets["db"].(*fakeExec)
		c.Targets["db"] = exec
		c.Approvals = held
		if mod != nil {
			mod(c)
		}
	})
	return e, exec, held
}

func (e *env) refund(t *testing.T) (Result, error) {
	t.Helper()
	return e.b.Call(context.Background(), Call{Caller: e.caller(t, "tgk_good", "billing"), Tool: "refund",
		Args: json.RawMessage(`{"customer_id":1,"amount":500}`)})
}

func TestPreviewTakenMaskedAndCapped(t *testing.T) {
	var rows []string
	for i := range 100 {
		rows = append(rows, fmt.Sprintf(`{"id":%d,"card":"4242424242424242","pad":"%s"}`, i, strings.Repeat("x", 60)))
	}
	e, exec, held := previewEnv(t, ApprovalOutcome{ID: "ap_1", Status: ApprovalPending}, func(c *Config) { c.PreviewRows, c.PreviewBytes = 100, 2048 })
	exec.preview = Preview{RowsAffected: 100, Sample: json.RawMessage("[" + strings.Join(rows, ",") + "]"), Image: ImageAfter}
	if res, err := e.refund(t); err != nil || res.Pending == nil {
		t.Fatalf("held call = %+v, %v", res, err)
	}
	if len(held.taken) != 1 || exec.limit != 100 || exec.comment["run"] != "r1" || exec.count() != 0 {
		t.Fatalf("previews taken %d, limit %d, comment %v, executions %d", len(held.taken), exec.limit, exec.comment, exec.count())
	}
	p := held.taken[0]
	var sample []map[string]any
	if err := json.Unmarshal(p.Sample, &sample); err != nil {
		t.Fatal(err)
	}
	if len(p.Sample) > 2048 || len(sample) == 0 || len(sample) >= 100 || !p.Truncated || p.RowsAffected != 100 ||
		p.Note != fmt.Sprintf("the sample is cut to %d of its 100 entries to stay within 2048 bytes", len(sample)) {
		t.Fatalf("capped preview: %d bytes, %d rows, %+v", len(p.Sample), len(sample), p)
	}
	if strings.Contains(string(p.Sample), "4242424242424242") || sample[0]["card"] != "************4242" {
		t.Errorf("sample not masked with the tool's mask: %s", p.Sample[:120])
	}
	if !p.Intact() || p.Tolerance != (Tolerance{Rows: 1}) {
		t.Errorf("hash %q (sum %q), tolerance %+v", p.Hash, p.Sum(), p.Tolerance)
	}
}

func TestPreviewFailureSaysWhy(t *testing.T) {
	for name, tc := range map[string]struct {
		err  error
		code Code
		want string
	}{
		"timeout": {NoPreview(CodeTimeout, "the preview ran longer than its 5s limit on target db (card 4242424242424242)"), CodeTimeout,
			"the preview ran longer than its 5s limit on target db (card ****)"},
		"foreign": {errors.New("socket closed"), CodeInternal, "internal error (incident "},
	} {
		t.Run(name, func(t *testing.T) {
			e, exec, held := previewEnv(t, ApprovalOutcome{ID: "ap_1", Status: ApprovalPending}, nil)
			exec.previewErr = tc.err
			if res, err := e.refund(t); err != nil || res.Pending == nil {
				t.Fatalf("a failed preview blocked the request: %+v, %v", res, err)
			}
			p := held.taken[0]
			if p.Code != tc.code || !strings.HasPrefix(p.Unavailable, tc.want) || p.Sample != nil {
				t.Errorf("preview = %+v, want %s %q", p, tc.code, tc.want)
			}
			if _, ok := p.Expectation(); ok || !p.Intact() {
				t.Errorf("an unavailable preview sets what the run must match")
			}
		})
	}
}

func TestApprovedRunMatchesItsPreview(t *testing.T) {
	pv := Preview{RowsAffected: 2, Sample: json.RawMessage(`[{"id":1},{"id":2}]`), Image: ImageAfter}
	pv.Hash = pv.Sum()
	approved := ApprovalOutcome{ID: "ap_1", Status: ApprovalApproved, Preview: &ApprovalPreview{Preview: pv, Tolerance: Tolerance{Percent: 50}}}

	e, exec, _ := previewEnv(t, approved, nil)
	if _, err := e.refund(t); err != nil {
		t.Fatal(err)
	}
	if len(exec.matched) != 1 || exec.matched[0] != (Expectation{RowsAffected: 2, Tolerance: Tolerance{Percent: 50}}) {
		t.Fatalf("matched runs = %+v", exec.matched)
	}
	if ev := e.rec.last(t); ev.Detail["preview_rows"] != int64(2) || ev.Detail["preview_hash"] != pv.Hash {
		t.Errorf("the run's record = %+v", ev.Detail)
	}

	// A count it cannot match on: nothing runs.
	e, exec, _ = previewEnv(t, approved, nil)
	e.b.cfg.Targets["db"] = exec.fakeExec
	if _, err := e.refund(t); CodeOf(err) != CodeTargetUnavailable || exec.count() != 0 {
		t.Fatalf("run on a target that cannot match = %v, %d executions", err, exec.count())
	}

	// Without a count (an HTTP preview, none available) the run is plain.
	for _, p := range []*ApprovalPreview{{Preview: Preview{RowsAffected: -1}}, {Unavailable: "the tool opts out: x", Code: CodePreviewUnavailable}, nil} {
		if p != nil && p.Unavailable == "" {
			p.Hash = p.Sum()
		}
		e, exec, _ = previewEnv(t, ApprovalOutcome{ID: "ap_1", Status: ApprovalApproved, Preview: p}, nil)
		if _, err := e.refund(t); err != nil || len(exec.matched) != 0 || exec.count() != 1 {
			t.Errorf("preview %+v: %v, %d matched, %d runs", p, err, len(exec.matched), exec.count())
		}
	}
}

func TestApprovalPreviewJSON(t *testing.T) {
	pv := Preview{RowsAffected: 3, Sample: json.RawMessage(`[{"id":1}]`), Truncated: true, Image: ImageBefore, Note: "n"}
	pv.Hash = pv.Sum()
	for _, tc := range []struct {
		in   ApprovalPreview
		want string
	}{
		{ApprovalPreview{Preview: pv, Tolerance: Tolerance{Rows: 2}},
			`{"rows_affected":3,"sample":[{"id":1}],"truncated":true,"image":"before","note":"n","hash":"` + pv.Hash + `","tolerance":{"rows":2}}`},
		{ApprovalPreview{Preview: Preview{RowsAffected: 0}},
			`{"rows_affected":0,"sample":null,"truncated":false}`},
		{ApprovalPreview{Unavailable: "the tool opts out: side effects", Code: CodePreviewUnavailable},
			`{"unavailable":"the tool opts out: side effects","code":"preview_unavailable"}`},
	} {
		b, err := json.Marshal(tc.in)
		if err != nil || string(b) != tc.want {
			t.Errorf("marshal = %s, %v; want %s", b, err, tc.want)
		}
		var back ApprovalPreview
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if again, _ := json.Marshal(back); string(again) != tc.want {
			t.Errorf("round trip = %s; want %s", again, tc.want)
		}
	}
	tampered := ApprovalPreview{Preview: pv}
	tampered.RowsAffected = 4
	if tampered.Intact() {
		t.Error("a preview changed after hashing is intact")
	}
}

// noTools is an empty catalog.
type noTools struct{}

func (noTools) Lookup(string) (*Tool, bool) { return nil, false }
func (noTools) Tools() []*Tool              { return nil }

// cellMasker masks column note of table promo, and cards anywhere.
type cellMasker struct{ fakeMasker }

func (cellMasker) MaskCell(_, column string, v []byte) ([]byte, bool) {
	if column == "promo.note" {
		return []byte("[REDACTED]"), true
	}
	if column == "promo.gone" {
		return nil, true
	}
	return v, false
}

func TestStatementPreviewMaskedByColumn(t *testing.T) {
	s, err := newSnapshot(Live{Catalog: noTools{}, Policy: fakePolicy{}, Masker: cellMasker{}, Routes: []Route{{Kind: KindSQL, Target: "crm"}}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	sc := StatementCall{Target: "crm", Statement: Statement{Kind: KindSQL, Tables: []string{"public.promo"}}}
	doc := []byte(`{"rows":[{"z":1,"note":"vip","gone":{"a":1},"card":"4242424242424242","n":null}]}`)
	out, err := maskStatementRows(s, sc, doc)
	want := `{"rows":[{"z":1,"note":"[REDACTED]","gone":null,"card":"************4242","n":null}]}`
	if err != nil || string(out) != want {
		t.Errorf("masked = %s, %v; want %s", out, err, want)
	}
	// A route the snapshot does not serve: withheld.
	sc.Target = "other"
	if _, err := maskStatementRows(s, sc, doc); !errors.Is(err, errNoRoute) {
		t.Errorf("unserved route: %v", err)
	}
}
