package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/toolgate/toolgate/approvals"
	"github.com/toolgate/toolgate/approvals/webhook"
	"github.com/toolgate/toolgate/broker"
)

const secret = "whsec_0123456789abcdef"

// receiver is an httptest webhook receiver that answers the statuses in
// order (the last one repeats) and keeps what it got.
type receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	statuses []int
	bodies   [][]byte
	sigs     []string
	hits     atomic.Int32
	got      chan struct{}
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	t.Helper()
	rc := &receiver{statuses: statuses, got: make(chan struct{}, 16)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n := int(rc.hits.Add(1))
		rc.mu.Lock()
		rc.bodies = append(rc.bodies, body)
		rc.sigs = append(rc.sigs, r.Header.Get(webhook.SignatureHeader))
		status := rc.statuses[min(n, len(rc.statuses))-1]
		rc.mu.Unlock()
		w.WriteHeader(status)
		rc.got <- struct{}{}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func request(id string, status broker.ApprovalStatus) approvals.Request {
	return approvals.Request{
		ApprovalInfo: broker.ApprovalInfo{
			ID: id, Status: status, Graph: "support-bot", Node: "billing", Run: "run-1", Thread: "thread-1",
			Tool: "billing_refund", Args: json.RawMessage(`{"order_id":104,"amount":250,"card":"4242424242424242"}`),
		},
		Ref:       "",
		DecidedAt: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC),
	}
}

func newNotifier(t *testing.T, url string, mod func(*webhook.Config)) (*webhook.Notifier, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	cfg := webhook.Config{URL: url, Secret: secret, Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, Timeout: 2 * time.Second, Logger: zap.New(core)}
	if mod != nil {
		mod(&cfg)
	}
	n, err := webhook.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n, logs
}

func TestDeliverSignedEvent(t *testing.T) {
	rc := newReceiver(t, 200)
	n, _ := newNotifier(t, rc.srv.URL, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()

	if err := n.Update(context.Background(), request("ap_1", broker.ApprovalApproved)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rc.got:
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
	rc.mu.Lock()
	body, sig := rc.bodies[0], rc.sigs[0]
	rc.mu.Unlock()
	if err := webhook.Verify(secret, sig, body, time.Now(), 5*time.Minute); err != nil {
		t.Fatalf("signature %q does not verify: %v", sig, err)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"approval_id": "ap_1", "run": "run-1", "thread": "thread-1", "graph": "support-bot", "node": "billing",
		"tool": "billing_refund", "outcome": "approved", "decided_at": "2026-11-30T12:00:00Z",
	}
	if len(got) != len(want) {
		t.Errorf("body %s: want exactly the keys of %v", body, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if strings.Contains(string(body), "4242") || strings.Contains(string(body), "amount") {
		t.Errorf("the body carries the call's arguments: %s", body)
	}
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		statuses []int
		attempts int
		wantHits int32
		wantErr  bool
	}{
		{"500 then 200", []int{500, 503, 200}, 5, 3, false},
		{"429 is retried", []int{429, 204}, 5, 2, false},
		{"gives up after N", []int{500}, 3, 3, true},
		{"400 is final", []int{400}, 5, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, tc.statuses...)
			n, logs := newNotifier(t, rc.srv.URL, func(c *webhook.Config) { c.Attempts = tc.attempts })
			ev := webhook.Event{ApprovalID: "ap_2", Tool: "billing_refund", Outcome: "denied", DecidedAt: time.Now()}
			err := n.Deliver(context.Background(), ev)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Deliver err = %v, want error %v", err, tc.wantErr)
			}
			if got := rc.hits.Load(); got != tc.wantHits {
				t.Errorf("receiver got %d attempts, want %d", got, tc.wantHits)
			}
			if tc.wantErr && logs.FilterMessage("approval webhook not delivered; giving up").Len() != 1 {
				t.Errorf("no give-up log: %v", logs.All())
			}
		})
	}
}

func TestUnreachableReceiverGivesUp(t *testing.T) {
	rc := newReceiver(t, 200)
	url := rc.srv.URL
	rc.srv.Close()
	n, _ := newNotifier(t, url, func(c *webhook.Config) { c.Attempts = 2 })
	start := time.Now()
	if err := n.Deliver(context.Background(), webhook.Event{ApprovalID: "ap_3", Outcome: "expired"}); err == nil {
		t.Fatal("delivery to a closed port succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("giving up took %s", d)
	}
}

func TestNoSecretInLogs(t *testing.T) {
	rc := newReceiver(t, 500)
	n, logs := newNotifier(t, rc.srv.URL+"/hook?token=query-secret-value", func(c *webhook.Config) { c.Attempts = 2 })
	_ = n.Deliver(context.Background(), webhook.Event{ApprovalID: "ap_4", Outcome: "approved"})
	rc.mu.Lock()
	sig := rc.sigs[0]
	rc.mu.Unlock()
	if logs.Len() == 0 {
		t.Fatal("no logs to check")
	}
	for _, e := range logs.All() {
		line := e.Message
		for k, v := range e.ContextMap() {
			line += " " + k + "=" + toString(v)
		}
		for _, bad := range []string{secret, "query-secret-value", sig[strings.Index(sig, "v1=")+3:]} {
			if strings.Contains(line, bad) {
				t.Errorf("log line holds a secret: %s", line)
			}
		}
	}
}

func toString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// announcer is a fake wrapped announcer (Slack).
type announcer struct {
	mu      sync.Mutex
	fail    bool
	updates []string // refs seen by Update
}

func (a *announcer) Announce(context.Context, approvals.Request) (string, error) {
	if a.fail {
		return "", errors.New("slack is down")
	}
	return "C1:123.456", nil
}

func (a *announcer) Update(_ context.Context, r approvals.Request) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.updates = append(a.updates, r.Ref)
	return nil
}

func TestUpdateQueuesEachDecisionOnceWithoutBlocking(t *testing.T) {
	next := &announcer{}
	rc := newReceiver(t, 200)
	n, _ := newNotifier(t, rc.srv.URL, func(c *webhook.Config) { c.Next = next; c.QueueSize = 1 })

	ref, err := n.Announce(context.Background(), request("ap_5", broker.ApprovalPending))
	if err != nil || ref != "C1:123.456" {
		t.Fatalf("Announce = %q, %v; want the wrapped announcer's own ref", ref, err)
	}
	r := request("ap_5", broker.ApprovalPending)
	r.Ref = ref
	for _, st := range []broker.ApprovalStatus{broker.ApprovalPending, broker.ApprovalApproved, broker.ApprovalExecuting, broker.ApprovalConsumed} {
		r.Status = st
		if err := n.Update(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	// A second decided request finds the queue (size 1, no Run) full: Update
	// must return at once, dropping it with a warning.
	start := time.Now()
	other := request("ap_6", broker.ApprovalDenied)
	if err := n.Update(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Update blocked for %s", d)
	}
	next.mu.Lock()
	if len(next.updates) != 4 || next.updates[0] != "C1:123.456" {
		t.Errorf("the wrapped announcer saw refs %v, want its own ref 4 times", next.updates)
	}
	next.mu.Unlock()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = n.Run(ctx) }()
	select {
	case <-rc.got:
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery")
	}
	time.Sleep(50 * time.Millisecond)
	if got := rc.hits.Load(); got != 1 {
		t.Errorf("receiver got %d deliveries, want 1 (approved, once)", got)
	}
	rc.mu.Lock()
	if !strings.Contains(string(rc.bodies[0]), `"outcome":"approved"`) {
		t.Errorf("body %s", rc.bodies[0])
	}
	rc.mu.Unlock()
}

func TestWrappedAnnouncerFailureStillDelivers(t *testing.T) {
	next := &announcer{fail: true}
	rc := newReceiver(t, 200)
	n, _ := newNotifier(t, rc.srv.URL, func(c *webhook.Config) { c.Next = next })
	ref, err := n.Announce(context.Background(), request("ap_7", broker.ApprovalPending))
	if err != nil || ref != "" {
		t.Fatalf("Announce = %q, %v; want no message and no error", ref, err)
	}
	// The service updates every change, message or not: the decision is
	// delivered, and the wrapped announcer is not asked to redraw a message
	// it never posted.
	r := request("ap_7", broker.ApprovalDenied)
	if err := n.Update(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = n.Run(ctx) }()
	select {
	case <-rc.got:
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery")
	}
	next.mu.Lock()
	defer next.mu.Unlock()
	if len(next.updates) != 0 {
		t.Errorf("the wrapped announcer was asked to update %v", next.updates)
	}
}

func TestVerify(t *testing.T) {
	body := []byte(`{"approval_id":"ap_1"}`)
	now := time.Unix(1_800_000_000, 0)
	good := webhook.Sign(secret, now, body)
	for _, tc := range []struct {
		name, secret, header string
		body                 []byte
		ok                   bool
	}{
		{"good", secret, good, body, true},
		{"wrong secret", "another-secret-0123", good, body, false},
		{"edited body", secret, good, []byte(`{"approval_id":"ap_2"}`), false},
		{"stale", secret, webhook.Sign(secret, now.Add(-10*time.Minute), body), body, false},
		{"malformed", secret, "v1=abc", body, false},
		{"empty", secret, "", body, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := webhook.Verify(tc.secret, tc.header, tc.body, now, 5*time.Minute)
			if (err == nil) != tc.ok {
				t.Fatalf("Verify = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, webhook.ErrBadSignature) {
				t.Errorf("error %v is not ErrBadSignature", err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  webhook.Config
		want string
	}{
		{"ok", webhook.Config{URL: "https://x.example/hook", Secret: secret}, ""},
		{"no url", webhook.Config{Secret: secret}, "URL must be"},
		{"ftp", webhook.Config{URL: "ftp://x", Secret: secret}, "URL must be"},
		{"short secret", webhook.Config{URL: "https://x.example", Secret: "short"}, "Secret must be"},
		{"negative", webhook.Config{URL: "https://x.example", Secret: secret, Attempts: -1}, "must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}
