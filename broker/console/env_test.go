package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/toolgate/toolgate/approvals"
	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/auth"
	"github.com/toolgate/toolgate/broker/brokertest"
	"github.com/toolgate/toolgate/broker/console"
	"github.com/toolgate/toolgate/broker/door"
	"github.com/toolgate/toolgate/internal/db"
	"github.com/toolgate/toolgate/recordings"
)

// The test keys. The approver and the auditor are different principals;
// the agent asks for approvals.
const (
	keyAgent    = "tgk_agent_0123456789abcdef0123456789"
	keyApprover = "tgk_approver_0123456789abcdef012345"
	keyAuditor  = "tgk_auditor_0123456789abcdef0123456"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a console over real components: the API-key and OIDC
// authenticator, the approvals service and the recordings store on one
// SQLite file.
type env struct {
	srv   *httptest.Server
	con   *console.Console
	svc   *approvals.Service
	rec   *recordings.Store
	clock *clock
	// authn is the authenticator in use; swapping it is a reload.
	authn atomic.Pointer[auth.Authenticator]
	// incidents counts the internal failures handed to the reporter.
	incidents atomic.Int64
	db        *db.DB
}

type envOption func(*console.Config)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	e := &env{clock: &clock{t: time.Now().UTC().Truncate(time.Second)}}
	e.setKeys(t, map[string]string{"agent": keyAgent, "approver": keyApprover, "auditor": keyAuditor}, nil)
	d, err := db.Open(context.Background(), db.Config{Driver: "sqlite", Path: filepath.Join(t.TempDir(), "toolgate.db")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	e.db = d
	if e.rec, err = recordings.NewStore(d, recordings.Config{Instance: "local"}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.rec.Close() })
	st, err := approvals.NewStore(d)
	if err != nil {
		t.Fatal(err)
	}
	if e.svc, err = approvals.New(approvals.Config{Store: st, Masker: noMask{}, Recorder: &brokertest.Recorder{}, Now: e.clock.Now, Wait: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewUnstartedServer(nil)
	cfg := console.Config{
		Identifier: console.IdentifierFunc(e.identify),
		Reporter:   door.ReportFunc(e.report),
		Approvals:  e.svc,
		Audit:      auditTrail{mustReader(t, recordings.ReaderConfig{Store: e.rec, Auditors: recordings.Auditors{"key:auditor"}})},
		PublicURL:  "http://" + e.srv.Listener.Addr().String(),
		Now:        e.clock.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if e.con, err = console.New(cfg); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/console/", e.con)
	e.srv.Config.Handler = mux
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

// setKeys installs an authenticator with these API keys (and OIDC).
func (e *env) setKeys(t *testing.T, keys map[string]string, oidc *auth.OIDCConfig) {
	t.Helper()
	cfg := auth.Config{OIDC: oidc, Now: func() time.Time { return e.clock.Now() }}
	for name, k := range keys {
		cfg.APIKeys = append(cfg.APIKeys, auth.APIKey{Name: name, SHA256: auth.HashKey(k)})
	}
	a, err := auth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.authn.Store(a)
}

// identify is what Broker.Identify does for a caller without LangGraph
// context: authenticate the token.
func (e *env) identify(ctx context.Context, cr broker.Credentials) (broker.Caller, error) {
	p, binding, err := e.authn.Load().Authenticate(ctx, cr.Token)
	if err != nil {
		return broker.Caller{}, err
	}
	return broker.Caller{Principal: p, Binding: binding}, nil
}

// report is what Broker.Report does, without the log: an internal
// failure gets an incident id the page shows.
func (e *env) report(err error) *broker.Error {
	be, incident := broker.AsError(err)
	if be.Code == broker.CodeInternal {
		e.incidents.Add(1)
	}
	if be.Code == broker.CodeInternal && incident == "" {
		be = &broker.Error{Code: be.Code, Message: be.Message + " (incident test)"}
	}
	return be
}

// hold makes a pending approval request of a refund by the agent.
func (e *env) hold(t *testing.T, run string, amount int) string {
	t.Helper()
	return e.await(t, refund(run, amount, nil), broker.ApprovalPending)
}

// refund is the agent's refund call that policy holds for the approver,
// with the effect preview pv (nil: none).
func refund(run string, amount int, pv *broker.ApprovalPreview) broker.ApprovalRequest {
	req := broker.ApprovalRequest{
		Caller:   broker.Caller{Principal: broker.Principal{Subject: "key:agent", Method: broker.AuthAPIKey}, Context: broker.Context{Graph: "support-bot", Node: "billing", Run: run}},
		Tool:     &broker.Tool{Name: "billing_refund", Target: "demo"},
		Args:     map[string]any{"order_id": 104, "amount": amount},
		ArgsHash: run + "-" + time.Now().String(),
		Decision: broker.Decision{Effect: broker.EffectApprove, Rule: "graphs.support-bot.nodes.billing.rules[0]", Approvers: []string{"key:approver"}, MinApprovals: 1},
	}
	if pv != nil {
		req.Preview = func(context.Context) broker.ApprovalPreview { return *pv }
	}
	return req
}

// await makes or finds req's approval request, which must answer want,
// and returns its id.
func (e *env) await(t *testing.T, req broker.ApprovalRequest, want broker.ApprovalStatus) string {
	t.Helper()
	out, err := e.svc.Await(context.Background(), req)
	if err != nil || out.Status != want {
		t.Fatalf("Await = %+v, %v; want %s", out, err, want)
	}
	return out.ID
}

func (e *env) status(t *testing.T, id string) broker.ApprovalStatus {
	t.Helper()
	r, err := e.svc.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r.Status
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so tests see them.
type browser struct {
	t    *testing.T
	c    *http.Client
	base string
}

func (e *env) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: e.srv.URL, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// do sends a request and returns the response with its body read.
func (b *browser) do(method, path string, form url.Values, header ...string) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

func (b *browser) get(path string) (*http.Response, string) { return b.do(http.MethodGet, path, nil) }

var (
	csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

// csrf returns the CSRF token of the first form on page.
func csrf(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the page:\n%s", page)
	}
	return m[1]
}

// signIn signs b in with key and returns the inbox page.
func (b *browser) signIn(key string) string {
	b.t.Helper()
	_, page := b.get("/console/signin")
	resp, body := b.do(http.MethodPost, "/console/signin", url.Values{"csrf": {csrf(b.t, page)}, "key": {key}})
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("sign-in: %d\n%s", resp.StatusCode, body)
	}
	_, inbox := b.get(resp.Header.Get("Location"))
	return inbox
}

// noMask masks nothing: the approvals service needs a masker.
type noMask struct{}

func (noMask) MaskResult(_ *broker.Tool, d []byte) ([]byte, broker.MaskStats, error) {
	return d, nil, nil
}
func (noMask) MaskRecord(d []byte) ([]byte, error) { return d, nil }
func (noMask) MaskText(s string) string            { return s }

// auditTrail is the recordings Reader as the console reads it (cmd/toolgate
// wires the same adapter).
type auditTrail struct{ r *recordings.Reader }

func (a auditTrail) Auditor(p broker.Principal) error { return a.r.Auditor(p) }

func (a auditTrail) Runs(ctx context.Context, v broker.Principal, f console.RunFilter) ([]console.Run, error) {
	list, err := a.r.Runs(ctx, v, recordings.RunFilter{Graph: f.Graph, Since: f.Since, Limit: f.Limit})
	out := make([]console.Run, len(list))
	for i, r := range list {
		out[i] = console.Run(r)
	}
	return out, err
}

func (a auditTrail) Trace(ctx context.Context, v broker.Principal, run string) ([]broker.Event, error) {
	return a.r.Trace(ctx, v, run)
}

func (a auditTrail) Export(ctx context.Context, v broker.Principal, run, format string, w io.Writer) (int, error) {
	return a.r.Export(ctx, v, recordings.Filter{Run: run}, format, w)
}

func (a auditTrail) VerifyRun(ctx context.Context, v broker.Principal, run string) (console.ChainCheck, error) {
	rc, err := a.r.VerifyRun(ctx, v, run)
	out := console.ChainCheck{Checked: rc.Checked, Chains: rc.Chains}
	for _, p := range rc.Problems {
		out.Problems = append(out.Problems, p.Detail)
	}
	return out, err
}

func mustReader(t *testing.T, cfg recordings.ReaderConfig) *recordings.Reader {
	t.Helper()
	r, err := recordings.NewReader(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
