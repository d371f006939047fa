package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/approvals"
	"github.com/toolgate/toolgate/broker"
)

// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">".
const SignatureHeader = "X-Toolgate-Signature"

// Event is the body of one delivery.
type Event struct {
	ApprovalID string    `json:"approval_id"`
	Run        string    `json:"run,omitempty"`
	Thread     string    `json:"thread,omitempty"`
	Graph      string    `json:"graph,omitempty"`
	Node       string    `json:"node,omitempty"`
	Tool       string    `json:"tool"`
	Outcome    string    `json:"outcome"` // approved | denied | expired | stale
	DecidedAt  time.Time `json:"decided_at"`
}

// TextMasker masks secrets and personal data in text before it is logged.
type TextMasker interface {
	MaskText(s string) string
}

// Config configures a Notifier. URL and Secret are required.
type Config struct {
	URL    string
	Secret string
	// Next is the announcer the Notifier wraps (Slack); nil means none.
	Next approvals.Announcer
	// Attempts bounds the deliveries of one event; 0 means 6.
	Attempts int
	// Backoff is the wait before the first retry, doubled after each
	// failure up to MaxBackoff; 0 means 1 second.
	Backoff time.Duration
	// MaxBackoff caps the wait between attempts; 0 means 1 minute.
	MaxBackoff time.Duration
	// Timeout bounds one attempt; 0 means 10 seconds.
	Timeout time.Duration
	// QueueSize bounds the events waiting for delivery; when it is full
	// new events are dropped with a warning. 0 means 1024.
	QueueSize int
	// Client sends the requests; nil means a new http.Client.
	Client *http.Client
	// Masker masks errors of the wrapped announcer before they are
	// logged; nil logs them without details.
	Masker TextMasker
	Logger *zap.Logger
	Now    func() time.Time
}

// Validate reports what is missing or out of range.
func (c Config) Validate() error {
	var problems []string
	u, err := url.Parse(c.URL)
	if c.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		problems = append(problems, "URL must be an http(s) URL")
	}
	if len(c.Secret) < 16 {
		problems = append(problems, "Secret must be at least 16 characters")
	}
	if c.Attempts < 0 || c.QueueSize < 0 {
		problems = append(problems, "Attempts and QueueSize must not be negative")
	}
	if c.Backoff < 0 || c.MaxBackoff < 0 || c.Timeout < 0 {
		problems = append(problems, "Backoff, MaxBackoff and Timeout must not be negative")
	}
	if len(problems) > 0 {
		return fmt.Errorf("approval webhook config: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Notifier posts approval decisions to a webhook and passes every
// announcement on to the announcer it wraps.
type Notifier struct {
	cfg   Config
	host  string
	log   *zap.Logger
	queue chan Event

	mu   sync.Mutex
	sent map[string]struct{} // approval ids already queued
	ring []string            // the same ids, oldest first, to bound sent
}

var _ approvals.Announcer = (*Notifier)(nil)

// maxRemembered bounds the approval ids remembered to send each decision once.
const maxRemembered = 4096

// New returns a Notifier for a valid config. Call Run to deliver.
func New(cfg Config) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Attempts == 0 {
		cfg.Attempts = 6
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = time.Second
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = time.Minute
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = 1024
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	u, _ := url.Parse(cfg.URL)
	return &Notifier{
		cfg: cfg, host: u.Scheme + "://" + u.Host, log: cfg.Logger,
		queue: make(chan Event, cfg.QueueSize), sent: map[string]struct{}{},
	}, nil
}

// Announce passes the request to the wrapped announcer and returns its ref
// unchanged, so the wrapped announcer (Slack) recognises its own messages
// ("" when there is none or it failed). The approval service calls Update
// on every change whatever the ref, so decisions reach the webhook either
// way.
func (n *Notifier) Announce(ctx context.Context, r approvals.Request) (string, error) {
	if n.cfg.Next == nil {
		return "", nil
	}
	ref, err := n.cfg.Next.Announce(ctx, r)
	if err != nil {
		// The decision must still reach the webhook: report no message.
		msg := "details withheld"
		if n.cfg.Masker != nil {
			msg = n.cfg.Masker.MaskText(err.Error())
		}
		n.log.Error("approval request could not be announced; it stays decidable through the API", zap.String("approval", r.ID), zap.String("error", msg))
		return "", nil
	}
	return ref, nil
}

// Update passes the change to the wrapped announcer when it has a message
// for the request and, the first time it sees the request decided, queues
// a delivery. It never waits for one.
func (n *Notifier) Update(ctx context.Context, r approvals.Request) error {
	var err error
	if n.cfg.Next != nil && r.Ref != "" {
		err = n.cfg.Next.Update(ctx, r)
	}
	if ev, ok := n.decision(r); ok && n.remember(r.ID) {
		select {
		case n.queue <- ev:
		default:
			n.log.Warn("approval webhook queue is full; decision not delivered", zap.String("approval", r.ID), zap.String("outcome", ev.Outcome))
		}
	}
	return err
}

// decision returns the event for a decided request. An approval already
// claimed or consumed by its call was approved: the service may read the
// request back after the waiting call took it.
func (n *Notifier) decision(r approvals.Request) (Event, bool) {
	var outcome string
	switch r.Status {
	case broker.ApprovalApproved, broker.ApprovalExecuting, broker.ApprovalConsumed:
		outcome = "approved"
	case broker.ApprovalDenied:
		outcome = "denied"
	case broker.ApprovalExpired:
		outcome = "expired"
	case broker.ApprovalStale:
		outcome = "stale"
	default:
		return Event{}, false
	}
	at := r.DecidedAt
	if at.IsZero() {
		at = n.cfg.Now()
	}
	return Event{
		ApprovalID: r.ID, Run: r.Run, Thread: r.Thread, Graph: r.Graph, Node: r.Node,
		Tool: r.Tool, Outcome: outcome, DecidedAt: at.UTC(),
	}, true
}

// remember reports whether id is new, and remembers it.
func (n *Notifier) remember(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.sent[id]; ok {
		return false
	}
	n.sent[id] = struct{}{}
	n.ring = append(n.ring, id)
	if len(n.ring) > maxRemembered {
		delete(n.sent, n.ring[0])
		n.ring = slices.Delete(n.ring, 0, 1)
	}
	return true
}

// Run delivers queued events until ctx ends, each in its own goroutine, and
// returns ctx's error once the deliveries in flight gave up.
func (n *Notifier) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev := <-n.queue:
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = n.Deliver(ctx, ev)
			}()
		}
	}
}

// Deliver posts ev until the receiver answers 2xx, answers a status that a
// retry will not change (4xx other than 408 and 429), Attempts are spent or
// ctx ends.
func (n *Notifier) Deliver(ctx context.Context, ev Event) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode approval webhook: %w", err)
	}
	wait := n.cfg.Backoff
	for attempt := 1; ; attempt++ {
		status, err := n.post(ctx, body)
		if err == nil {
			n.log.Debug("approval webhook delivered", zap.String("approval", ev.ApprovalID), zap.Int("attempt", attempt))
			return nil
		}
		retry := status == 0 || status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout
		fields := []zap.Field{zap.String("approval", ev.ApprovalID), zap.String("outcome", ev.Outcome), zap.String("receiver", n.host), zap.Int("attempt", attempt), zap.Int("status", status), zap.String("error", err.Error())}
		if !retry || attempt >= n.cfg.Attempts {
			n.log.Error("approval webhook not delivered; giving up", fields...)
			return fmt.Errorf("approval webhook for %s not delivered after %d attempts: %w", ev.ApprovalID, attempt, err)
		}
		n.log.Warn("approval webhook not delivered; retrying", append(fields, zap.Duration("backoff", wait))...)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, n.cfg.MaxBackoff)
	}
}

// post sends one signed attempt. Its error never holds the URL (whose query
// may carry a token) or the signature.
func (n *Notifier) post(ctx context.Context, body []byte) (int, error) {
	actx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, n.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, errors.New("the webhook request could not be built")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "toolgate-approval-webhook")
	req.Header.Set(SignatureHeader, Sign(n.cfg.Secret, n.cfg.Now(), body))
	resp, err := n.cfg.Client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("the receiver answered HTTP %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// Sign returns the X-Toolgate-Signature value for body sent at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret, ts string, body []byte) string {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(ts))
	h.Write([]byte("."))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// ErrBadSignature is returned by Verify for a missing, malformed, wrong or
// stale signature.
var ErrBadSignature = errors.New("approval webhook signature does not verify")

// Verify checks header (an X-Toolgate-Signature value) against body, and
// that its timestamp is within tolerance of now, for receivers written in Go.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		switch {
		case !ok:
			continue
		case k == "t":
			ts = v
		case k == "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("%w: want t=<unix>,v1=<hex>", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp outside the %s tolerance", ErrBadSignature, tolerance)
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return ErrBadSignature
}
