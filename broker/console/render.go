package console

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/door"
)

// assets are the console's templates and static files, embedded so the
// binary serves them with nothing else installed.
//
//go:embed assets
var assets embed.FS

// page is what every template gets.
type page struct {
	Title   string
	Nav     string
	Viewer  string
	Auditor bool
	CSRF    string
	Flash   *flash
	Body    any
}

// pages holds one parsed template set per page.
type pages struct {
	sets map[string]*template.Template
}

// pageNames are the page templates, each rendered inside layout.html.
var pageNames = []string{"signin", "error", "inbox", "history", "approval", "runs", "run"}

func parsePages() (*pages, error) {
	funcs := template.FuncMap{
		"json":     prettyJSON,
		"utc":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"rfc3339":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"approved": approvedVotes,
		"path":     url.PathEscape,
		"label":    eventLabel,
		"join":     strings.Join,
	}
	p := &pages{sets: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(assets, "assets/templates/layout.html", "assets/templates/partials.html", "assets/templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console templates: %w", err)
		}
		p.sets[name] = t
	}
	return p, nil
}

// static serves the embedded CSS and JavaScript.
func staticFiles() http.Handler {
	sub, err := fs.Sub(assets, "assets/static")
	if err != nil {
		panic(err) // the embedded tree always has it
	}
	fsrv := http.StripPrefix(pathStatic, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		fsrv.ServeHTTP(w, r)
	})
}

// render executes page template name into a buffer first, so a template
// failure is a clean 500, never half a page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	var buf bytes.Buffer
	if err := c.pages.sets[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		c.internal(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// renderFor renders a page for a signed-in viewer, with the navigation,
// the sign-out form's CSRF token and any one-time message.
func (c *Console) renderFor(w http.ResponseWriter, r *http.Request, v viewer, status int, name string, p page) {
	p.Viewer, p.Auditor, p.CSRF = v.principal().Subject, v.auditor, v.csrf
	if f := c.sessions.takeFlash(v.sessionID); f.Text != "" {
		p.Flash = &f
	}
	c.render(w, r, status, name, p)
}

// errorData is the body of the error page.
type errorData struct {
	Status  int
	Heading string
	Message string
}

// errorPage answers with a page that says, in one sentence, why.
func (c *Console) errorPage(w http.ResponseWriter, r *http.Request, status int, heading, message string) {
	c.render(w, r, status, "error", page{Title: heading, Body: errorData{Status: status, Heading: heading, Message: message}})
}

// errorPageFor is errorPage for a signed-in viewer (with the navigation).
func (c *Console) errorPageFor(w http.ResponseWriter, r *http.Request, v viewer, status int, heading, message string) {
	c.renderFor(w, r, v, status, "error", page{Title: heading, Body: errorData{Status: status, Heading: heading, Message: message}})
}

// refusal answers a refusal from a service with its own message; an
// internal failure goes to the broker, which logs its cause once under an
// incident id, and the page shows only that id.
func (c *Console) refusal(w http.ResponseWriter, r *http.Request, v viewer, err error) {
	e := c.cfg.Reporter.Report(err)
	msg := e.Message
	heading := "Refused"
	switch e.Code {
	case broker.CodeNotFound:
		heading = "Not found"
	case broker.CodeForbidden:
		heading = "Not allowed"
	case broker.CodeInternal, broker.CodeUnavailable, broker.CodeAuditUnavailable:
		heading = "Unavailable"
	}
	c.errorPageFor(w, r, v, door.Status(e.Code), heading, msg)
}

// internal answers a failure of the console itself (a template, a panic):
// the broker logs it under an incident id, and the page shows only that.
func (c *Console) internal(w http.ResponseWriter, r *http.Request, err error) {
	e := c.cfg.Reporter.Report(broker.Wrap(broker.CodeInternal, fmt.Errorf("console %s: %w", r.URL.Path, err), "the console page failed"))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = fmt.Fprintln(w, e.Message)
}

// prettyJSON indents a masked JSON document for display.
func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return string(raw)
	}
	return out.String()
}

// approvedVotes counts the approving votes.
func approvedVotes(votes []broker.ApprovalVote) int {
	n := 0
	for _, v := range votes {
		if v.Approve {
			n++
		}
	}
	return n
}

// eventLabels name the audit event kinds for people.
var eventLabels = map[broker.EventKind]string{
	broker.EventToolCall: "Tool call", broker.EventGrantMinted: "Grant minted", broker.EventGrantRevoked: "Grant revoked",
	broker.EventApprovalRequested: "Approval requested", broker.EventApprovalVoted: "Vote",
	broker.EventApprovalDecided: "Approval decided", broker.EventApprovalConsumed: "Approved call finished",
	broker.EventApprovalExpired: "Approval expired", broker.EventApprovalStale: "Approval stale",
	broker.EventSessionOpened: "Passthrough session opened", broker.EventStatement: "Passthrough statement",
	broker.EventSessionClosed: "Passthrough session closed", broker.EventPolicyReloaded: "Policy reloaded",
}

func eventLabel(k broker.EventKind) string {
	if l, ok := eventLabels[k]; ok {
		return l
	}
	return string(k)
}
