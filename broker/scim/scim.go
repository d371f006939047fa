package scim

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/door"
)

// User is a SCIM user as the Directory keeps it.
type User struct {
	ID           string
	UserName     string
	ExternalID   string
	DisplayName  string
	Emails       []string
	Active       bool
	Created      time.Time
	LastModified time.Time
}

// Directory keeps the provisioned users and acts on their activation.
// Its errors are *broker.Error values: not_found, invalid_arguments (a
// userName that is taken is one, with Field "userName"), invalid_request
// (an unsupported filter), unavailable.
type Directory interface {
	CreateUser(ctx context.Context, u User) (User, error)
	User(ctx context.Context, id string) (User, error)
	FindUsers(ctx context.Context, attr, value string) ([]User, error)
	// Users returns a page (offset 0-based) and the total.
	Users(ctx context.Context, offset, limit int) ([]User, int, error)
	ReplaceUser(ctx context.Context, u User) (User, error)
	DeleteUser(ctx context.Context, id string) error
}

// Options configure the handler.
type Options struct {
	// Token is the bearer token the identity provider sends. Required,
	// at least 32 characters.
	Token string
	// BaseURL is the public URL of /scim/v2, for meta.location.
	BaseURL string
	Logger  *zap.Logger
	// Reporter logs an internal failure once, under the incident id the
	// client sees (the broker); nil gives the id without logging, for
	// tests.
	Reporter door.Reporter
}

// Schema URNs.
const (
	userSchema  = "urn:ietf:params:scim:schemas:core:2.0:User"
	listSchema  = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	errorSchema = "urn:ietf:params:scim:api:messages:2.0:Error"
	patchSchema = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	spcSchema   = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
)

// maxResults caps one page of users.
const maxResults = 200

type handler struct {
	dir   Directory
	token [sha256.Size]byte
	base  string
	log   *zap.Logger
	rep   door.Reporter
}

// New returns the handler to mount at /scim/v2/.
func New(dir Directory, opts Options) (http.Handler, error) {
	if dir == nil {
		return nil, errors.New("scim: a directory is required")
	}
	if len(opts.Token) < 32 {
		return nil, errors.New("scim: the token must be at least 32 characters")
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Reporter == nil {
		opts.Reporter = door.ReportFunc(func(err error) *broker.Error { e, _ := broker.AsError(err); return e })
	}
	h := &handler{dir: dir, token: sha256.Sum256([]byte(opts.Token)), base: strings.TrimRight(opts.BaseURL, "/"), log: opts.Logger, rep: opts.Reporter}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /scim/v2/ServiceProviderConfig", h.serviceProviderConfig)
	mux.HandleFunc("GET /scim/v2/Users", h.list)
	mux.HandleFunc("POST /scim/v2/Users", h.create)
	mux.HandleFunc("GET /scim/v2/Users/{id}", h.get)
	mux.HandleFunc("PUT /scim/v2/Users/{id}", h.replace)
	mux.HandleFunc("PATCH /scim/v2/Users/{id}", h.patch)
	mux.HandleFunc("DELETE /scim/v2/Users/{id}", h.delete)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "", fmt.Sprintf("no SCIM endpoint %s %s; toolgate serves /scim/v2/Users", r.Method, r.URL.Path))
	})
	return h.authenticated(mux), nil
}

// authenticated refuses every request without the SCIM bearer token.
func (h *handler) authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(sum[:], h.token[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="toolgate-scim"`)
			writeError(w, http.StatusUnauthorized, "", "a valid SCIM bearer token (auth.scim.token) is required")
			return
		}
		defer func() {
			if v := recover(); v != nil {
				e := h.rep.Report(fmt.Errorf("scim %s %s: handler panicked: %v", r.Method, r.URL.Path, v))
				writeError(w, http.StatusInternalServerError, "", e.Message)
			}
		}()
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		next.ServeHTTP(w, r)
	})
}

func (h *handler) serviceProviderConfig(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"schemas":               []string{spcSchema},
		"patch":                 map[string]bool{"supported": true},
		"bulk":                  map[string]any{"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
		"filter":                map[string]any{"supported": true, "maxResults": maxResults},
		"changePassword":        map[string]bool{"supported": false},
		"sort":                  map[string]bool{"supported": false},
		"etag":                  map[string]bool{"supported": false},
		"authenticationSchemes": []map[string]any{{"type": "oauthbearertoken", "name": "Bearer token", "description": "auth.scim.token"}},
	})
}

// filterPattern is the one filter form supported: <attr> eq "<value>".
var filterPattern = regexp.MustCompile(`(?i)^\s*([a-z][a-z0-9._]*)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$`)

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	start, count := intParam(q.Get("startIndex"), 1), intParam(q.Get("count"), maxResults)
	start, count = max(start, 1), min(max(count, 0), maxResults)
	var users []User
	var total int
	var err error
	if f := q.Get("filter"); f != "" {
		m := filterPattern.FindStringSubmatch(f)
		if m == nil {
			writeError(w, http.StatusBadRequest, "invalidFilter", `only filters of the form userName eq "ana@example.com" are supported`)
			return
		}
		value, uerr := strconv.Unquote(`"` + m[2] + `"`)
		if uerr != nil {
			writeError(w, http.StatusBadRequest, "invalidFilter", "the filter value is not a valid string")
			return
		}
		users, err = h.dir.FindUsers(r.Context(), m[1], value)
		total = len(users)
		users = page(users, start-1, count)
	} else {
		users, total, err = h.dir.Users(r.Context(), start-1, count)
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	resources := make([]any, 0, len(users))
	for _, u := range users {
		resources = append(resources, h.resource(u))
	}
	writeJSON(w, http.StatusOK, map[string]any{"schemas": []string{listSchema}, "totalResults": total,
		"startIndex": start, "itemsPerPage": len(resources), "Resources": resources})
}

func page(us []User, offset, limit int) []User {
	if offset >= len(us) {
		return nil
	}
	return us[offset:min(len(us), offset+limit)]
}

func intParam(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}

func (h *handler) create(w http.ResponseWriter, r *http.Request) {
	in, err := readUser(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	u, err := h.dir.CreateUser(r.Context(), in.user(User{Active: true}))
	if err != nil {
		h.fail(w, err)
		return
	}
	h.log.Info("scim user provisioned", zap.String("id", u.ID), zap.Bool("active", u.Active))
	w.Header().Set("Location", h.base+"/Users/"+u.ID)
	writeJSON(w, http.StatusCreated, h.resource(u))
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	u, err := h.dir.User(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, h.resource(u))
}

func (h *handler) replace(w http.ResponseWriter, r *http.Request) {
	old, err := h.dir.User(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, err)
		return
	}
	in, err := readUser(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	// PUT replaces the resource: an omitted active means active (RFC 7643
	// gives no default; Okta and Entra always send it).
	u := in.user(User{ID: old.ID, Active: true})
	h.save(w, r, u)
}

func (h *handler) patch(w http.ResponseWriter, r *http.Request) {
	u, err := h.dir.User(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, err)
		return
	}
	var req patchRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalidSyntax", "the body must be a SCIM PatchOp with Operations")
		return
	}
	if len(req.Operations) == 0 {
		writeError(w, http.StatusBadRequest, "invalidValue", "a PATCH needs at least one operation")
		return
	}
	for i, op := range req.Operations {
		if err := apply(&u, op); err != nil {
			writeError(w, http.StatusBadRequest, "invalidValue", fmt.Sprintf("Operations[%d]: %s", i, err.Error()))
			return
		}
	}
	h.save(w, r, u)
}

func (h *handler) save(w http.ResponseWriter, r *http.Request, u User) {
	u, err := h.dir.ReplaceUser(r.Context(), u)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.log.Info("scim user updated", zap.String("id", u.ID), zap.Bool("active", u.Active))
	writeJSON(w, http.StatusOK, h.resource(u))
}

func (h *handler) delete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := h.dir.DeleteUser(r.Context(), id); err != nil {
		h.fail(w, err)
		return
	}
	h.log.Info("scim user deprovisioned", zap.String("id", id))
	w.WriteHeader(http.StatusNoContent)
}

// fail writes a Directory error as a SCIM error.
func (h *handler) fail(w http.ResponseWriter, err error) {
	e := h.rep.Report(err)
	switch {
	case e.Code == broker.CodeNotFound:
		writeError(w, http.StatusNotFound, "", e.Message)
	case e.Code == broker.CodeInvalidArguments && e.Field == "userName" && strings.Contains(e.Message, "exists"):
		writeError(w, http.StatusConflict, "uniqueness", e.Message)
	case e.Code == broker.CodeInvalidRequest && e.Field == "filter":
		writeError(w, http.StatusBadRequest, "invalidFilter", e.Message)
	case e.Code == broker.CodeInvalidArguments || e.Code == broker.CodeInvalidRequest:
		writeError(w, http.StatusBadRequest, "invalidValue", e.Message)
	case e.Code == broker.CodePayloadTooLarge:
		writeError(w, http.StatusRequestEntityTooLarge, "", e.Message)
	default:
		writeError(w, door.Status(e.Code), "", e.Message)
	}
}

func writeError(w http.ResponseWriter, status int, scimType, detail string) {
	body := map[string]any{"schemas": []string{errorSchema}, "status": strconv.Itoa(status), "detail": detail}
	if scimType != "" {
		body["scimType"] = scimType
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"schemas":["`+errorSchema+`"],"status":"500","detail":"the response could not be encoded"}`)
	}
	w.Header().Set("Content-Type", "application/scim+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
