package console_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/toolgate/toolgate/broker"
)

// hostileSample is a masked preview sample whose cells hold markup: the
// pages must show it as text.
const hostileSample = `[{"id":1,"card":"************4242","note":"<script>alert(1)</script>"},` +
	`{"id":2,"card":"************4444","note":"<img src=x onerror=alert(2)>"}]`

// TestInboxShowsThePreview: a held write's card shows its effect preview
// as approvers see it in Slack and the CLI (the same headline: rows
// affected and which image the sample is) and the masked sample as a
// table with column headers and a caption; markup in a cell is text, in
// the page, the live list and the request's own page. A request without a
// preview says why.
func TestInboxShowsThePreview(t *testing.T) {
	e := newEnv(t)
	pv := &broker.ApprovalPreview{Preview: broker.Preview{RowsAffected: 2, Sample: json.RawMessage(hostileSample), Image: broker.ImageAfter, Truncated: true}}
	held := e.await(t, refund("run-pv", 250, pv), broker.ApprovalPending)
	opted := e.await(t, refund("run-opt", 300, &broker.ApprovalPreview{Unavailable: "the tool opts out: refunds are not previewed", Code: broker.CodePreviewUnavailable}), broker.ApprovalPending)
	none := e.hold(t, "run-none", 400)
	b := e.browser(t)
	inbox := b.signIn(keyApprover)
	_, live := b.get("/console/inbox/live")
	_, detail := b.get("/console/approvals/" + held)
	for name, page := range map[string]string{"inbox": inbox, "live inbox": live, "request page": detail} {
		for _, want := range []string{
			`<caption class="preview-headline">` + broker.PreviewHeadline(pv) + `</caption>`,
			"rows affected: 2; below: 2 rows as they would be after the change (not every row is shown)",
			`<th scope="col">id</th><th scope="col">card</th><th scope="col">note</th>`,
			`<td>************4242</td>`, `<td>************4444</td>`,
			`<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>`, `<td>&lt;img src=x onerror=alert(2)&gt;</td>`,
		} {
			if !strings.Contains(page, want) {
				t.Errorf("the %s does not show %q", name, want)
			}
		}
		if strings.Contains(page, "<script>alert") || strings.Contains(page, "<img") || strings.Count(page, "<script") > strings.Count(page, `<script src="/console/static/console.js"`) {
			t.Errorf("the %s holds markup from the preview:\n%s", name, page)
		}
	}
	for id, want := range map[string]string{opted: "no preview: the tool opts out: refunds are not previewed", none: "no preview"} {
		_, page := b.get("/console/approvals/" + id)
		if !strings.Contains(page, `<p class="preview-headline">`+want+`</p>`) || strings.Contains(page, "<caption") {
			t.Errorf("request %s does not say %q", id, want)
		}
	}
}

// TestHistorySaysStale: a request approved for a write whose run found
// other data than the preview (approval_stale, rolled back) is shown in
// the history and on its page as stale, saying that it no longer counts
// and why, with the preview its approvers saw.
func TestHistorySaysStale(t *testing.T) {
	e := newEnv(t)
	pv := &broker.ApprovalPreview{Preview: broker.Preview{RowsAffected: 2, Sample: json.RawMessage(hostileSample), Image: broker.ImageBefore}}
	req := refund("run-stale", 250, pv)
	id := e.await(t, req, broker.ApprovalPending)
	b := e.browser(t)
	token := csrf(t, b.signIn(keyApprover))
	if resp, _ := b.do(http.MethodPost, "/console/approvals/"+id+"/approve", url.Values{"csrf": {token}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("approve: %d", resp.StatusCode)
	}
	e.await(t, req, broker.ApprovalApproved) // the call claims it and runs
	ranStale := broker.Errorf(broker.CodeApprovalStale, "the data changed since it was approved: 2 rows previewed, 3 now; nothing was changed; ask again")
	if err := e.svc.Complete(context.Background(), id, nil, ranStale); err != nil {
		t.Fatal(err)
	}
	if st := e.status(t, id); st != broker.ApprovalStale {
		t.Fatalf("status %s, want stale", st)
	}
	want := "no longer counts: the data changed since it was approved: 2 rows previewed, 3 now; nothing was changed; ask again"
	_, hist := b.get("/console/history?status=stale")
	_, detail := b.get("/console/approvals/" + id)
	if !strings.Contains(hist, id) || !strings.Contains(hist, "<td>"+want+"</td>") || !strings.Contains(hist, "<td>"+broker.PreviewHeadline(pv)+"</td>") {
		t.Errorf("the history does not say the request ran stale:\n%s", hist)
	}
	if !strings.Contains(detail, `<dd class="outcome">`+want+`</dd>`) || !strings.Contains(detail, "rows affected: 2; below: 2 rows as they are before the change") {
		t.Errorf("the request's page does not say it ran stale:\n%s", detail)
	}
}
