package door

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"

	"github.com/toolgate/toolgate/broker"
)

// Identifier is the broker as Authenticate sees it.
type Identifier interface {
	Identify(ctx context.Context, cr broker.Credentials) (broker.Caller, error)
}

// Reporter is the broker as a door passes it a failure it must not show
// as is: a failure of a service the door serves beside the pipeline, or a
// panic. The broker logs an internal failure once, under an incident id,
// and answers the error to write. *broker.Broker is one.
type Reporter interface {
	Report(err error) *broker.Error
}

// ReportFunc adapts a function to Reporter.
type ReportFunc func(err error) *broker.Error

// Report calls f.
func (f ReportFunc) Report(err error) *broker.Error { return f(err) }

// Authenticate returns a handler that identifies the caller of every request
// before next runs: it extracts the bearer token and X-Toolgate-* headers and
// calls p.Identify once. Missing or bad credentials get a 401 with the
// WWW-Authenticate challenge; a caller that may not act as the claimed graph
// gets a 403 with the reason; next never runs for either. The request's
// trace context (TraceContext) is in the context of both.
func Authenticate(p Identifier, resourceMetadataURL string, next func(http.ResponseWriter, *http.Request, broker.Caller)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ctx := TraceContext(r.Context(), r.Header); ctx != r.Context() {
			r = r.WithContext(ctx)
		}
		cr := Credentials(r)
		caller, err := p.Identify(r.Context(), cr)
		if err != nil {
			if broker.CodeOf(err) == broker.CodeUnauthenticated {
				bearerErr := ""
				switch {
				case cr.Token != "":
					bearerErr = "invalid_token"
				case cr.Malformed:
					bearerErr = "invalid_request"
				}
				w.Header().Set("WWW-Authenticate", Challenge(resourceMetadataURL, bearerErr))
			}
			WriteError(w, err, resourceMetadataURL)
			return
		}
		next(w, r, caller)
	})
}

// Recover returns a handler that turns a panic in next into a 500
// "internal" error: the panic and its stack (never the request body) go to
// rep, which logs them under an incident id, and the client sees only that
// id. http.ErrAbortHandler is re-raised, as net/http expects.
func Recover(rep Reporter, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &trackingWriter{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			e := rep.Report(fmt.Errorf("%s %s: handler panicked: %v\n%s", r.Method, r.URL.Path, v, debug.Stack()))
			if rw.wrote {
				// Too late for a clean error: abort the connection so the
				// client sees a failure, not a truncated success.
				panic(http.ErrAbortHandler)
			}
			WriteError(rw, e, "")
		}()
		next.ServeHTTP(rw, r)
	})
}

// trackingWriter remembers whether the response was started.
type trackingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (t *trackingWriter) WriteHeader(code int) {
	t.wrote = true
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackingWriter) Write(b []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriter.Write(b)
}

// Flush passes through to the underlying writer, so streaming handlers
// (MCP's SSE) keep working behind Recover.
func (t *trackingWriter) Flush() {
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		t.wrote = true
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }
