package mcp

import "time"

// EventKind says what an Event reports.
type EventKind string

// The kinds of Event.
const (
	// EventConnected: a session was established and initialised.
	EventConnected EventKind = "connected"
	// EventDisconnected: a session was lost or could not be established;
	// Reason says why. The connector retries with backoff.
	EventDisconnected EventKind = "disconnected"
	// EventEvaluated: the tools were listed and checked against the pins
	// and Snapshot is the result now served. Trigger says why: "start",
	// "reconnect", "list_changed" or "refresh".
	EventEvaluated EventKind = "evaluated"
	// EventQuarantined: a tool's definition differs from its pin, so it is
	// withheld. It is sent when a tool enters quarantine or what changed
	// differs from the last report, not again at each evaluation.
	EventQuarantined EventKind = "quarantined"
	// EventRequestRefused: the upstream asked toolgate for sampling,
	// elicitation or roots, and was refused; Reason names the request.
	EventRequestRefused EventKind = "request_refused"
)

// Event is something the later wiring records (an audit event) or
// announces (a Slack notice). Its text is safe to show: it names tools and
// parts, never a secret or an upstream's free text.
type Event struct {
	Kind   EventKind
	Target string
	Time   time.Time
	// Tool and Name are the upstream and catalog names (EventQuarantined).
	Tool string
	Name string
	// Changes names what differs from the pin (EventQuarantined).
	Changes []Part
	Reason  string
	// Trigger and Snapshot come with EventEvaluated.
	Trigger  string
	Snapshot *Snapshot
}

// emit hands an event to Options.OnEvent, one at a time.
func (u *Upstream) emit(e Event) {
	if u.opt.OnEvent == nil {
		return
	}
	e.Target = u.cfg.Name
	e.Time = u.opt.Now()
	u.emitMu.Lock()
	defer u.emitMu.Unlock()
	u.opt.OnEvent(e)
}
