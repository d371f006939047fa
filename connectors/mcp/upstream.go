package mcp

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

// Defaults for the zero values of Options.
const (
	DefaultHealthInterval = 15 * time.Second
	DefaultMinBackoff     = 250 * time.Millisecond
	DefaultMaxBackoff     = 30 * time.Second
	// stableAfter is how long a session must live for the backoff to
	// start over from MinBackoff.
	stableAfter = 30 * time.Second
)

// errClosed answers Start after Close.
var errClosed = errors.New("the connector is closed")

// Options are what the wiring passes besides the config.
type Options struct {
	// Logger logs connection changes and a stdio server's stderr; nil logs
	// nothing.
	Logger *zap.Logger
	// Now is the clock for events; nil means time.Now.
	Now func() time.Time
	// Compile compiles each tool's schemas. Required by New.
	Compile CompileFunc
	// OnEvent receives events one at a time, from the connector's own
	// goroutines. It must return quickly and must not call Close.
	OnEvent func(Event)
	// Redact masks upstream text before it is logged (stderr lines) or
	// relayed (progress messages). Configured header and env values are
	// removed from logged text in any case. When nil, stderr lines are
	// logged with only those removed and progress messages are dropped.
	Redact func(string) string
	// BaseEnv is the environment a stdio server starts from, before
	// Config.Env; pass NeutralEnv(os.Environ()).
	BaseEnv []string
	// ClientVersion is the version toolgate reports in clientInfo.
	ClientVersion string
	// HealthInterval is how often the tools are listed again, which also
	// checks that the session is alive; 0 means 15s, negative turns it off.
	HealthInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts; 0 means 250ms and 30s.
	MinBackoff, MaxBackoff time.Duration
}

// Upstream is the connector to one upstream MCP server: one long-lived
// session, reconnected on loss, shared by every call. It implements
// broker.Executor for operations with Operation.MCP set.
type Upstream struct {
	cfg      Config
	opt      Options
	log      *zap.Logger
	secrets  []string
	httpBase *http.Transport

	snap    atomic.Pointer[Snapshot]
	sess    atomic.Pointer[session]
	refresh chan struct{}

	ctx       context.Context
	cancel    context.CancelFunc
	life      sync.Mutex // orders Start and Close
	started   bool
	closed    bool
	done      chan struct{}
	first     chan error
	firstOnce sync.Once
	closeOnce sync.Once
	emitMu    sync.Mutex
	reported  map[string]string // tool → changes last reported as quarantined
}

var _ broker.Executor = (*Upstream)(nil)

// New returns the connector for a valid config. It starts nothing: Start
// connects.
func New(cfg Config, opt Options) (*Upstream, error) {
	if opt.Compile == nil {
		return nil, errors.New("mcp target " + cfg.Name + ": a schema compiler (Options.Compile) is required")
	}
	return newUpstream(cfg, opt)
}

func newUpstream(cfg Config, opt Options) (*Upstream, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if opt.Logger == nil {
		opt.Logger = zap.NewNop()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.HealthInterval == 0 {
		opt.HealthInterval = DefaultHealthInterval
	}
	if opt.MinBackoff <= 0 {
		opt.MinBackoff = DefaultMinBackoff
	}
	if opt.MaxBackoff < opt.MinBackoff {
		opt.MaxBackoff = max(DefaultMaxBackoff, opt.MinBackoff)
	}
	if opt.ClientVersion == "" {
		opt.ClientVersion = "dev"
	}
	u := &Upstream{cfg: cfg, opt: opt, log: opt.Logger.With(zap.String("target", cfg.Name)),
		refresh: make(chan struct{}, 1), done: make(chan struct{}), first: make(chan error, 1), reported: map[string]string{}}
	u.ctx, u.cancel = context.WithCancel(context.Background())
	for _, m := range []map[string]string{cfg.Headers, cfg.Env} {
		for _, v := range m {
			if len(v) >= 4 {
				u.secrets = append(u.secrets, v)
			}
		}
	}
	if cfg.URL != "" {
		u.httpBase = &http.Transport{
			// Where credentials go is decided by the config alone.
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:   true,
			MaxIdleConns:        100,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
		}
	}
	return u, nil
}

// Start connects in the background and waits, at most until ctx ends, for
// the first attempt: nil once the tools are listed and evaluated, else why
// it failed. The connector keeps trying either way until Close.
func (u *Upstream) Start(ctx context.Context) error {
	u.life.Lock()
	switch {
	case u.closed:
		u.life.Unlock()
		return errClosed
	case u.started:
		u.life.Unlock()
		return errors.New("mcp target " + u.cfg.Name + ": already started")
	}
	u.started = true
	go u.run()
	u.life.Unlock()
	select {
	case err := <-u.first:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close ends the session, stops a stdio server and its process group,
// and waits for every goroutine the connector started.
func (u *Upstream) Close() error {
	u.closeOnce.Do(func() {
		u.life.Lock()
		u.closed = true
		started := u.started
		u.life.Unlock()
		u.cancel()
		if started {
			<-u.done
		}
		if u.httpBase != nil {
			u.httpBase.CloseIdleConnections()
		}
	})
	return nil
}

// Snapshot returns the current evaluation of the upstream's tools, or an
// empty one (no tools) before the first.
func (u *Upstream) Snapshot() *Snapshot {
	if s := u.snap.Load(); s != nil {
		return s
	}
	return &Snapshot{Target: u.cfg.Name}
}

// Refresh asks for the tools to be listed and evaluated again, e.g. after
// the lock file changed. It does not wait: an EventEvaluated follows.
func (u *Upstream) Refresh() {
	select {
	case u.refresh <- struct{}{}:
	default:
	}
}

// reportFirst answers Start once.
func (u *Upstream) reportFirst(err error) {
	u.firstOnce.Do(func() { u.first <- err })
}

// run is the supervisor: connect, evaluate, serve, and on loss start over
// after a backoff, until Close.
func (u *Upstream) run() {
	defer close(u.done)
	backoff := u.opt.MinBackoff
	trigger := "start"
	for u.ctx.Err() == nil {
		s, err := u.dial(u.ctx)
		if err != nil {
			if u.ctx.Err() != nil {
				break
			}
			u.log.Warn("cannot connect to the upstream MCP server", zap.String("reason", err.Error()))
			u.emit(Event{Kind: EventDisconnected, Reason: "cannot connect: " + err.Error()})
			u.reportFirst(err)
			if !u.sleep(backoff) {
				break
			}
			backoff = min(backoff*2, u.opt.MaxBackoff)
			continue
		}
		since := u.opt.Now()
		u.sess.Store(s)
		u.log.Info("connected to the upstream MCP server")
		u.emit(Event{Kind: EventConnected})
		u.reportFirst(u.evaluate(s, trigger))
		u.serve(s)
		u.sess.Store(nil)
		s.close()
		if u.ctx.Err() != nil {
			break
		}
		u.disconnected(s.lostReason())
		if u.opt.Now().Sub(since) >= stableAfter {
			backoff = u.opt.MinBackoff
		}
		if !u.sleep(backoff) {
			break
		}
		backoff = min(backoff*2, u.opt.MaxBackoff)
		trigger = "reconnect"
	}
	u.reportFirst(errClosed)
}

// serve handles one live session until it is lost or the connector closes.
func (u *Upstream) serve(s *session) {
	var tick <-chan time.Time
	if u.opt.HealthInterval > 0 {
		t := time.NewTicker(u.opt.HealthInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-u.ctx.Done():
			return
		case <-s.lost:
			return
		case <-s.listChanged:
			u.evaluate(s, "list_changed")
		case <-u.refresh:
			u.evaluate(s, "refresh")
		case <-tick:
			// Listing again both checks the session and catches an
			// upstream that changes a definition without announcing it.
			_ = u.evaluate(s, "poll")
		}
	}
}

// disconnected publishes the last snapshot as not connected and reports
// why the session ended.
func (u *Upstream) disconnected(why string) {
	if old := u.snap.Load(); old != nil {
		s := *old
		s.Connected = false
		u.snap.Store(&s)
	}
	u.log.Warn("lost the upstream MCP server; reconnecting", zap.String("reason", why))
	u.emit(Event{Kind: EventDisconnected, Reason: why})
}

// sleep waits d with ±20% jitter, or until Close.
func (u *Upstream) sleep(d time.Duration) bool {
	d += time.Duration((rand.Float64()*0.4 - 0.2) * float64(d))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-u.ctx.Done():
		return false
	}
}

// redactLog removes configured secrets from upstream text and applies
// Options.Redact, for the log.
func (u *Upstream) redactLog(s string) string {
	for _, v := range u.secrets {
		s = strings.ReplaceAll(s, v, "[redacted]")
	}
	if u.opt.Redact != nil {
		s = u.opt.Redact(s)
	}
	return s
}

// relayText is an upstream progress message as a caller may see it: masked
// by Options.Redact, or dropped without it.
func (u *Upstream) relayText(s string) string {
	if u.opt.Redact == nil || s == "" {
		return ""
	}
	return u.redactLog(s)
}
