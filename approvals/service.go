package approvals

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
// posts a new request and returns a handle on the message ("" for none),
// Update redraws it after a vote, a decision, an expiry, a stale mark or the
// execution. Update is called for every change, also for a request whose
// Ref is "" (nothing was posted, or posting failed).
type Announcer interface {
	Announce(ctx context.Context, r Request) (ref string, err error)
	Update(ctx context.Context, r Request) error
}

// Masker masks what requests and their records show: the arguments (a
// JSON document) and free text (reasons, errors). *mask.Masker is one.
type Masker interface {
	MaskRecord(doc []byte) ([]byte, error)
	MaskText(s string) string
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
	Masker    Masker
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

// Await finds the approval request the call is bound to (the one it names
// with ResumeID, else the live one for the same graph, node, run, tool,
// arguments and caller) or creates one, then waits up to Config.Wait for a
// decision. Concurrent identical calls converge on one request. A request
// whose governing rule changed since it was made (a reload) is marked stale
// and the call is refused with approval_stale; the next call makes a new
// request. ApprovalApproved means this call claimed the approval and must
// run now; ApprovalConsumed carries the result of the call that already ran.
func (s *Service) Await(ctx context.Context, req broker.ApprovalRequest) (broker.ApprovalOutcome, error) {
	if req.Tool == nil || req.ArgsHash == "" {
		return broker.ApprovalOutcome{}, broker.Errorf(broker.CodeInternal, "approval requested without a tool or an arguments hash")
	}
	r, err := s.bound(ctx, req)
	if err != nil {
		return broker.ApprovalOutcome{}, err
	}
	if version := RuleVersion(req.Decision); r.RuleVersion != version && (r.Status == broker.ApprovalPending || r.Status == broker.ApprovalApproved) {
		return broker.ApprovalOutcome{}, s.stale(ctx, r)
	}
	return s.wait(ctx, r.ID)
}

// bound returns the request the call is bound to, creating it if needed.
func (s *Service) bound(ctx context.Context, req broker.ApprovalRequest) (Request, error) {
	if req.ResumeID != "" {
		r, err := s.store.get(ctx, req.ResumeID)
		if errors.Is(err, errNotFound) || (err == nil && !sameCall(r, req)) {
			return Request{}, broker.Errorf(broker.CodeForbidden,
				"approval %s is not an approval of this call (the graph, node, run, tool, arguments and caller must all match); call again without %s to request a new approval",
				req.ResumeID, broker.HeaderApproval)
		}
		if err != nil {
			return Request{}, storeErr(err)
		}
		return r, nil
	}
	statuses := []broker.ApprovalStatus{broker.ApprovalPending, broker.ApprovalApproved, broker.ApprovalExecuting}
	if req.Caller.Run != "" {
		// Within one run a repeat gets the recorded outcome; without a
		// run id there is no way to tell a repeat from a new call.
		statuses = append(statuses, broker.ApprovalDenied, broker.ApprovalConsumed)
	}
	key := keyOf(req)
	// A lost race to create the request means another call made it: find
	// that one. The loop ends because each round either finds a request or
	// creates one, except when the winner's request left pending at once.
	for attempt := 0; attempt < 3; attempt++ {
		r, err := s.store.findCall(ctx, key, statuses)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, errNotFound) {
			return Request{}, storeErr(err)
		}
		r, created, err := s.create(ctx, req)
		if err != nil || created {
			return r, err
		}
	}
	return Request{}, broker.Errorf(broker.CodeUnavailable, "the approval request for this call kept changing while it was being made; retry")
}

// keyOf is the binding of a call: what a request must match to serve it.
func keyOf(req broker.ApprovalRequest) callKey {
	c := req.Caller
	return callKey{graph: c.Graph, node: c.Node, run: c.Run, tool: req.Tool.Name, argsHash: req.ArgsHash, caller: broker.PrincipalName(c.Principal.Subject)}
}

// sameCall reports whether r was requested by the call req describes.
func sameCall(r Request, req broker.ApprovalRequest) bool {
	k := keyOf(req)
	return r.Graph == k.graph && r.Node == k.node && r.Run == k.run && r.Tool == k.tool && r.ArgsHash == k.argsHash && r.Caller == k.caller
}

// RuleVersion is what an approval is bound to of the rule that asked for
// it: the decider's Decision.RuleVersion, else a hash of the rule's config
// path, its approvers (in normal form, sorted) and min_approvals. When the
// version a call's decision carries differs from its request's, the request
// is stale.
func RuleVersion(d broker.Decision) string {
	if d.RuleVersion != "" {
		return d.RuleVersion
	}
	approvers := broker.PrincipalNames(d.Approvers)
	slices.Sort(approvers)
	b, _ := json.Marshal([]any{d.Rule, approvers, max(1, d.MinApprovals)})
	sum := sha256.Sum256(b)
	return "r_" + hex.EncodeToString(sum[:8])
}

// stale marks r stale (its rule changed since it was made), records and
// announces that, and returns the refusal for the call that found it.
func (s *Service) stale(ctx context.Context, r Request) error {
	why := "the rule " + r.Rule + " changed after this request was made, so its approval no longer counts"
	changed, err := s.store.transition(ctx, r.ID, r.Status, broker.ApprovalStale, why, s.now().UTC())
	if err != nil {
		return storeErr(err)
	}
	if changed {
		ev := s.event(r, broker.EventApprovalStale, "")
		ev.Detail = map[string]any{"was": string(r.Status), "rule_version": r.RuleVersion}
		if err := s.cfg.Recorder.Record(ctx, ev); err != nil {
			s.log.Error("stale approval not recorded", zap.String("approval", r.ID), zap.Error(err))
		}
		s.wake(ctx, r.ID)
		s.redraw(ctx, r.ID)
	}
	return broker.Errorf(broker.CodeApprovalStale,
		"approval %s was given under rule %s as it was before the configuration changed; it no longer counts and the action was not performed. Call again to request a new approval", r.ID, r.Rule)
}

// create stores, records and announces a new pending request. created is
// false, and nothing else happened, when the call already had a pending
// request (a concurrent identical call made it first).
func (s *Service) create(ctx context.Context, req broker.ApprovalRequest) (r Request, created bool, err error) {
	dec := req.Decision
	if len(dec.Approvers) == 0 {
		return Request{}, false, broker.Errorf(broker.CodeForbidden, "rule %s requires approval but names no approvers, so the call is refused", dec.Rule)
	}
	canonical, err := json.Marshal(req.Args)
	if err != nil {
		return Request{}, false, broker.Wrap(broker.CodeInternal, err, "the arguments could not be encoded for the approval request")
	}
	masked, err := s.cfg.Masker.MaskRecord(canonical)
	if err != nil {
		return Request{}, false, broker.Wrap(broker.CodeInternal, err, "the arguments could not be masked for the approval request, so the call is refused")
	}
	timeout := dec.Timeout
	if timeout <= 0 {
		timeout = s.cfg.Timeout
	}
	var preview *broker.ApprovalPreview
	if req.Preview != nil {
		pv := req.Preview(ctx)
		preview = &pv
	}
	now := s.now().UTC()
	c := req.Caller
	r = Request{
		ApprovalInfo: broker.ApprovalInfo{
			ID: broker.NewID("ap", now), Status: broker.ApprovalPending, Principal: broker.PrincipalName(c.Principal.Requester().Subject),
			Graph: c.Graph, Node: c.Node, Run: c.Run, Thread: c.Thread, Tool: req.Tool.Name, Target: req.Tool.Target,
			Args: masked, ArgsHash: req.ArgsHash, Rule: dec.Rule, PolicyVersion: dec.PolicyVersion, RuleVersion: RuleVersion(dec),
			Approvers: slices.Clone(dec.Approvers), MinApprovals: max(1, dec.MinApprovals),
			CreatedAt: now, ExpiresAt: now.Add(timeout), Preview: preview,
		},
		Requesters: c.Principal.PersonalNames(),
		Caller:     keyOf(req).caller,
	}
	if r.Caller != r.Principal {
		r.Via = r.Caller
	}
	if created, err = s.store.insert(ctx, r); err != nil || !created {
		return Request{}, false, err
	}
	detail := map[string]any{"approvers": r.Approvers, "min_approvals": r.MinApprovals, "expires_at": r.ExpiresAt, "announced": false}
	if r.Via != "" {
		detail["via"] = r.Via
	}
	if preview != nil {
		detail["preview"] = previewDetail(*preview)
	}
	s.announce(ctx, &r, detail)
	ev := s.event(r, broker.EventApprovalRequested, "")
	ev.AuthMethod, ev.TokenID, ev.ToolCallID = string(c.Principal.Method), c.Principal.TokenID, c.ToolCallID
	ev.Detail = detail
	if err := s.cfg.Recorder.Record(ctx, ev); err != nil {
		// Fail closed: a request nobody can audit is withdrawn.
		if _, cerr := s.store.transition(context.WithoutCancel(ctx), r.ID, broker.ApprovalPending, broker.ApprovalCancelled, "the audit store was unavailable", now); cerr != nil {
			s.log.Error("unrecorded approval request could not be cancelled", zap.String("approval", r.ID), zap.Error(cerr))
		}
		s.wake(ctx, r.ID)
		s.redraw(ctx, r.ID)
		return Request{}, false, broker.Wrap(broker.CodeAuditUnavailable, err, "the audit store is unavailable, so no approval was requested; retry later")
	}
	return r, true, nil
}

// previewDetail is what the audit record of a new request says of its
// preview: the count and hash, or why there is none (never the sample).
func previewDetail(p broker.ApprovalPreview) map[string]any {
	if p.Unavailable != "" {
		return map[string]any{"unavailable": p.Unavailable, "code": string(p.Code)}
	}
	return map[string]any{"rows_affected": p.RowsAffected, "truncated": p.Truncated, "hash": p.Hash}
}

// announce posts a new request to the announcer and stores its message
// reference; a failure is logged and noted in detail, and the request stays
// decidable through the API.
func (s *Service) announce(ctx context.Context, r *Request, detail map[string]any) {
	if s.cfg.Announcer == nil {
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.AnnounceTimeout)
	ref, err := s.cfg.Announcer.Announce(actx, *r)
	cancel()
	if err != nil {
		s.log.Error("approval request could not be announced; it stays decidable through the API",
			zap.String("approval", r.ID), zap.String("error", s.cfg.Masker.MaskText(err.Error())))
		detail["announce_error"] = s.cfg.Masker.MaskText(err.Error())
		return
	}
	detail["announced"] = true
	r.Ref = ref
	if ref == "" {
		return
	}
	if err := s.store.setRef(ctx, r.ID, ref); err != nil {
		s.log.Error("approval message ref not stored", zap.String("approval", r.ID), zap.Error(err))
	}
}

// wait follows request id until it is decided, claimed or consumed, or
// until Config.Wait passes.
func (s *Service) wait(ctx context.Context, id string) (broker.ApprovalOutcome, error) {
	wake, unsubscribe := s.note.Subscribe(id)
	defer unsubscribe()
	progress := broker.ProgressFrom(ctx)
	tick := time.NewTicker(s.cfg.ProgressEvery)
	defer tick.Stop()
	start := s.now()
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
				out.Preview = r.Preview
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
		case broker.ApprovalStale:
			if r.ErrorCode == string(broker.CodeApprovalStale) {
				// The call that held it ran on changed data and was
				// rolled back.
				return broker.ApprovalOutcome{}, broker.Errorf(broker.CodeApprovalStale,
					"approval %s was used by an earlier call, which was refused: %s", r.ID, r.ErrorMessage)
			}
			return out, nil
		default: // denied, expired, cancelled
			if r.Status == broker.ApprovalCancelled && r.ErrorCode == string(broker.CodeOwnerDisabled) {
				return broker.ApprovalOutcome{}, broker.Errorf(broker.CodeOwnerDisabled, "approval %s was refused: %s; the action was not performed", r.ID, r.ErrorMessage)
			}
			return out, nil
		}
		if timedOut {
			out.Status = broker.ApprovalPending
			return out, nil
		}
		progress(s.now().Sub(start).Seconds(), s.cfg.Wait.Seconds(), waitMessage(r))
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
// "http", "cli", the console) and decides the request when the vote settles
// it: any deny denies, min_approvals distinct approvers approve. The vote
// and the status change it causes are one conditional transaction, so a
// vote that is acknowledged has taken effect: an acknowledged deny always
// denies. It returns the status after the vote. This is the one place the
// approver rules live, for every channel. Refusals change nothing: an
// unknown id (not_found); a principal who is not an approver, or who asked
// for the call under any alias (its subject or verified email, in normal
// form, or for a grant token the principal that minted the grant)
// (forbidden); a request already decided (invalid_request) or expired
// (approval_expired); a second vote by the same principal (invalid_request).
func (s *Service) Decide(ctx context.Context, id string, approver broker.Principal, approve bool, reason, channel string) (broker.ApprovalStatus, error) {
	r, err := s.pendingRequest(ctx, id)
	if err != nil {
		return r.Status, err
	}
	if err := mayDecide(r, approver, approve); err != nil {
		return r.Status, err
	}
	now := s.now().UTC()
	voter := broker.PrincipalName(approver.Subject)
	vote := broker.ApprovalVote{Approver: voter, Approve: approve, Reason: s.cfg.Masker.MaskText(reason), Channel: channel, Time: now}
	why := ""
	if !approve {
		if why = vote.Reason; why == "" {
			why = "denied by " + voter
		}
	}
	out, to, err := s.store.castVote(ctx, id, vote, r.MinApprovals, why)
	if err != nil {
		return "", storeErr(err)
	}
	switch out {
	case voteDuplicate:
		return r.Status, broker.Errorf(broker.CodeInvalidRequest, "%s already voted on approval %s; a vote counts once", voter, id)
	case voteNotPending:
		// Another vote, the sweeper or a stale mark came first.
		cur, err := s.pendingRequest(ctx, id)
		if err == nil {
			err = broker.Errorf(broker.CodeUnavailable, "approval %s changed while the vote was being recorded; nothing was decided, try again", id)
		}
		return cur.Status, err
	}
	recErr := s.recordVote(ctx, r, approver, vote, to)
	if to != "" {
		s.wake(ctx, id)
	}
	s.redraw(ctx, id)
	status := to
	if status == "" {
		status = broker.ApprovalPending
	}
	if recErr != nil {
		s.log.Error("approval vote not recorded", zap.String("approval", id), zap.Error(recErr))
		return status, broker.Wrap(broker.CodeAuditUnavailable, recErr, "the vote was counted but the audit store is unavailable; check the audit trail")
	}
	return status, nil
}

// pendingRequest loads request id for a vote and refuses unless it is
// pending and unexpired (an overdue request is expired on the way).
func (s *Service) pendingRequest(ctx context.Context, id string) (Request, error) {
	r, err := s.Get(ctx, id)
	if err != nil {
		return Request{}, err
	}
	if r.Status == broker.ApprovalPending && !s.now().Before(r.ExpiresAt) {
		if _, err := s.expire(ctx, id); err != nil {
			return Request{}, storeErr(err)
		}
		r.Status = broker.ApprovalExpired
	}
	switch r.Status {
	case broker.ApprovalPending:
		return r, nil
	case broker.ApprovalExpired:
		return r, broker.Errorf(broker.CodeApprovalExpired, "approval %s expired at %s; nothing was decided", id, r.ExpiresAt.Format(time.RFC3339))
	default:
		return r, broker.Errorf(broker.CodeInvalidRequest, "approval %s is already %s; nothing was changed", id, r.Status)
	}
}

// recordVote records a counted vote and, when it decided the request, the
// decision.
func (s *Service) recordVote(ctx context.Context, r Request, approver broker.Principal, vote broker.ApprovalVote, to broker.ApprovalStatus) error {
	ev := s.event(r, broker.EventApprovalVoted, vote.Channel)
	ev.Principal, ev.AuthMethod, ev.TokenID = vote.Approver, string(approver.Method), approver.TokenID
	ev.Detail = map[string]any{"approve": vote.Approve, "reason": vote.Reason, "channel": vote.Channel, "requester": r.Principal}
	recErr := s.cfg.Recorder.Record(ctx, ev)
	if to == "" {
		return recErr
	}
	why := ""
	if to == broker.ApprovalDenied {
		if why = vote.Reason; why == "" {
			why = "denied by " + vote.Approver
		}
	}
	r.Status = to
	dev := s.event(r, broker.EventApprovalDecided, vote.Channel)
	dev.Decision = string(to)
	dev.Principal = vote.Approver
	dev.Detail = map[string]any{"status": string(to), "reason": why, "requester": r.Principal}
	if err := s.cfg.Recorder.Record(ctx, dev); err != nil && recErr == nil {
		recErr = err
	}
	return recErr
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

// wake notifies waiters of id; a failure only delays them.
func (s *Service) wake(ctx context.Context, id string) {
	if err := s.note.Notify(context.WithoutCancel(ctx), id); err != nil {
		s.log.Warn("approval waiters not notified; they re-read on their next tick", zap.String("approval", id), zap.Error(err))
	}
}

// redraw tells the announcer request id changed. It is called for every
// change, also when the request has no message (Ref ""): an announcer that
// follows decisions (the on_decision webhook) needs them all.
func (s *Service) redraw(ctx context.Context, id string) {
	if s.cfg.Announcer == nil {
		return
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.AnnounceTimeout)
	defer cancel()
	r, err := s.store.get(actx, id)
	if err != nil {
		return
	}
	if err := s.cfg.Announcer.Update(actx, r); err != nil {
		s.log.Warn("approval message not updated", zap.String("approval", id), zap.String("error", s.cfg.Masker.MaskText(err.Error())))
	}
}

// event is the audit record of a step of request r.
func (s *Service) event(r Request, kind broker.EventKind, door string) broker.Event {
	now := s.now().UTC()
	return broker.Event{
		ID: broker.NewID("evt", now), Time: now, Kind: kind, Door: door,
		Principal: r.Principal, Graph: r.Graph, Node: r.Node, Run: r.Run, Thread: r.Thread,
		Tool: r.Tool, Target: r.Target, Args: r.Args, ArgsHash: r.ArgsHash,
		Decision: string(broker.EffectApprove), Rule: r.Rule, PolicyVersion: r.PolicyVersion,
		ApprovalID: r.ID, Status: broker.Status(""),
	}
}
