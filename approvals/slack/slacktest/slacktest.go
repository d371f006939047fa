package slacktest

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// Channel is the channel id every posted message lands in.
const Channel = "C0APPROVALS"

// API is the fake Web API. Mount it where slack.OptionAPIURL points (the
// method is the last path element). The zero value is not usable: use New.
type API struct {
	// users maps a Slack user id to the users.info "user" object.
	users map[string]string
	mu    sync.Mutex
	down  bool
	ts    int
	calls map[string][]url.Values
}

// New returns an API whose users.info answers from users (user id →
// the JSON "user" object); other ids are user_not_found.
func New(users map[string]string) *API {
	return &API{users: users, calls: map[string][]url.Values{}}
}

// SetDown makes every later call answer 503, as Slack does in an outage.
func (a *API) SetDown(down bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.down = down
}

// ServeHTTP records the call and answers it. Posted messages get the
// timestamps "1700000000.00011", "1700000000.00012", … in call order.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	method := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	a.mu.Lock()
	a.calls[method] = append(a.calls[method], r.Form)
	down := a.down
	a.ts++
	ts := "1700000000.0001" + strconv.Itoa(a.ts)
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if down {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"ok":false,"error":"service_unavailable"}`))
		return
	}
	switch method {
	case "chat.postMessage", "chat.update":
		_, _ = w.Write([]byte(`{"ok":true,"channel":"` + Channel + `","ts":"` + ts + `"}`))
	case "chat.postEphemeral":
		_, _ = w.Write([]byte(`{"ok":true,"message_ts":"` + ts + `"}`))
	case "users.info":
		u, ok := a.users[r.Form.Get("user")]
		if !ok {
			_, _ = w.Write([]byte(`{"ok":false,"error":"user_not_found"}`))
			return
		}
		_, _ = w.Write([]byte(`{"ok":true,"user":` + u + `}`))
	case "apps.connections.open":
		_, _ = w.Write([]byte(`{"ok":true,"url":"ws://` + r.Host + `/ws"}`))
	default:
		_, _ = w.Write([]byte(`{"ok":false,"error":"unknown_method"}`))
	}
}

// Count is how many times method was called.
func (a *API) Count(method string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.calls[method])
}

// Last is the form of the last call of method; empty when there was none.
func (a *API) Last(method string) url.Values {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c := a.calls[method]; len(c) > 0 {
		return c[len(c)-1]
	}
	return url.Values{}
}
