package httpproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/door"
)

// Door is the front door name passthrough records carry.
const Door = "httpproxy"

// Pipeline is the broker as the proxy sees it. *broker.Broker implements it.
type Pipeline interface {
	Identify(ctx context.Context, cr broker.Credentials) (broker.Caller, error)
	Statement(ctx context.Context, sc broker.StatementCall) (broker.StatementDecision, error)
	StatementDone(ctx context.Context, o broker.StatementOutcome)
	MaskResponse(kind, target string, doc []byte) ([]byte, broker.MaskStats, error)
	MaskText(s string) string
}

var _ Pipeline = (*broker.Broker)(nil)

// ErrorWriter writes a refusal; cmd/toolgate passes broker/door's.
type ErrorWriter func(w http.ResponseWriter, r *http.Request, err error)

// Config configures one mount.
type Config struct {
	// PathPrefix is where the proxy is mounted, e.g. /proxy/billing.
	PathPrefix string
	// Target is the target name policy and masking refer to.
	Target string
	// BaseURL is the target's base URL.
	BaseURL string
	// Headers are injected into every request (credentials). Secret.
	Headers map[string]string
	// Timeout bounds one request; 0 means 30s.
	Timeout time.Duration
	// MaxBodyBytes caps a request body; 0 means 1 MiB.
	MaxBodyBytes int64
	// MaxResponseBytes caps a masked (JSON or text) response; 0 means 10 MiB.
	MaxResponseBytes int64
	// WriteError writes refusals. Required.
	WriteError ErrorWriter
	// Client sends the requests; nil means a client with Timeout that
	// follows no redirects.
	Client *http.Client
	// PassContentTypes are the media types ("image/png", or "image/*" for
	// a whole type) whose bodies pass unmasked. Any other body that is
	// neither JSON nor text is withheld.
	PassContentTypes []string
	// Tracer traces every request as a server span, the gate's spans and
	// the forwarded request under it; nil means off.
	Tracer trace.Tracer
}

// Validate reports what is wrong with the config.
func (c Config) Validate() error {
	if !strings.HasPrefix(c.PathPrefix, "/") || strings.HasSuffix(c.PathPrefix, "/") || strings.Contains(c.PathPrefix, "..") {
		return fmt.Errorf("httpproxy: path_prefix %q must start with / and not end with /", c.PathPrefix)
	}
	if c.Target == "" {
		return errors.New("httpproxy: target is required")
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("httpproxy: target %s needs an http(s) base_url", c.Target)
	}
	for k, v := range c.Headers {
		if strings.ContainsAny(k+v, "\r\n") {
			return fmt.Errorf("httpproxy: target %s: header %s contains a line break", c.Target, k)
		}
	}
	if c.WriteError == nil {
		return errors.New("httpproxy: an error writer is required")
	}
	for _, t := range c.PassContentTypes {
		if err := CheckPassContentType(t); err != nil {
			return fmt.Errorf("httpproxy: target %s: %w", c.Target, err)
		}
	}
	return nil
}

// Proxy is one HTTP passthrough mount. It is an http.Handler.
type Proxy struct {
	cfg  Config
	base *url.URL
	pipe Pipeline
	log  *zap.Logger
}

var _ http.Handler = (*Proxy)(nil)

// New returns a Proxy for a valid config.
func New(cfg Config, pipe Pipeline, log *zap.Logger) (*Proxy, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = 10 << 20
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{
			Timeout:       cfg.Timeout,
			Transport:     &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 32, IdleConnTimeout: 90 * time.Second},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	base, _ := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	return &Proxy{cfg: cfg, base: base, pipe: pipe, log: log.With(zap.String("target", cfg.Target))}, nil
}

// hopHeaders are never forwarded in either direction (RFC 9110 §7.6.1),
// nor are the caller's credentials and toolgate's own headers.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func stripHop(h http.Header) {
	for _, f := range h.Values("Connection") {
		for _, name := range strings.Split(f, ",") {
			h.Del(strings.TrimSpace(name))
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// targetPath returns the path under the prefix, escaped and decoded, or an
// error for anything that could step outside it.
func (p *Proxy) targetPath(r *http.Request) (escaped, decoded string, err error) {
	raw := r.URL.EscapedPath()
	rest, ok := strings.CutPrefix(raw, p.cfg.PathPrefix)
	if !ok || (rest != "" && rest[0] != '/') {
		return "", "", broker.Errorf(broker.CodeNotFound, "no passthrough is mounted at %s", raw)
	}
	if rest == "" {
		rest = "/"
	}
	low := strings.ToLower(rest)
	if strings.Contains(low, "%2f") || strings.Contains(low, "%5c") || strings.Contains(rest, "\\") || strings.Contains(low, "%00") {
		return "", "", broker.Errorf(broker.CodeInvalidRequest, "the path may not contain encoded slashes, backslashes or NUL bytes")
	}
	dec, err := url.PathUnescape(rest)
	if err != nil {
		return "", "", broker.Errorf(broker.CodeInvalidRequest, "the path is not validly escaped")
	}
	for _, seg := range strings.Split(dec, "/") {
		// Servlet containers (Tomcat, Jetty) drop a segment's ";parameters"
		// before they resolve dot segments, so "..;x" climbs like "..".
		if name, _, _ := strings.Cut(seg, ";"); name == "." || name == ".." {
			return "", "", broker.Errorf(broker.CodeInvalidRequest, "the path may not contain . or .. segments, with or without ;parameters")
		}
	}
	if strings.Contains(dec, "//") {
		return "", "", broker.Errorf(broker.CodeInvalidRequest, "the path may not contain empty segments")
	}
	return rest, dec, nil
}

// ServeHTTP authenticates, asks the pipeline, forwards and masks.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r, sp := p.span(r)
	defer sp.End()
	ctx := r.Context()
	escaped, decoded, err := p.targetPath(r)
	if err == nil {
		err = checkOverrides(r)
	}
	if err != nil {
		p.writeError(w, r, err)
		return
	}
	caller, err := p.pipe.Identify(ctx, door.Credentials(r))
	if err == nil {
		err = p.checkForm(w, r)
	}
	if err != nil {
		p.writeError(w, r, err)
		return
	}
	st := broker.Statement{Kind: broker.KindHTTP, Method: r.Method, Path: decoded}
	dec, err := p.pipe.Statement(ctx, broker.StatementCall{Caller: caller, Door: Door, Target: p.cfg.Target, Statement: st,
		ApprovalID: strings.TrimSpace(r.Header.Get(broker.HeaderApproval))})
	if err != nil {
		p.writeError(w, r, err)
		return
	}
	start := time.Now()
	out := broker.StatementOutcome{ID: dec.ID, Caller: caller, Door: Door, Target: p.cfg.Target}
	n, masked, err := p.forward(w, r, escaped)
	out.Bytes, out.Masked, out.Duration, out.Err = n, masked, time.Since(start), err
	p.pipe.StatementDone(ctx, out)
}

// span continues the client's trace context (traceparent) and, with a
// tracer, starts the request's server span: named for the method and the
// mount, never the path, which may carry values. The forwarded request
// carries its context; without a tracer, the client's passes through.
func (p *Proxy) span(r *http.Request) (*http.Request, trace.Span) {
	ctx := door.TraceContext(r.Context(), r.Header)
	if p.cfg.Tracer == nil {
		return r.WithContext(ctx), trace.SpanFromContext(ctx)
	}
	method := r.Method
	if !knownMethod(method) {
		method = "_OTHER"
	}
	ctx, sp := p.cfg.Tracer.Start(ctx, method+" "+p.cfg.PathPrefix, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(semconv.HTTPRequestMethodKey.String(method), semconv.HTTPRoute(p.cfg.PathPrefix),
			broker.AttrDoor.String(Door), broker.AttrTarget.String(p.cfg.Target)))
	return r.WithContext(ctx), sp
}

func knownMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
		http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return true
	}
	return false
}

// writeError writes a refusal, marking the request's span with its code.
func (p *Proxy) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if sp := trace.SpanFromContext(r.Context()); sp.IsRecording() {
		code := string(broker.CodeOf(err))
		sp.SetAttributes(broker.AttrErrorCode.String(code))
		sp.SetStatus(codes.Error, code)
	}
	p.cfg.WriteError(w, r, err)
}

// forward sends the request to the target and writes its response:
// headers masked with the detectors, the body decoded, masked, passed as
// a declared content type or withheld.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, escaped string) (int, int, error) {
	req, err := p.upstreamRequest(w, r, escaped)
	if err != nil {
		p.writeError(w, r, broker.Errorf(broker.CodeInvalidRequest, "the request cannot be forwarded"))
		return 0, 0, err
	}
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			p.writeError(w, r, broker.Errorf(broker.CodePayloadTooLarge, "the request body exceeds %d bytes", p.cfg.MaxBodyBytes))
			return 0, 0, err
		}
		p.log.Warn("target request failed", zap.String("error", p.pipe.MaskText(err.Error())))
		p.writeError(w, r, broker.Errorf(broker.CodeTargetUnavailable, "target %s did not answer", p.cfg.Target))
		return 0, 0, err
	}
	defer resp.Body.Close()
	if sp := trace.SpanFromContext(r.Context()); sp.IsRecording() {
		sp.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
	}
	stripHop(resp.Header)
	resp.Header.Del("Set-Cookie")
	count := p.maskHeaders(resp.Header)
	n, masked, err := p.respond(w, resp)
	if err != nil {
		var be *broker.Error
		if errors.As(err, &be) {
			p.writeError(w, r, err)
		}
		return n, count + masked, err
	}
	return n, count + masked, nil
}

// upstreamRequest builds the request to the target: the caller's method,
// path and query, its headers minus credentials, hop-by-hop and toolgate
// headers, plus the target's headers.
func (p *Proxy) upstreamRequest(w http.ResponseWriter, r *http.Request, escaped string) (*http.Request, error) {
	u := *p.base
	u.RawPath = p.base.EscapedPath() + escaped
	u.Path, _ = url.PathUnescape(u.RawPath)
	u.RawQuery = r.URL.RawQuery
	var body io.Reader
	if r.Body != nil && r.Body != http.NoBody {
		body = http.MaxBytesReader(w, r.Body, p.cfg.MaxBodyBytes)
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = r.ContentLength
	for k, vs := range r.Header {
		if strings.HasPrefix(strings.ToLower(k), "x-toolgate-") {
			continue
		}
		req.Header[k] = append([]string(nil), vs...)
	}
	stripHop(req.Header)
	req.Header.Del("Authorization")
	req.Header.Del("Cookie")
	// The transport negotiates compression itself, so gzip bodies arrive
	// decoded; respond decodes what else it can.
	req.Header.Del("Accept-Encoding")
	req.Header.Del("Forwarded")
	req.Header.Del("X-Forwarded-For")
	for k, v := range p.cfg.Headers {
		req.Header.Set(k, v)
	}
	if p.cfg.Tracer != nil {
		propagation.TraceContext{}.Inject(r.Context(), propagation.HeaderCarrier(req.Header))
	}
	return req, nil
}

// maskHeaders masks every response header value with the detectors (a card
// in Location or in a custom header); a header whose name holds a
// detector hit is dropped. It returns how many headers it changed.
func (p *Proxy) maskHeaders(h http.Header) int {
	n := 0
	for k, vs := range h {
		if p.pipe.MaskText(k) != k {
			delete(h, k)
			n++
			continue
		}
		for i, v := range vs {
			if m := p.pipe.MaskText(v); m != v {
				vs[i] = m
				n++
			}
		}
	}
	return n
}

func copyHeader(dst, src http.Header) {
	for k, vs := range src {
		dst[k] = append([]string(nil), vs...)
	}
}
