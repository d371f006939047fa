package slack

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
	"go.uber.org/zap"
)

// maxSkew is how old (or how far in the future) a signed request may be.
const maxSkew = 5 * time.Minute

// clickTimeout bounds the processing of one click after it was acked.
const clickTimeout = 30 * time.Second

// Handler returns the HTTP interactivity endpoint (/slack/interactions). It
// verifies X-Slack-Signature over the raw body with the signing secret,
// refuses timestamps more than 5 minutes off, reads the payload from the
// body only (never the query string), answers 200 at once, and processes
// the click afterwards. Anything that does not verify gets 401 and decides
// nothing.
func (n *Notifier) Handler(d Decider) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		sec, err := strconv.ParseInt(r.Header.Get("X-Slack-Request-Timestamp"), 10, 64)
		if err != nil || n.now().Sub(time.Unix(sec, 0)).Abs() > maxSkew {
			n.log.Warn("slack interaction refused: missing or stale timestamp", zap.String("remote", r.RemoteAddr))
			http.Error(w, "stale or missing X-Slack-Request-Timestamp", http.StatusUnauthorized)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "unreadable body", http.StatusBadRequest)
			return
		}
		sv, err := slack.NewSecretsVerifier(r.Header, n.cfg.SigningSecret)
		if err == nil {
			_, _ = sv.Write(body)
			err = sv.Ensure()
		}
		if err != nil {
			n.log.Warn("slack interaction refused: bad signature", zap.String("remote", r.RemoteAddr))
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		cb, err := parsePayload(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK) // Slack wants an ack within 3 seconds
		n.inflight.Add(1)
		go func() {
			defer n.inflight.Done()
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), clickTimeout)
			defer cancel()
			n.handle(ctx, d, cb)
		}()
	})
}

// parsePayload reads the form-encoded payload field of a verified body.
func parsePayload(body []byte) (slack.InteractionCallback, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("payload") == "" {
		return slack.InteractionCallback{}, errPayload
	}
	var cb slack.InteractionCallback
	if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
		return slack.InteractionCallback{}, errors.New("the interaction payload is not valid JSON")
	}
	return cb, nil
}

// RunSocketMode connects to Slack in Socket Mode and handles clicks until
// ctx ends. Every interactive envelope is acked before it is processed.
func (n *Notifier) RunSocketMode(ctx context.Context, d Decider) error {
	client := socketmode.New(n.api)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case evt, ok := <-client.Events:
				if !ok {
					return
				}
				if evt.Type != socketmode.EventTypeInteractive || evt.Request == nil {
					continue
				}
				if err := client.AckCtx(ctx, evt.Request.EnvelopeID, nil); err != nil {
					n.log.Warn("slack socket mode ack failed", zap.Error(err))
				}
				cb, ok := evt.Data.(slack.InteractionCallback)
				if !ok {
					continue
				}
				n.inflight.Add(1)
				go func() {
					defer n.inflight.Done()
					cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), clickTimeout)
					defer ccancel()
					n.handle(cctx, d, cb)
				}()
			}
		}
	}()
	err := client.RunContext(ctx)
	cancel()
	<-done
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
