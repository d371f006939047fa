package principals

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
	"github.com/toolgate/toolgate/broker/auth"
)

// Refresh reads the state again, swaps the snapshot, and closes the open
// sessions that became suspended since the last read, or whose key was
// revoked lately.
func (s *Service) Refresh(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next, err := s.load(ctx)
	if err != nil {
		return err
	}
	prev := s.snap.Swap(next)
	var newly []string
	for n := range next.disabled {
		if prev == nil || prev.why(n) == "" {
			newly = append(newly, n)
		}
	}
	for n := range next.keys {
		if prev == nil || prev.why(n) == "" {
			newly = append(newly, n)
		}
	}
	var revoked []string
	if s.cfg.Revoked != nil {
		since := s.keysSeen.Add(-10 * time.Second)
		s.keysSeen = s.cfg.Now()
		if revoked, err = s.cfg.Revoked.RevokedSince(ctx, since); err != nil {
			return fmt.Errorf("read revoked keys: %w", err)
		}
	}
	if len(newly) > 0 || len(revoked) > 0 {
		slices.Sort(newly)
		s.closeSessions(ctx, newly, revoked)
	}
	return nil
}

// load reads the disabled principals and the keys they suspend. A key
// owned by a suspended key is suspended too.
func (s *Service) load(ctx context.Context) (*snapshot, error) {
	states, err := s.cfg.Store.States(ctx)
	if err != nil {
		return nil, err
	}
	sn := &snapshot{disabled: map[string]time.Time{}, keys: map[string]string{}}
	var frontier []string
	for _, st := range states {
		if st.Disabled() {
			sn.disabled[st.Principal] = st.ChangedAt
			frontier = append(frontier, st.Principal)
		}
	}
	for depth := 0; len(frontier) > 0 && depth < 4; depth++ {
		keys, err := s.cfg.Keys.KeysOf(ctx, frontier)
		if err != nil {
			return nil, fmt.Errorf("read keys of disabled principals: %w", err)
		}
		frontier = nil
		for k, owner := range keys {
			if _, seen := sn.keys[k]; !seen && sn.why(k) == "" {
				sn.keys[k] = owner
				frontier = append(frontier, k)
			}
		}
	}
	sn.loaded = time.Now()
	return sn, nil
}

// root follows a suspended key to the disabled principal it is suspended
// for (a key owned by a suspended key is suspended for that key's owner).
func (sn *snapshot) root(key string) string {
	for i := 0; i < 8; i++ {
		owner, ok := sn.keys[key]
		if !ok {
			return key
		}
		key = owner
	}
	return key
}

// closeSessions ends the local sessions of newly suspended principals and
// revoked keys, and records how many it ended.
func (s *Service) closeSessions(ctx context.Context, suspended, revokedKeys []string) {
	revoked := map[string]bool{}
	for _, k := range revokedKeys {
		revoked["key:"+k] = true
	}
	refuse := func(c broker.Caller) error {
		if err := s.Check(c); broker.CodeOf(err) == broker.CodeOwnerDisabled {
			return err
		}
		if revoked[broker.PrincipalName(c.Principal.Subject)] {
			return broker.Errorf(broker.CodeUnauthenticated, "the API key was revoked")
		}
		return nil
	}
	n := 0
	for _, c := range s.closers {
		n += c.CloseSessions(refuse)
	}
	if n == 0 {
		return
	}
	s.cfg.Logger.Info("closed the sessions of suspended credentials", zap.Int("sessions", n), zap.Strings("suspended", suspended), zap.Strings("revoked_keys", revokedKeys))
	s.record(ctx, broker.Event{Kind: broker.EventSessionsClosed, Principal: "toolgate", Status: broker.StatusOK,
		Detail: map[string]any{"sessions": n, "suspended": suspended, "revoked_keys": revokedKeys}})
}

// KeyRevoked ends at once the local sessions of a key made at run time
// that was just revoked here; other instances end theirs on their next
// read of the state.
func (s *Service) KeyRevoked(ctx context.Context, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeSessions(ctx, nil, []string{name})
}

// Run reads the state every Config.Poll until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if err := s.Refresh(ctx); err != nil && ctx.Err() == nil {
				s.cfg.Logger.Warn("principal state not read; callers are refused once it is stale", zap.Error(err))
			}
		}
	}
}

// Outcome is what disabling or enabling did.
type Outcome struct {
	Principal string   `json:"principal"`
	Disabled  bool     `json:"disabled"`
	Changed   bool     `json:"changed"`
	Keys      []string `json:"keys_suspended,omitempty"`
	Grants    []string `json:"grants_revoked,omitempty"`
	Approvals int      `json:"approvals_refused,omitempty"`
}

// Disable disables a principal for an admin (POST
// /v1/principals/{p}/disable): everything it owns or made is suspended at
// once (see the package doc).
func (s *Service) Disable(ctx context.Context, by broker.Principal, principal, reason string) (Outcome, error) {
	name, err := s.adminTarget(by, principal)
	if err != nil {
		return Outcome{}, err
	}
	changed, err := s.cfg.Store.set(ctx, adminFlag, []string{name}, true, "", reason, by.Subject, s.cfg.Now().UTC())
	if err != nil {
		return Outcome{}, broker.Wrap(broker.CodeUnavailable, err, "the principal could not be disabled; try again")
	}
	return s.suspend(ctx, by, "admin", reason, []string{name}, changed)
}

// Enable enables a principal for an admin: both its admin and its SCIM
// flags are cleared. Its keys work again unless they expired; the grants
// revoked when it was disabled stay revoked.
func (s *Service) Enable(ctx context.Context, by broker.Principal, principal string) (Outcome, error) {
	name, err := s.adminTarget(by, principal)
	if err != nil {
		return Outcome{}, err
	}
	now := s.cfg.Now().UTC()
	a, err := s.cfg.Store.set(ctx, adminFlag, []string{name}, false, "", "", by.Subject, now)
	if err == nil {
		var b []string
		b, err = s.cfg.Store.set(ctx, scimFlag, []string{name}, false, "", "", by.Subject, now)
		a = append(a, b...)
	}
	if err != nil {
		return Outcome{}, broker.Wrap(broker.CodeUnavailable, err, "the principal could not be enabled; try again")
	}
	return s.restore(ctx, by, "admin", []string{name}, a)
}

// adminTarget checks that by is an admin and principal a name that can be
// disabled, and returns it in normal form.
func (s *Service) adminTarget(by broker.Principal, principal string) (string, error) {
	if !auth.IsAdmin(by, s.cfg.Admins) {
		return "", broker.Errorf(broker.CodeForbidden, "principal %s is not an admin (auth.admins) and may not disable or enable principals", by.Subject)
	}
	name := broker.PrincipalName(principal)
	if why := auth.OwnerProblem(name); why != "" {
		return "", &broker.Error{Code: broker.CodeInvalidArguments, Field: "principal", Message: "only user:, client:, key: and workload: principals can be disabled: " + why}
	}
	return name, nil
}

// suspend runs after names were disabled (changed: those whose state
// changed): it reads the state, closes sessions, revokes grants, refuses
// approval requests and records principal_disabled for each change.
func (s *Service) suspend(ctx context.Context, by broker.Principal, source, reason string, names, changed []string) (Outcome, error) {
	if err := s.Refresh(ctx); err != nil {
		return Outcome{}, broker.Wrap(broker.CodeUnavailable, err, "the principal was disabled, but the new state could not be read; disable it again")
	}
	snap := s.snap.Load()
	out := Outcome{Principal: names[0], Disabled: true, Changed: len(changed) > 0}
	for k := range snap.keys {
		if slices.Contains(names, snap.root(k)) {
			out.Keys = append(out.Keys, k)
		}
	}
	slices.Sort(out.Keys)
	var err error
	if s.cfg.Grants != nil {
		out.Grants, err = s.cfg.Grants.RevokeMintedBy(ctx, by, func(m broker.Principal) bool {
			return slices.ContainsFunc(personal(m), func(n string) bool { return snap.why(n) != "" })
		})
		if err != nil {
			return out, broker.Wrap(broker.CodeUnavailable, err, "the principal was disabled, but not every grant it minted could be revoked; disable it again")
		}
	}
	if s.cfg.Approvals != nil {
		out.Approvals, err = s.cfg.Approvals.RefuseSuspended(ctx, func(ns []string) string {
			for _, n := range ns {
				if why := snap.why(broker.PrincipalName(n)); why != "" {
					return why
				}
			}
			return ""
		})
		if err != nil {
			return out, broker.Wrap(broker.CodeUnavailable, err, "the principal was disabled, but not every approval request could be refused; disable it again")
		}
	}
	for _, n := range changed {
		detail := map[string]any{"subject": n, "source": source, "keys_suspended": out.Keys, "grants_revoked": out.Grants, "approvals_refused": out.Approvals}
		if reason != "" {
			detail["reason"] = reason
		}
		if err := s.record(ctx, broker.Event{Kind: broker.EventPrincipalDisabled, Principal: by.Subject, AuthMethod: string(by.Method), TokenID: by.TokenID, Status: broker.StatusOK, Detail: detail}); err != nil {
			return out, broker.Wrap(broker.CodeAuditUnavailable, err, "the principal was disabled, but the audit store is unavailable; disable it again to record it")
		}
	}
	return out, nil
}

// restore runs after names were enabled: it reads the state and records
// principal_enabled for each change.
func (s *Service) restore(ctx context.Context, by broker.Principal, source string, names, changed []string) (Outcome, error) {
	if err := s.Refresh(ctx); err != nil {
		return Outcome{}, broker.Wrap(broker.CodeUnavailable, err, "the principal was enabled, but the new state could not be read")
	}
	out := Outcome{Principal: names[0], Disabled: s.Disabled(names[0]), Changed: len(changed) > 0}
	for _, n := range changed {
		ev := broker.Event{Kind: broker.EventPrincipalEnabled, Principal: by.Subject, AuthMethod: string(by.Method), TokenID: by.TokenID, Status: broker.StatusOK,
			Detail: map[string]any{"subject": n, "source": source}}
		if err := s.record(ctx, ev); err != nil {
			return out, broker.Wrap(broker.CodeAuditUnavailable, err, "the principal was enabled, but the audit store is unavailable")
		}
	}
	return out, nil
}

func (s *Service) record(ctx context.Context, ev broker.Event) error {
	if s.cfg.Recorder == nil {
		return nil
	}
	ev.Time = s.cfg.Now().UTC()
	ev.ID = broker.NewID("evt", ev.Time)
	err := s.cfg.Recorder.Record(ctx, ev)
	if err != nil {
		s.cfg.Logger.Error("principal event not recorded", zap.String("kind", string(ev.Kind)), zap.Error(err))
	}
	return err
}

// States returns every principal that is or was disabled, for admins.
func (s *Service) States(ctx context.Context, by broker.Principal) ([]State, error) {
	if !auth.IsAdmin(by, s.cfg.Admins) {
		return nil, broker.Errorf(broker.CodeForbidden, "principal %s is not an admin (auth.admins) and may not list principal states", by.Subject)
	}
	st, err := s.cfg.Store.States(ctx)
	if err != nil {
		return nil, broker.Wrap(broker.CodeUnavailable, err, "the principal states could not be read")
	}
	return st, nil
}
