package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/door"
)

// Health returns the /healthz handler: 200 {"status":"ok"} while the
// process serves HTTP at all.
func Health() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		door.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// Ready returns the /readyz handler. check says whether the broker can serve
// calls (stores reachable, config loaded); it gets the request context with
// a 5 second deadline. Not ready → 503 {"status":"not_ready","reason":...}.
// The reason is the message of a *broker.Error, else the error's text, so
// check must return safe text (no DSN, no password).
func Ready(check func(ctx context.Context) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if check == nil {
			door.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := check(ctx); err != nil {
			reason := err.Error()
			var e *broker.Error
			if errors.As(err, &e) {
				reason = e.Message
			}
			door.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not_ready", "reason": reason})
			return
		}
		door.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}
