package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/toolgate/toolgate/broker"
	"go.uber.org/zap"
)

// errorBody is the JSON error envelope: {"error": {"code", "message",
// "field"?, "problems"?: [{"field", "message"}]}}.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code     broker.Code      `json:"code"`
	Message  string           `json:"message"`
	Field    string           `json:"field,omitempty"`
	Problems []broker.Problem `json:"problems,omitempty"`
}

// WriteError writes err as the JSON error envelope with the status of its
// code. An unauthenticated error also gets the WWW-Authenticate challenge
// pointing at resourceMetadataURL. An error that is not a *broker.Error
// becomes "internal" with an incident id; WriteError returns that id (""
// otherwise) so the caller can log the cause under it. The cause itself is
// never written.
func WriteError(w http.ResponseWriter, err error, resourceMetadataURL string) (incident string) {
	e, incident := broker.AsError(err)
	if e == nil {
		e, incident = broker.AsError(errors.New("WriteError called without an error"))
	}
	if e.Code == broker.CodeUnauthenticated && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", Challenge(resourceMetadataURL, ""))
	}
	WriteJSON(w, e.Code.HTTPStatus(), errorBody{Error: errorDetail{Code: e.Code, Message: e.Message, Field: e.Field, Problems: e.Problems}})
	return incident
}

// Challenge returns the WWW-Authenticate value for a 401 (RFC 6750,
// RFC 9728): `Bearer resource_metadata="<url>"`, plus `error="<bearerError>"`
// when bearerError is not empty ("invalid_token" when a token was presented
// and refused, "invalid_request" when the Authorization header was
// malformed).
func Challenge(resourceMetadataURL, bearerError string) string {
	v := "Bearer"
	sep := " "
	if resourceMetadataURL != "" {
		v += sep + fmt.Sprintf("resource_metadata=%q", resourceMetadataURL)
		sep = ", "
	}
	if bearerError != "" {
		v += sep + fmt.Sprintf("error=%q", bearerError)
	}
	return v
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"the response could not be encoded"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// Authenticate returns a handler that identifies the caller of every request
// before next runs: it extracts the bearer token and X-Toolgate-* headers and
// calls p.Identify once. Missing or bad credentials get a 401 with the
// WWW-Authenticate challenge; a caller that may not act as the claimed graph
// gets a 403 with the reason; next never runs for either.
func Authenticate(p broker.Pipeline, resourceMetadataURL string, next func(http.ResponseWriter, *http.Request, broker.Caller)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cr := broker.CredentialsFromRequest(r)
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

// Recover returns a handler that turns a panic in next into a 500 "internal"
// error carrying an incident id, logging the panic (never the request body)
// under that id. The client never sees the panic value or a stack trace.
// http.ErrAbortHandler is re-raised, as net/http expects.
func Recover(log *zap.Logger, next http.Handler) http.Handler {
	if log == nil {
		log = zap.NewNop()
	}
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
			_, incident := broker.AsError(fmt.Errorf("panic: %v", v))
			log.Error("handler panicked", zap.String("incident", incident), zap.String("method", r.Method),
				zap.String("path", r.URL.Path), zap.Any("panic", v), zap.StackSkip("stack", 2))
			if rw.wrote {
				// Too late for a clean error: abort the connection so the
				// client sees a failure, not a truncated success.
				panic(http.ErrAbortHandler)
			}
			WriteJSON(rw, http.StatusInternalServerError, errorBody{Error: errorDetail{
				Code: broker.CodeInternal, Message: "internal error (incident " + incident + ")",
			}})
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
