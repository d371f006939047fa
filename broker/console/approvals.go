package console

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/door"
)

// card is one approval request as the pages show it.
type card struct {
	broker.ApprovalInfo
	Approved int
	// Decidable is set when the request is in the viewer's inbox: the
	// approvals service says it may approve it now.
	Decidable bool
	// Left says how long until it expires, for readers without scripts.
	Left string
	// Back is where the decision form returns to.
	Back string
	CSRF string
	// RunLink is set for auditors, who may open the run.
	RunLink bool
	// Effect is the request's effect preview as its approvers see it.
	Effect effect
	// Outcome says how a decided request ended: its reason, and for a
	// stale one that it no longer counts (its rule changed, or its call ran
	// on data that no longer matched the preview and was rolled back).
	Outcome string
}

// outcome says how a decided request ended.
func outcome(a broker.ApprovalInfo) string {
	if a.Status == broker.ApprovalStale {
		return broker.StaleLine(a.Reason)
	}
	return a.Reason
}

// effect is a request's effect preview as the pages show it: the headline
// and the masked sample's grid in the words every channel uses
// (broker.PreviewHeadline, broker.SampleGridOf). The templates escape
// every text in it; none is ever marked safe.
type effect struct {
	Headline string
	Grid     broker.SampleGrid
}

// Preview bounds of the pages: every row the request stored (its sample
// is capped when the request is made), each cell cut to a readable width.
const (
	effectRows  = 1000
	effectWidth = 200
)

func effectOf(p *broker.ApprovalPreview) effect {
	e := effect{Headline: broker.PreviewHeadline(p)}
	if p != nil && p.Unavailable == "" {
		e.Grid = broker.SampleGridOf(p.Sample, effectRows, effectWidth)
	}
	return e
}

// inboxData is the body of the inbox page and of its live fragment.
type inboxData struct {
	Cards   []card
	Version string
	Every   int
}

func (c *Console) cards(infos []broker.ApprovalInfo, v viewer, decidable bool, back string) []card {
	now := c.now()
	out := make([]card, 0, len(infos))
	for _, a := range infos {
		out = append(out, card{ApprovalInfo: a, Approved: approvedVotes(a.Votes), Decidable: decidable, Left: left(a.ExpiresAt, now),
			Back: back, CSRF: v.csrf, RunLink: v.auditor && a.Run != "", Effect: effectOf(a.Preview), Outcome: outcome(a)})
	}
	return out
}

// left says how long until t, in words.
func left(t, now time.Time) string {
	d := t.Sub(now).Round(time.Second)
	if d <= 0 {
		return "expired"
	}
	return "in " + d.String()
}

// inboxFor returns the viewer's inbox with a version that changes whenever
// a request comes, goes or gets a vote.
func (c *Console) inboxFor(r *http.Request, v viewer) (inboxData, error) {
	infos, err := c.cfg.Approvals.Inbox(r.Context(), v.principal())
	if err != nil {
		return inboxData{}, err
	}
	h := sha256.New()
	for _, a := range infos {
		fmt.Fprintf(h, "%s|%d|%s\n", a.ID, len(a.Votes), a.Status)
	}
	return inboxData{Cards: c.cards(infos, v, true, pathInbox), Version: hex.EncodeToString(h.Sum(nil)[:8]), Every: int(c.cfg.PollEvery.Milliseconds())}, nil
}

// inbox shows the pending requests the viewer may decide.
func (c *Console) inbox(w http.ResponseWriter, r *http.Request, v viewer) {
	d, err := c.inboxFor(r, v)
	if err != nil {
		c.refusal(w, r, v, err)
		return
	}
	c.renderFor(w, r, v, http.StatusOK, "inbox", page{Title: "Approvals inbox", Nav: "inbox", Body: d})
}

// inboxLive is the inbox list alone, which the page's script fetches to
// stay current.
func (c *Console) inboxLive(w http.ResponseWriter, r *http.Request, v viewer) {
	d, err := c.inboxFor(r, v)
	if err != nil {
		w.WriteHeader(door.Status(c.cfg.Reporter.Report(err).Code))
		return
	}
	var buf strings.Builder
	if err := c.pages.sets["inbox"].ExecuteTemplate(&buf, "inbox-list", d); err != nil {
		c.internal(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(buf.String()))
}

// approval shows one request the viewer may see, with the decision form
// when it is in the viewer's inbox.
func (c *Console) approval(w http.ResponseWriter, r *http.Request, v viewer) {
	id := r.PathValue("id")
	a, err := c.cfg.Approvals.Approval(r.Context(), v.principal(), id)
	if err != nil {
		c.refusal(w, r, v, err)
		return
	}
	decidable := false
	if a.Status == broker.ApprovalPending {
		inbox, err := c.cfg.Approvals.Inbox(r.Context(), v.principal())
		if err != nil {
			c.refusal(w, r, v, err)
			return
		}
		for _, p := range inbox {
			decidable = decidable || p.ID == id
		}
	}
	cs := c.cards([]broker.ApprovalInfo{a}, v, decidable, pathApprovals+url.PathEscape(id))
	c.renderFor(w, r, v, http.StatusOK, "approval", page{Title: "Approval " + id, Nav: "history", Body: cs[0]})
}

// maxReason caps a decision's reason, in bytes.
const maxReason = 2000

// decide records the viewer's vote through the approvals service, which
// enforces every approver rule (single use, never the requester, distinct
// people, expiry), and returns to the page the form came from.
func (c *Console) decide(w http.ResponseWriter, r *http.Request, v viewer) {
	id, verb := r.PathValue("id"), r.PathValue("verb")
	if verb != "approve" && verb != "deny" {
		c.errorPageFor(w, r, v, http.StatusNotFound, "Not found", "A request can only be approved or denied.")
		return
	}
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	back := localPath(r.PostFormValue("back"))
	if back == "" {
		back = pathInbox
	}
	if len(reason) > maxReason {
		c.sessions.setFlash(v.sessionID, flash{Text: "Nothing was decided: the reason is over " + strconv.Itoa(maxReason) + " bytes; shorten it.", Error: true})
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	st, err := c.cfg.Approvals.Decide(r.Context(), id, v.principal(), verb == "approve", reason, Channel)
	var e *broker.Error
	if err != nil {
		e = c.cfg.Reporter.Report(err)
	}
	c.sessions.setFlash(v.sessionID, decisionFlash(id, verb, st, e))
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// decisionFlash says what a vote did; e is the reported refusal, nil when
// the vote counted.
func decisionFlash(id, verb string, st broker.ApprovalStatus, e *broker.Error) flash {
	if e != nil {
		if e.Code == broker.CodeAuditUnavailable {
			return flash{Text: "Your vote on " + id + " was counted, but " + e.Message, Error: true}
		}
		return flash{Text: "Nothing was decided: " + e.Message, Error: true}
	}
	switch {
	case st == broker.ApprovalApproved:
		return flash{Text: "You approved " + id + ": the waiting call may run now."}
	case st == broker.ApprovalDenied:
		return flash{Text: "You denied " + id + ": the call will not run."}
	case verb == "approve":
		return flash{Text: "Your approval of " + id + " is counted; it still needs more approvers."}
	}
	return flash{Text: "Your vote on " + id + " is counted."}
}

// historyData is the body of the history page.
type historyData struct {
	Status, Graph, Tool, Since string
	Statuses                   []string
	Cards                      []card
	Error                      string
}

var approvalStatuses = []string{
	string(broker.ApprovalPending), string(broker.ApprovalApproved), string(broker.ApprovalDenied), string(broker.ApprovalExpired),
	string(broker.ApprovalConsumed), string(broker.ApprovalExecuting), string(broker.ApprovalCancelled), string(broker.ApprovalStale),
}

// history lists the requests the viewer may see, filtered by status,
// graph, tool and since.
func (c *Console) history(w http.ResponseWriter, r *http.Request, v viewer) {
	q := r.URL.Query()
	d := historyData{Status: q.Get("status"), Graph: strings.TrimSpace(q.Get("graph")), Tool: strings.TrimSpace(q.Get("tool")),
		Since: strings.TrimSpace(q.Get("since")), Statuses: approvalStatuses}
	f := broker.ApprovalFilter{Status: broker.ApprovalStatus(d.Status), Graph: d.Graph, Tool: d.Tool, Limit: 200}
	var err error
	if d.Status != "" && !slices.Contains(approvalStatuses, d.Status) {
		err = fmt.Errorf("unknown status %q", d.Status)
	} else {
		f.Since, err = parseSince(d.Since, c.now())
	}
	if err != nil {
		d.Error = err.Error()
		c.renderFor(w, r, v, http.StatusBadRequest, "history", page{Title: "Approval history", Nav: "history", Body: d})
		return
	}
	infos, err := c.cfg.Approvals.Approvals(r.Context(), v.principal(), f)
	if err != nil {
		c.refusal(w, r, v, err)
		return
	}
	d.Cards = c.cards(infos, v, false, "")
	c.renderFor(w, r, v, http.StatusOK, "history", page{Title: "Approval history", Nav: "history", Body: d})
}

// parseSince reads a filter's since: an RFC 3339 time, a date (UTC
// midnight), a duration ago ("24h") or a number of days ago ("7d").
func parseSince(val string, now time.Time) (time.Time, error) {
	if val == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, val); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, val); err == nil {
		return t, nil
	}
	if n, ok := strings.CutSuffix(val, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil && days > 0 && days <= 3660 {
			return now.AddDate(0, 0, -days).UTC(), nil
		}
	}
	if d, err := time.ParseDuration(val); err == nil && d > 0 {
		return now.Add(-d).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("since %q is not a time: use a date (2026-03-01), RFC 3339 (2026-03-01T12:00:00Z), hours ago (24h) or days ago (7d)", val)
}
