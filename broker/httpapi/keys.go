package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/door"
)

// KeyRequest asks for an API key (the body of POST /v1/keys).
type KeyRequest struct {
	Name  string
	Owner string
	// ExpiresIn is the requested lifetime; zero asks for the maximum.
	ExpiresIn time.Duration
}

// KeyService is the key service as the keys API sees it (cmd/toolgate
// adapts auth.Keys to it). It decides who may manage keys.
type KeyService interface {
	// CreateKey makes a key and returns it, the only time it is shown.
	CreateKey(ctx context.Context, p broker.Principal, req KeyRequest) (key string, info broker.KeyInfo, err error)
	// Keys lists every key, configured and made at run time.
	Keys(ctx context.Context, p broker.Principal) ([]broker.KeyInfo, error)
	// RevokeKey revokes a key made at run time.
	RevokeKey(ctx context.Context, p broker.Principal, name string) error
}

// keysAPI serves /v1/keys.
type keysAPI struct {
	reporter
	svc KeyService
	log *zap.Logger
}

// NewKeys returns the handler for POST /v1/keys, GET /v1/keys and
// DELETE /v1/keys/{name}. Every request is authenticated; svc decides who
// may manage keys (auth.admins). A key appears only in the 201 answer of
// POST, never in a log or another answer.
func NewKeys(p broker.Pipeline, svc KeyService, opts Options) http.Handler {
	meta := opts.ResourceMetadataURL
	k := &keysAPI{reporter: reporter{p: p, meta: meta}, svc: svc, log: opts.logger()}
	mux := http.NewServeMux()
	mux.Handle("/v1/keys", byMethod(p, meta, http.MethodPost, k.create, k.list))
	mux.Handle("/v1/keys/{name}", byMethod(p, meta, http.MethodDelete, k.revoke, nil))
	return finishMux(p, meta, mux)
}

// keyJSON is the body of POST /v1/keys.
type keyJSON struct {
	Name      string          `json:"name"`
	Owner     string          `json:"owner"`
	ExpiresIn json.RawMessage `json:"expires_in"`
}

// createdKeyJSON is the 201 answer of POST /v1/keys.
type createdKeyJSON struct {
	broker.KeyInfo
	Key string `json:"key"`
}

func (k *keysAPI) create(w http.ResponseWriter, r *http.Request, c broker.Caller) {
	var in keyJSON
	if err := decodeBody(w, r, &in, `{"name": "support-bot-2", "owner": "user:ana@example.com", "expires_in": "30d"}`); err != nil {
		k.writeError(w, err)
		return
	}
	var ttl time.Duration
	if len(bytes.TrimSpace(in.ExpiresIn)) > 0 && string(bytes.TrimSpace(in.ExpiresIn)) != "null" {
		var err error
		if ttl, err = parseLifetime(in.ExpiresIn, "expires_in"); err != nil {
			k.writeError(w, err)
			return
		}
	}
	key, info, err := k.svc.CreateKey(r.Context(), c.Principal, KeyRequest{Name: in.Name, Owner: in.Owner, ExpiresIn: ttl})
	if err != nil {
		k.writeError(w, err)
		return
	}
	k.log.Info("api key created", zap.String("key", info.Name), zap.String("owner", info.Owner), zap.String("by", c.Principal.Subject))
	w.Header().Set("Location", "/v1/keys/"+info.Name)
	door.WriteJSON(w, http.StatusCreated, createdKeyJSON{KeyInfo: info, Key: key})
}

func (k *keysAPI) list(w http.ResponseWriter, r *http.Request, c broker.Caller) {
	keys, err := k.svc.Keys(r.Context(), c.Principal)
	if err != nil {
		k.writeError(w, err)
		return
	}
	if keys == nil {
		keys = []broker.KeyInfo{}
	}
	door.WriteJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

func (k *keysAPI) revoke(w http.ResponseWriter, r *http.Request, c broker.Caller) {
	name := r.PathValue("name")
	if err := k.svc.RevokeKey(r.Context(), c.Principal, name); err != nil {
		k.writeError(w, err)
		return
	}
	k.log.Info("api key revoked", zap.String("key", name), zap.String("by", c.Principal.Subject))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// readBody reads a request body of at most 64 KiB. A longer one is refused
// payload_too_large; advice ends that message ("; send a smaller scope").
func readBody(w http.ResponseWriter, r *http.Request, advice string) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, broker.Errorf(broker.CodePayloadTooLarge, "the request body is over 64 KiB%s", advice)
		}
		return nil, broker.Wrap(broker.CodeInvalidRequest, err, "the request body could not be read")
	}
	return body, nil
}

// decodeStrict decodes the JSON value body into v, refusing fields v does
// not have.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// decodeObject decodes the JSON object body into v, refusing unknown
// fields; example shows the expected shape in the refusal.
func decodeObject(body []byte, v any, example string) error {
	if err := decodeStrict(body, v); err != nil {
		return broker.Errorf(broker.CodeInvalidRequest, "the body must be a JSON object like %s: %s", example, jsonProblem(err))
	}
	return nil
}

// decodeBody reads a JSON object of at most 64 KiB into v, refusing
// unknown fields; an empty body is an empty object. example shows the
// expected shape in the refusal.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, example string) error {
	body, err := readBody(w, r, "")
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	return decodeObject(body, v, example)
}

// parseLifetime reads a lifetime: a number of days ("30d"), a Go duration
// ("720h") or a number of seconds.
func parseLifetime(raw json.RawMessage, field string) (time.Duration, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if n, ok := strings.CutSuffix(strings.TrimSpace(s), "d"); ok {
			if days, err := strconv.Atoi(n); err == nil && days > 0 && days < 100000 {
				return time.Duration(days) * 24 * time.Hour, nil
			}
		}
	}
	d, err := parseTTL(raw)
	if err != nil {
		return 0, &broker.Error{Code: broker.CodeInvalidArguments, Field: field, Message: field + ` must be a positive duration like "30d" or "12h", or a number of seconds`}
	}
	return d, nil
}
