package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/toolgate/toolgate/approvals"
	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/httpapi"
	"github.com/toolgate/toolgate/broker/httpapi/doortest"
	"github.com/toolgate/toolgate/internal/db/dbtest"
	_ "modernc.org/sqlite"
)

var _ httpapi.ApprovalService = (*approvals.Service)(nil)

type approvalsEnv struct {
	srv *httptest.Server
	svc *approvals.Service
	rec *doortest.Recorder
}

// newApprovalsServer serves the approvals API over a real approvals.Service
// on a SQLite file; doortest's API keys authenticate (key:alpha, key:beta).
func newApprovalsServer(t *testing.T) *approvalsEnv {
	t.Helper()
	st, err := approvals.NewStore(dbtest.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	rec := &doortest.Recorder{}
	svc, err := approvals.New(approvals.Config{Store: st, Masker: maskNothing{}, Recorder: rec, Wait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	env := doortest.New(t)
	srv := httptest.NewServer(httpapi.NewApprovals(env.Broker, svc, httpapi.Options{ResourceMetadataURL: metaURL}))
	t.Cleanup(srv.Close)
	return &approvalsEnv{srv: srv, svc: svc, rec: rec}
}

type maskNothing struct{}

func (maskNothing) MaskResult(_ *broker.Tool, d []byte) ([]byte, broker.MaskStats, error) {
	return d, nil, nil
}
func (maskNothing) MaskRecord(d []byte) ([]byte, error) { return d, nil }
func (maskNothing) MaskText(s string) string            { return s }

// ask creates a pending request by requester for approvers.
func (e *approvalsEnv) ask(t *testing.T, requester string, approvers ...string) string {
	t.Helper()
	out, err := e.svc.Await(context.Background(), broker.ApprovalRequest{
		Caller:   broker.Caller{Principal: broker.Principal{Subject: requester}, Context: broker.Context{Graph: doortest.Graph, Node: "refund", Run: "r1"}},
		Tool:     &broker.Tool{Name: doortest.ToolRefund, Target: "billing"},
		Args:     map[string]any{"order_id": "o-1", "amount": 250, "by": requester},
		ArgsHash: "h-" + requester,
		Decision: broker.Decision{Effect: broker.EffectApprove, Rule: "r", Approvers: approvers, MinApprovals: 1},
	})
	if err != nil || out.Status != broker.ApprovalPending {
		t.Fatalf("Await = %+v, %v", out, err)
	}
	return out.ID
}

func TestApprovalsAPI(t *testing.T) {
	e := newApprovalsServer(t)
	mine := e.ask(t, "key:alpha", "key:alpha", "key:beta") // alpha requested; alpha and beta approve
	theirs := e.ask(t, "key:gamma", "key:beta")            // alpha may not see it

	// Listing shows only what the caller may decide or requested.
	r := do(t, e.srv, "GET", "/v1/approvals", doortest.TokenAlpha, "", "")
	if r.status != 200 || strings.Contains(r.raw, theirs) || !strings.Contains(r.raw, mine) {
		t.Fatalf("alpha's list: %d %s", r.status, r.raw)
	}
	r = do(t, e.srv, "GET", "/v1/approvals", doortest.TokenBeta, "", "")
	if !strings.Contains(r.raw, theirs) || !strings.Contains(r.raw, mine) {
		t.Fatalf("beta's list: %s", r.raw)
	}
	if r := do(t, e.srv, "GET", "/v1/approvals/"+mine, doortest.TokenAlpha, "", ""); r.status != 200 || r.body["status"] != "pending" || r.body["tool"] != doortest.ToolRefund {
		t.Fatalf("get: %d %s", r.status, r.raw)
	}

	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"self approval", "POST", "/v1/approvals/" + mine + "/approve", doortest.TokenAlpha, `{"reason":"mine"}`, 403, "forbidden"},
		{"not an approver", "POST", "/v1/approvals/" + theirs + "/approve", doortest.TokenAlpha, ``, 403, "forbidden"},
		{"not an approver denying", "POST", "/v1/approvals/" + theirs + "/deny", doortest.TokenAlpha, ``, 403, "forbidden"},
		{"someone else's request", "GET", "/v1/approvals/" + theirs, doortest.TokenAlpha, ``, 404, "not_found"},
		{"unknown id", "POST", "/v1/approvals/ap_nope/approve", doortest.TokenBeta, ``, 404, "not_found"},
		{"unknown verb", "POST", "/v1/approvals/" + mine + "/maybe", doortest.TokenBeta, ``, 404, "not_found"},
		{"bad body", "POST", "/v1/approvals/" + mine + "/approve", doortest.TokenBeta, `{"reason":`, 400, "invalid_request"},
		{"unknown field", "POST", "/v1/approvals/" + mine + "/approve", doortest.TokenBeta, `{"approve":true}`, 400, "invalid_request"},
		{"no token", "POST", "/v1/approvals/" + mine + "/approve", "", ``, 401, "unauthenticated"},
		{"bad token", "GET", "/v1/approvals", "tgk_nope", ``, 401, "unauthenticated"},
		{"wrong method", "GET", "/v1/approvals/" + mine + "/approve", doortest.TokenBeta, ``, 405, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, e.srv, tc.method, tc.path, tc.token, "", tc.body)
			if r.status != tc.status || errCode(r) != tc.code {
				t.Fatalf("got %d %q, want %d %q: %s", r.status, errCode(r), tc.status, tc.code, r.raw)
			}
			for _, id := range []string{mine, theirs} {
				if ap, _ := e.svc.Get(context.Background(), id); ap.Status != broker.ApprovalPending || len(ap.Votes) != 0 {
					t.Errorf("%s changed: %s with %d votes", id, ap.Status, len(ap.Votes))
				}
			}
		})
	}

	// Beta approves alpha's request and denies gamma's.
	if r := do(t, e.srv, "POST", "/v1/approvals/"+mine+"/approve", doortest.TokenBeta, "", `{"reason":"looks right"}`); r.status != 200 || r.body["status"] != "approved" {
		t.Fatalf("approve: %d %s", r.status, r.raw)
	}
	if r := do(t, e.srv, "POST", "/v1/approvals/"+theirs+"/deny", doortest.TokenBeta, "", ``); r.status != 200 || r.body["status"] != "denied" {
		t.Fatalf("deny: %d %s", r.status, r.raw)
	}
	// A replayed decision changes nothing.
	if r := do(t, e.srv, "POST", "/v1/approvals/"+mine+"/approve", doortest.TokenBeta, "", ``); r.status != http.StatusBadRequest || errCode(r) != "invalid_request" || !strings.Contains(r.raw, "already approved") {
		t.Fatalf("replay: %d %s", r.status, r.raw)
	}
	ap, _ := e.svc.Get(context.Background(), mine)
	if len(ap.Votes) != 1 || ap.Votes[0].Channel != "http" || ap.Votes[0].Reason != "looks right" {
		t.Errorf("votes = %+v", ap.Votes)
	}
}
