package httptarget

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

// DefaultTimeout bounds a request when the config does not.
const DefaultTimeout = 30 * time.Second

// DefaultMaxResponseBytes caps a response body when the config does not.
const DefaultMaxResponseBytes = 4 << 20

// Config is an HTTP API target.
type Config struct {
	// Name is the target name, used in error messages.
	Name string
	// BaseURL is the scheme, host and optional base path every request
	// goes to, e.g. https://billing.internal/api.
	BaseURL string
	// Headers are added to every request (credentials). Their values are
	// secrets.
	Headers map[string]string
	// Timeout bounds a whole request, body included; 0 means 30s.
	Timeout time.Duration
	// MaxResponseBytes caps the response body; 0 means 4 MiB.
	MaxResponseBytes int64
}

// Validate reports the first problem with the config. It never echoes a
// header value.
func (c Config) Validate() error {
	if c.Name == "" {
		return errors.New("http target: name is required")
	}
	if _, err := c.parseBase(); err != nil {
		return err
	}
	for name, value := range c.Headers {
		if !validHeaderName(name) {
			return fmt.Errorf("http target %s: header name %q is not a valid HTTP header name", c.Name, name)
		}
		if strings.ContainsAny(value, "\r\n\x00") {
			return fmt.Errorf("http target %s: the value of header %s contains a line break or NUL", c.Name, name)
		}
		switch http.CanonicalHeaderKey(name) {
		case "Host", "Content-Length", "Transfer-Encoding", "Connection", "Content-Type":
			return fmt.Errorf("http target %s: header %s is set by toolgate and cannot be configured", c.Name, name)
		}
	}
	if c.Timeout < 0 {
		return fmt.Errorf("http target %s: timeout must not be negative", c.Name)
	}
	if c.MaxResponseBytes < 0 {
		return fmt.Errorf("http target %s: max_response_bytes must not be negative", c.Name)
	}
	return nil
}

func (c Config) parseBase() (*url.URL, error) {
	if c.BaseURL == "" {
		return nil, fmt.Errorf("http target %s: base_url is required", c.Name)
	}
	u, err := url.Parse(c.BaseURL)
	switch {
	case err != nil:
		return nil, fmt.Errorf("http target %s: base_url is not a valid URL", c.Name)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("http target %s: base_url must start with http:// or https://", c.Name)
	case u.Host == "":
		return nil, fmt.Errorf("http target %s: base_url has no host", c.Name)
	case u.User != nil:
		return nil, fmt.Errorf("http target %s: base_url must not carry credentials; put them in headers", c.Name)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("http target %s: base_url must not have a query or fragment", c.Name)
	}
	return u, nil
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b <= ' ' || b >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, b) >= 0 {
			return false
		}
	}
	return true
}

// Connector sends HTTP operations to one target.
type Connector struct {
	cfg    Config
	base   *url.URL
	header http.Header
	client *http.Client
	log    *zap.Logger
}

var (
	_ broker.Executor  = (*Connector)(nil)
	_ broker.RowCapper = (*Connector)(nil)
)

// New returns a connector for a valid config. A nil logger logs nothing.
func New(cfg Config, log *zap.Logger) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	base, _ := cfg.parseBase()
	header := http.Header{}
	for k, v := range cfg.Headers {
		header.Set(k, v)
	}
	transport := &http.Transport{
		// No proxy from the environment: where credentials go is decided
		// by the config alone.
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	client := &http.Client{
		Transport: transport,
		// Redirects are answers, not instructions: following one could send
		// the credentials elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Connector{cfg: cfg, base: base, header: header, client: client, log: log.With(zap.String("target", cfg.Name))}, nil
}

// Close releases idle connections.
func (c *Connector) Close() { c.client.CloseIdleConnections() }

var allowedMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true,
	http.MethodPut: true, http.MethodPatch: true, http.MethodDelete: true,
}

// URL returns the URL an operation is sent to, or an *broker.Error when the
// operation's path would leave the target.
func (c *Connector) URL(op *broker.HTTPOperation) (*url.URL, error) {
	p := op.Path
	if !strings.HasPrefix(p, "/") {
		return nil, broker.Errorf(broker.CodeInvalidRequest, "target %s: the request path must start with \"/\"", c.cfg.Name)
	}
	if strings.ContainsAny(p, "?#\\") || strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, broker.Errorf(broker.CodeInvalidRequest, "target %s: the request path contains a character that must be escaped", c.cfg.Name)
	}
	for _, seg := range strings.Split(p, "/") {
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return nil, broker.Errorf(broker.CodeInvalidRequest, "target %s: the request path is not validly escaped", c.cfg.Name)
		}
		// An escaped slash may be decoded by the server: check its parts too.
		for _, part := range strings.FieldsFunc(dec, func(r rune) bool { return r == '/' || r == '\\' }) {
			if part == "." || part == ".." {
				return nil, broker.Errorf(broker.CodeInvalidRequest, "target %s: the request path may not contain \".\" or \"..\" segments", c.cfg.Name)
			}
		}
	}
	raw := c.base.Scheme + "://" + c.base.Host + strings.TrimRight(c.base.EscapedPath(), "/") + p
	u, err := url.Parse(raw)
	if err != nil {
		return nil, broker.Errorf(broker.CodeInvalidRequest, "target %s: the request path is not a valid URL path", c.cfg.Name)
	}
	if u.Scheme != c.base.Scheme || u.Host != c.base.Host || u.User != nil {
		return nil, broker.Errorf(broker.CodeInvalidRequest, "target %s: the request path would change the host", c.cfg.Name)
	}
	if len(op.Query) > 0 {
		u.RawQuery = op.Query.Encode()
	}
	return u, nil
}

// RowCap is 0: an HTTP call returns a response, never rows, so a rows
// budget reserves nothing for it (broker.RowCapper).
func (c *Connector) RowCap(broker.Operation) int { return 0 }

// Execute sends op.HTTP and returns {"status": code, "body": ...}.
func (c *Connector) Execute(ctx context.Context, op broker.Operation) (broker.Output, error) {
	if op.HTTP == nil {
		return broker.Output{}, broker.Errorf(broker.CodeInvalidRequest, "target %s runs HTTP operations only", c.cfg.Name)
	}
	method := strings.ToUpper(op.HTTP.Method)
	if method == "" {
		method = http.MethodGet
	}
	if !allowedMethods[method] {
		return broker.Output{}, broker.Errorf(broker.CodeInvalidRequest, "target %s: method %q is not allowed (GET, HEAD, POST, PUT, PATCH, DELETE)", c.cfg.Name, op.HTTP.Method)
	}
	u, err := c.URL(op.HTTP)
	if err != nil {
		return broker.Output{}, err
	}
	var body io.Reader
	if op.HTTP.Body != nil {
		if !json.Valid(op.HTTP.Body) {
			return broker.Output{}, broker.Errorf(broker.CodeInvalidRequest, "target %s: the request body is not valid JSON", c.cfg.Name)
		}
		body = bytes.NewReader(op.HTTP.Body)
	}
	if err := ctx.Err(); err != nil {
		return broker.Output{}, c.contextError(ctx)
	}

	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, u.String(), body)
	if err != nil {
		return broker.Output{}, broker.Wrap(broker.CodeInvalidRequest, err, fmt.Sprintf("target %s: the request could not be built", c.cfg.Name))
	}
	if req.URL.Host != c.base.Host {
		return broker.Output{}, broker.Errorf(broker.CodeInvalidRequest, "target %s: the request path would change the host", c.cfg.Name)
	}
	req.Header.Set("Accept", "application/json")
	for k, v := range c.header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// The trace context of the broker's connector span (or the caller's):
	// traceparent and tracestate.
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))

	resp, err := c.client.Do(req)
	if err != nil {
		return broker.Output{}, c.transportError(ctx, rctx, err)
	}
	defer resp.Body.Close()

	if resp.StatusCode >= 500 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return broker.Output{}, broker.Errorf(broker.CodeTargetError, "target %s answered HTTP %d %s", c.cfg.Name, resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	limit := c.cfg.MaxResponseBytes
	if resp.ContentLength > limit {
		return broker.Output{}, c.tooLarge()
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return broker.Output{}, c.transportError(ctx, rctx, err)
	}
	if int64(len(data)) > limit {
		return broker.Output{}, c.tooLarge()
	}
	value := encodeResult(resp.StatusCode, data)
	return broker.Output{Value: value, Bytes: len(value)}, nil
}

func (c *Connector) tooLarge() error {
	return broker.Errorf(broker.CodeTargetError, "target %s: response larger than %d bytes", c.cfg.Name, c.cfg.MaxResponseBytes)
}

// transportError classifies a failed round trip. The *url.Error text names
// the URL, so only its inner error is logged and nothing is returned.
func (c *Connector) transportError(parent, rctx context.Context, err error) error {
	if parent.Err() != nil {
		return c.contextError(parent)
	}
	inner := err
	var ue *url.Error
	if errors.As(err, &ue) {
		inner = ue.Err
	}
	if rctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return broker.Wrap(broker.CodeTimeout, inner, fmt.Sprintf("target %s did not answer within %s", c.cfg.Name, c.cfg.Timeout))
	}
	c.log.Warn("http target unavailable", zap.String("error", inner.Error()))
	return broker.Wrap(broker.CodeTargetUnavailable, inner, fmt.Sprintf("target %s is unavailable", c.cfg.Name))
}

func (c *Connector) contextError(ctx context.Context) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return broker.Wrap(broker.CodeTimeout, err, fmt.Sprintf("target %s did not answer before the deadline", c.cfg.Name))
	}
	return broker.Wrap(broker.CodeUnavailable, err, fmt.Sprintf("the call was cancelled before target %s answered", c.cfg.Name))
}

// encodeResult writes {"status":code,"body":...}: the body as JSON when it
// is JSON, as a JSON string otherwise, null when empty.
func encodeResult(status int, data []byte) json.RawMessage {
	var buf bytes.Buffer
	buf.Grow(len(data) + 32)
	buf.WriteString(`{"status":`)
	buf.WriteString(strconv.Itoa(status))
	buf.WriteString(`,"body":`)
	trimmed := bytes.TrimSpace(data)
	switch {
	case len(trimmed) == 0:
		buf.WriteString("null")
	case json.Valid(trimmed):
		buf.Write(trimmed)
	default:
		s, _ := json.Marshal(string(data))
		buf.Write(s)
	}
	buf.WriteByte('}')
	return buf.Bytes()
}
