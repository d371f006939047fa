package approvals

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/toolgate/toolgate/broker"
	"go.uber.org/zap"
)

// Announcer shows approval requests to humans (a Slack channel): Announce
// posts a new request and returns a handle on the message, Update redraws
// it after a vote, a decision, an expiry or the execution.
type Announcer interface {
	Announce(ctx context.Context, r Request) (ref string, err error)
	Update(ctx context.Context, r Request) error
}

// Config wires a Service. Store, Masker and Recorder are required.
type Config struct {
	Store *Store
	// Notifier wakes waiting calls; nil means a LocalNotifier (one
	// instance). Several instances on Postgres need a PGNotifier.
	Notifier Notifier
	// Announcer posts requests to humans; nil means none (decisions come
	// through the HTTP API and the CLI only).
	Announcer Announcer
	Masker    broker.Masker
	Recorder  broker.Recorder
	// Timeout is how long a request stays pending (approvals.timeout) when
	// the deciding rule sets none; 0 means 30 minutes.
	Timeout time.Duration
	// Wait is how long Await blocks for a decision (approvals.wait); 0
	// means 20 seconds.
	Wait time.Duration
	// ProgressEvery is how often a waiting call reports progress and
	// re-reads the store; 0 means 5 seconds.
	ProgressEvery time.Duration
	// StaleAfter is how long an approved call may run before the sweeper
	// gives up on it: a request still executing after that (its instance
	// stopped mid-call) is consumed with an error saying its outcome is
	// unknown, so repeats get an answer and nothing runs twice; 0 means 15
	// minutes. Keep it above the slowest target's timeout.
	StaleAfter time.Duration
	// SweepEvery is how often Run expires overdue requests; 0 means 30
	// seconds.
	SweepEvery time.Duration
	// AnnounceTimeout bounds one Announce or Update; 0 means 5 seconds.
	AnnounceTimeout time.Duration
	Logger          *zap.Logger
	Now             func() time.Time
}

// Validate reports what is missing or out of range.
func (c Config) Validate() error {
	var problems []string
	if c.Store == nil {
		problems = append(problems, "Store is required")
	}
	if c.Masker == nil {
		problems = append(problems, "Masker is required")
	}
	if c.Recorder == nil {
		problems = append(problems, "Recorder is required")
	}
	for name, d := range map[string]time.Duration{"Timeout": c.Timeout, "Wait": c.Wait, "ProgressEvery": c.ProgressEvery, "SweepEvery": c.SweepEvery, "AnnounceTimeout": c.AnnounceTimeout} {
		if d < 0 {
			problems = append(problems, name+" must not be negative")
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return fmt.Errorf("approvals config: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Service is the approval gate: the broker's Approvals, and the one place
// every channel decides through.
type Service struct {
	cfg   Config
	store *Store
	note  Notifier
	log   *zap.Logger
	now   func() time.Time
}

var (
	_ broker.Approvals        = (*Service)(nil)
	_ broker.ApprovalRecorder = (*Service)(nil)
)

// New returns a Service for a valid config.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Notifier == nil {
		cfg.Notifier = NewLocalNotifier()
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Minute
	}
	if cfg.Wait == 0 {
		cfg.Wait = 20 * time.Second
	}
	if cfg.ProgressEvery == 0 {
		cfg.ProgressEvery = 5 * time.Second
	}
	if cfg.StaleAfter == 0 {
		cfg.StaleAfter = 15 * time.Minute
	}
	if cfg.SweepEvery == 0 {
		cfg.SweepEvery = 30 * time.Second
	}
	if cfg.AnnounceTimeout == 0 {
		cfg.AnnounceTimeout = 5 * time.Second
	}
	return &Service{cfg: cfg, store: cfg.Store, note: cfg.Notifier, log: cfg.Logger, now: cfg.Now}, nil
}

// storeErr turns a store failure into a fail-closed refusal.
func storeErr(err error) error {
	return broker.Wrap(broker.CodeUnavailable, err, "the approval store is unavailable, so the call is refused; retry later")
}

// Await finds the approval request of the call (the one it names with
// ResumeID, else the newest one for the same graph, node, run, tool and
// arguments) or creates one, then waits up to Config.Wait for a decision.
// ApprovalApproved means this call claimed the approval and must run now;
// ApprovalConsumed carries the result of the call that already ran.
func (s *Service) Await(ctx context.Context, req broker.ApprovalRequest) (broker.ApprovalOutcome, error) {
	if req.Tool == nil || req.ArgsHash == "" {
		return broker.ApprovalOutcome{}, broker.Errorf(broker.CodeInternal, "approval requested without a tool or an arguments hash")
	}
	var (
		r   Request
		err error
	)
	switch {
	case req.ResumeID != "":
		r, err = s.store.get(ctx, req.ResumeID)
		if errors.Is(err, errNotFound) || (err == nil && !sameCall(r, req)) {
			return broker.ApprovalOutcome{}, broker.Errorf(broker.CodeForbidden,
				"approval %s is not an approval of this call (the graph, node, run, tool and arguments must all match); call again without %s to request a new approval",
				req.ResumeID, broker.HeaderApproval)
		}
	default:
		statuses := []broker.ApprovalStatus{broker.ApprovalPending, broker.ApprovalApproved, broker.ApprovalExecuting}
		if req.Caller.Run != "" {
			// Within one run a repeat gets the recorded outcome; without a
			// run id there is no way to tell a repeat from a new call.
			statuses = append(statuses, broker.ApprovalDenied, broker.ApprovalConsumed)
		}
		r, err = s.store.findCall(ctx, req.Caller.Graph, req.Caller.Node, req.Caller.Run, req.Tool.Name, req.ArgsHash, statuses)
		if errors.Is(err, errNotFound) {
			r, err = s.create(ctx, req)
			if err != nil {
				return broker.ApprovalOutcome{}, err
			}
		}
	}
	if err != nil {
		return broker.ApprovalOutcome{}, storeErr(err)
	}
	return s.wait(ctx, r.ID)
}

// sameCall reports whether r was requested by the call req describes.
func sameCall(r Request, req broker.ApprovalRequest) bool {
	c := req.Caller
	return r.Graph == c.Graph && r.Node == c.Node && r.Run == c.Run && r.Tool == req.Tool.Name && r.ArgsHash == req.ArgsHash
}

// requesters are the names that may never approve the caller's call. Groups
// are not among them: a requester's group may hold other approvers.
func requesters(c broker.Caller) []string {
	names := []string{c.Principal.Subject}
	if c.Principal.Email != "" && c.Principal.Subject != "user:"+c.Principal.Email {
		names = append(names, "user:"+c.Principal.Email)
	}
	return names
}

// create stores, records and announces a new pending request.
func (s *Service) create(ctx context.Context, req broker.ApprovalRequest) (Request, error) {
	dec := req.Decision
	if len(dec.Approvers) == 0 {
		return Request{}, broker.Errorf(broker.CodeForbidden, "rule %s requires approval but names no approvers, so the call is refused", dec.Rule)
	}
	canonical, err := json.Marshal(req.Args)
	if err != nil {
		return Request{}, broker.Wrap(broker.CodeInternal, err, "the arguments could not be encoded for the approval request")
	}
	masked, err := s.cfg.Masker.MaskRecord(canonical)
	if err != nil {
		return Request{}, broker.Wrap(broker.CodeInternal, err, "the arguments could not be masked for the approval request, so the call is refused")
	}
	timeout := dec.Timeout
	if timeout <= 0 {
		timeout = s.cfg.Timeout
	}
	now := s.now().UTC()
	c := req.Caller
	r := Request{
		ApprovalInfo: broker.ApprovalInfo{
			ID: broker.NewID("ap"), Status: broker.ApprovalPending, Principal: c.Principal.Subject,
			Graph: c.Graph, Node: c.Node, Run: c.Run, Thread: c.Thread, Tool: req.Tool.Name, Target: req.Tool.Target,
			Args: masked, ArgsHash: req.ArgsHash, Rule: dec.Rule, PolicyVersion: dec.PolicyVersion,
			Approvers: slices.Clone(dec.Approvers), MinApprovals: max(1, dec.MinApprovals),
			CreatedAt: now, ExpiresAt: now.Add(timeout),
		},
		Requesters: requesters(c),
	}
	if err := s.store.insert(ctx, r); err != nil {
		return Request{}, storeErr(err)
	}
	detail := map[string]any{"approvers": r.Approvers, "min_approvals": r.MinApprovals, "expires_at": r.ExpiresAt, "announced": false}
	if s.cfg.Announcer != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.AnnounceTimeout)
		ref, err := s.cfg.Announcer.Announce(actx, r)
		cancel()
		if err != nil {
			// The request stays pending and decidable through the API.
			s.log.Error("approval request could not be announced; it stays decidable through the API",
				zap.String("approval", r.ID), zap.String("error", s.cfg.Masker.MaskText(err.Error())))
			detail["announce_error"] = s.cfg.Masker.MaskText(err.Error())
		} else {
			detail["announced"] = true
			r.Ref = ref
			if err := s.store.setRef(ctx, r.ID, ref); err != nil {
				s.log.Error("approval message ref not stored", zap.String("approval", r.ID), zap.Error(err))
			}
		}
	}
	ev := s.event(r, broker.EventApprovalRequested, "")
	ev.AuthMethod, ev.TokenID, ev.ToolCallID = string(c.Principal.Method), c.Principal.TokenID, c.ToolCallID
	ev.Detail = detail
	if err := s.cfg.Recorder.Record(ctx, ev); err != nil {
		// Fail closed: a request nobody can audit is withdrawn.
		if _, cerr := s.store.transition(context.WithoutCancel(ctx), r.ID, broker.ApprovalPending, broker.ApprovalCancelled, "the audit store was unavailable", now); cerr != nil {
			s.log.Error("unrecorded approval request could not be cancelled", zap.String("approval", r.ID), zap.Error(cerr))
		}
		s.redraw(ctx, r.ID)
		return Request{}, broker.Wrap(broker.CodeAuditUnavailable, err, "the audit store is unavailable, so no approval was requested; retry later")
	}
	return r, nil
}

// wait follows request id until it is decided, claimed or consumed, or
// until Config.Wait passes.
func (s *Service) wait(ctx context.Context, id string) (broker.ApprovalOutcome, error) {
	wake, unsubscribe := s.note.Subscribe(id)
	defer unsubscribe()
	progress := broker.ProgressFrom(ctx)
	tick := time.NewTicker(s.cfg.ProgressEvery)
	defer tick.Stop()
	start := time.Now()
	timer := time.NewTimer(s.cfg.Wait)
	defer timer.Stop()
	timedOut := false
	for {
		r, err := s.store.get(ctx, id)
		if err != nil {
			return broker.ApprovalOutcome{}, storeErr(err)
		}
		out := broker.ApprovalOutcome{ID: r.ID, Status: r.Status, ExpiresAt: r.ExpiresAt, Reason: r.Reason, Deciders: deciders(r)}
		switch r.Status {
		case broker.ApprovalPending:
			if !s.now().Before(r.ExpiresAt) {
				if _, err := s.expire(ctx, id); err != nil {
					return broker.ApprovalOutcome{}, storeErr(err)
				}
				continue
			}
		case broker.ApprovalApproved:
			ok, err := s.store.claim(ctx, id, s.now())
			if err != nil {
				return broker.ApprovalOutcome{}, storeErr(err)
			}
			if ok {
				return out, nil
			}
			continue // another call claimed it first
		case broker.ApprovalExecuting:
			// Another call is running it: wait for its result.
		case broker.ApprovalConsumed:
			if r.ErrorCode != "" {
				return broker.ApprovalOutcome{}, broker.Errorf(broker.Code(r.ErrorCode),
					"approval %s was already used by an earlier call, which failed: %s; the action was not run again", r.ID, r.ErrorMessage)
			}
			out.Result = r.Result
			return out, nil
		default: // denied, expired, cancelled
			return out, nil
		}
		if timedOut {
			out.Status = broker.ApprovalPending
			return out, nil
		}
		progress(time.Since(start).Seconds(), s.cfg.Wait.Seconds(), waitMessage(r))
		select {
		case <-wake:
		case <-tick.C:
		case <-timer.C:
			timedOut = true
		case <-ctx.Done():
			return broker.ApprovalOutcome{}, broker.Wrap(broker.CodeTimeout, ctx.Err(), "the call was cancelled while waiting for approval "+id+"; the action was not performed")
		}
	}
}

// waitMessage says what a waiting call waits for; it names no argument.
func waitMessage(r Request) string {
	if r.Status == broker.ApprovalExecuting {
		return fmt.Sprintf("approval %s is being used by another call; waiting for its result", r.ID)
	}
	n := 0
	for _, v := range r.Votes {
		if v.Approve {
			n++
		}
	}
	return fmt.Sprintf("waiting for approval %s by %s (%d of %d approvals)", r.ID, strings.Join(r.Approvers, " or "), n, r.MinApprovals)
}

// deciders lists who decided: the denier, else the approvers.
func deciders(r Request) []string {
	var yes, no []string
	for _, v := range r.Votes {
		if v.Approve {
			yes = append(yes, v.Approver)
		} else {
			no = append(no, v.Approver)
		}
	}
	if len(no) > 0 {
		return no
	}
	return yes
}

// Decide records approver's vote on request id through channel ("slack",
// "http", "cli") and decides the request when the vote settles it: any deny
// denies, min_approvals distinct approvers approve. It returns the status
// after the vote. Refusals change nothing: an unknown id (not_found), a
// principal who is not an approver or who requested the call (forbidden), a
// request already decided (invalid_request) or expired (approval_expired),
// a second vote by the same principal (invalid_request).
func (s *Service) Decide(ctx context.Context, id string, approver broker.Principal, approve bool, reason, channel string) (broker.ApprovalStatus, error) {
	r, err := s.store.get(ctx, id)
	if errors.Is(err, errNotFound) {
		return "", broker.Errorf(broker.CodeNotFound, "no approval request %s", id)
	}
	if err != nil {
		return "", storeErr(err)
	}
	now := s.now().UTC()
	if r.Status == broker.ApprovalPending && !now.Before(r.ExpiresAt) {
		if _, err := s.expire(ctx, id); err != nil {
			return "", storeErr(err)
		}
		r.Status = broker.ApprovalExpired
	}
	switch r.Status {
	case broker.ApprovalPending:
	case broker.ApprovalExpired:
		return r.Status, broker.Errorf(broker.CodeApprovalExpired, "approval %s expired at %s; nothing was decided", id, r.ExpiresAt.Format(time.RFC3339))
	default:
		return r.Status, broker.Errorf(broker.CodeInvalidRequest, "approval %s is already %s; nothing was changed", id, r.Status)
	}
	names := approver.Names()
	if approve && intersects(names, r.Requesters) {
		return r.Status, broker.Errorf(broker.CodeForbidden, "%s requested this call and may not approve it; another approver (%s) must", approver.Subject, strings.Join(r.Approvers, ", "))
	}
	if !intersects(names, r.Approvers) {
		return r.Status, broker.Errorf(broker.CodeForbidden, "%s may not decide approval %s; only %s may", approver.Subject, id, strings.Join(r.Approvers, ", "))
	}
	vote := broker.ApprovalVote{Approver: approver.Subject, Approve: approve, Reason: s.cfg.Masker.MaskText(reason), Channel: channel, Time: now}
	added, err := s.store.vote(ctx, id, vote)
	if err != nil {
		return "", storeErr(err)
	}
	if !added {
		return r.Status, broker.Errorf(broker.CodeInvalidRequest, "%s already voted on approval %s; a vote counts once", approver.Subject, id)
	}
	ev := s.event(r, broker.EventApprovalVoted, channel)
	ev.Principal, ev.AuthMethod, ev.TokenID = approver.Subject, string(approver.Method), approver.TokenID
	ev.Detail = map[string]any{"approve": approve, "reason": vote.Reason, "channel": channel, "requester": r.Principal}
	recErr := s.cfg.Recorder.Record(ctx, ev)

	to := broker.ApprovalDenied
	if approve {
		n, err := s.store.approvals(ctx, id)
		if err != nil {
			return "", storeErr(err)
		}
		to = ""
		if n >= r.MinApprovals {
			to = broker.ApprovalApproved
		}
	}
	if to != "" {
		why := ""
		if to == broker.ApprovalDenied {
			why = vote.Reason
			if why == "" {
				why = "denied by " + approver.Subject
			}
		}
		changed, err := s.store.transition(ctx, id, broker.ApprovalPending, to, why, now)
		if err != nil {
			return "", storeErr(err)
		}
		if changed {
			r.Status = to
			dev := s.event(r, broker.EventApprovalDecided, channel)
			dev.Decision = string(to)
			dev.Principal = approver.Subject
			dev.Detail = map[string]any{"status": string(to), "reason": why, "requester": r.Principal}
			if err := s.cfg.Recorder.Record(ctx, dev); err != nil && recErr == nil {
				recErr = err
			}
			s.wake(ctx, id)
		}
	}
	s.redraw(ctx, id)
	cur, err := s.store.get(ctx, id)
	if err != nil {
		return "", storeErr(err)
	}
	if recErr != nil {
		s.log.Error("approval vote not recorded", zap.String("approval", id), zap.Error(recErr))
		return cur.Status, broker.Wrap(broker.CodeAuditUnavailable, recErr, "the vote was counted but the audit store is unavailable; check the audit trail")
	}
	return cur.Status, nil
}

func intersects(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// Complete stores the outcome of the call that claimed approval id and
// marks the request consumed, so repeats answer it without running again.
// result is the masked result; with callErr the stored outcome is the
// error's code and masked message.
func (s *Service) Complete(ctx context.Context, id string, result json.RawMessage, callErr error) error {
	code, msg := "", ""
	if callErr != nil {
		e, _ := broker.AsError(callErr)
		code, msg, result = string(e.Code), s.cfg.Masker.MaskText(e.Message), nil
	} else if len(result) == 0 {
		result = json.RawMessage(`{}`)
	}
	now := s.now().UTC()
	changed, err := s.store.consume(ctx, id, result, code, msg, now)
	if err != nil {
		return err
	}
	if !changed {
		return fmt.Errorf("approval %s was not executing when its call completed", id)
	}
	r, err := s.store.get(ctx, id)
	if err != nil {
		return err
	}
	ev := s.event(r, broker.EventApprovalConsumed, "")
	ev.ErrorCode, ev.Error = code, msg
	ev.Status = broker.StatusOK
	if code != "" {
		ev.Status = broker.StatusError
	}
	recErr := s.cfg.Recorder.Record(ctx, ev)
	s.wake(ctx, id)
	s.redraw(ctx, id)
	return recErr
}

// expire marks a pending request expired; changed is false when it was no
// longer pending (another instance or a decision came first).
func (s *Service) expire(ctx context.Context, id string) (changed bool, err error) {
	changed, err = s.store.transition(ctx, id, broker.ApprovalPending, broker.ApprovalExpired, "no decision before the request expired", s.now().UTC())
	if err != nil || !changed {
		return changed, err
	}
	r, err := s.store.get(ctx, id)
	if err != nil {
		return true, err
	}
	if err := s.cfg.Recorder.Record(ctx, s.event(r, broker.EventApprovalExpired, "")); err != nil {
		s.log.Error("approval expiry not recorded", zap.String("approval", id), zap.Error(err))
	}
	s.wake(ctx, id)
	s.redraw(ctx, id)
	return true, nil
}

// Sweep expires every pending request whose expiry is at or before now,
// gives up on every call that has held its approval for longer than
// StaleAfter, and returns how many requests this call changed. Several
// instances may sweep at once: each request is changed by exactly one.
func (s *Service) Sweep(ctx context.Context, now time.Time) (int, error) {
	ids, err := s.store.overdue(ctx, now)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		changed, err := s.expire(ctx, id)
		if err != nil {
			return n, err
		}
		if changed {
			n++
		}
	}
	stale, err := s.store.stale(ctx, now.Add(-s.cfg.StaleAfter))
	if err != nil {
		return n, err
	}
	for _, id := range stale {
		changed, err := s.abandon(ctx, id, now)
		if err != nil {
			return n, err
		}
		if changed {
			n++
		}
	}
	return n, nil
}

// abandon consumes a request whose call never reported its outcome (its
// instance stopped mid-call). Whether the action ran is unknown, so it is
// never run again: repeats get this error instead of waiting forever.
func (s *Service) abandon(ctx context.Context, id string, now time.Time) (bool, error) {
	changed, err := s.store.consume(ctx, id, nil, string(broker.CodeUnavailable),
		"the call that held this approval did not report its outcome within "+s.cfg.StaleAfter.String()+
			"; whether the action ran is unknown, so it is not run again", now.UTC())
	if err != nil || !changed {
		return changed, err
	}
	r, err := s.store.get(ctx, id)
	if err != nil {
		return true, err
	}
	if err := s.cfg.Recorder.Record(ctx, s.event(r, broker.EventApprovalConsumed, "")); err != nil {
		s.log.Error("abandoned approval not recorded", zap.String("approval", id), zap.Error(err))
	}
	s.wake(ctx, id)
	s.redraw(ctx, id)
	return true, nil
}

// Run sweeps expired requests every Config.SweepEvery until ctx ends, and
// returns ctx's error.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if _, err := s.Sweep(ctx, s.now()); err != nil && ctx.Err() == nil {
				s.log.Error("approval sweep failed", zap.Error(err))
			}
		}
	}
}

// Get returns request id; not_found for an unknown id.
func (s *Service) Get(ctx context.Context, id string) (Request, error) {
	r, err := s.store.get(ctx, id)
	if errors.Is(err, errNotFound) {
		return Request{}, broker.Errorf(broker.CodeNotFound, "no approval request %s", id)
	}
	if err != nil {
		return Request{}, storeErr(err)
	}
	return r, nil
}

// Approval returns request id as shown to approvers (the HTTP API).
func (s *Service) Approval(ctx context.Context, id string) (broker.ApprovalInfo, error) {
	r, err := s.Get(ctx, id)
	return r.ApprovalInfo, err
}

// Approvals returns the pending requests and the newest decided ones, at
// most limit (0 means 100).
func (s *Service) Approvals(ctx context.Context, limit int) ([]broker.ApprovalInfo, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rs, err := s.store.list(ctx, limit)
	if err != nil {
		return nil, storeErr(err)
	}
	out := make([]broker.ApprovalInfo, len(rs))
	for i, r := range rs {
		out[i] = r.ApprovalInfo
	}
	return out, nil
}

// wake notifies waiters of id; a failure only delays them.
func (s *Service) wake(ctx context.Context, id string) {
	if err := s.note.Notify(context.WithoutCancel(ctx), id); err != nil {
		s.log.Warn("approval waiters not notified; they re-read on their next tick", zap.String("approval", id), zap.Error(err))
	}
}

// redraw updates the announced message of id to its current state.
func (s *Service) redraw(ctx context.Context, id string) {
	if s.cfg.Announcer == nil {
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.AnnounceTimeout)
	defer cancel()
	r, err := s.store.get(actx, id)
	if err != nil || r.Ref == "" {
		return
	}
	if err := s.cfg.Announcer.Update(actx, r); err != nil {
		s.log.Warn("approval message not updated", zap.String("approval", id), zap.String("error", s.cfg.Masker.MaskText(err.Error())))
	}
}

// event is the audit record of a step of request r.
func (s *Service) event(r Request, kind broker.EventKind, door string) broker.Event {
	return broker.Event{
		ID: broker.NewID("evt"), Time: s.now().UTC(), Kind: kind, Door: door,
		Principal: r.Principal, Graph: r.Graph, Node: r.Node, Run: r.Run, Thread: r.Thread,
		Tool: r.Tool, Target: r.Target, Args: r.Args, ArgsHash: r.ArgsHash,
		Decision: string(broker.EffectApprove), Rule: r.Rule, PolicyVersion: r.PolicyVersion,
		ApprovalID: r.ID, Status: broker.Status(""),
	}
}
