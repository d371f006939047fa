package approvals

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/broker"
)

// RefuseSuspended refuses every open request (pending, or approved and not
// yet run) whose requester is suspended because a principal was disabled:
// why gets the request's requester names and its credential identity and
// returns the reason, "" when none is suspended. Each refused request ends
// cancelled with code owner_disabled, its waiting call is answered with
// that code, and an approval_decided record says why. Several instances
// may run it at once; each request is refused and recorded once.
func (s *Service) RefuseSuspended(ctx context.Context, why func(names []string) string) (int, error) {
	open, err := s.store.open(ctx)
	if err != nil {
		return 0, storeErr(err)
	}
	n := 0
	for _, r := range open {
		reason := why(append([]string{r.Principal, r.Caller}, r.Requesters...))
		if reason == "" {
			continue
		}
		changed, err := s.store.refuse(ctx, r, reason, s.now().UTC())
		if err != nil {
			return n, storeErr(err)
		}
		if !changed {
			continue
		}
		n++
		ev := s.event(r, broker.EventApprovalDecided, "")
		ev.Status, ev.ErrorCode, ev.Error = broker.StatusDenied, string(broker.CodeOwnerDisabled), reason
		ev.Detail = map[string]any{"outcome": string(broker.ApprovalCancelled), "was": string(r.Status)}
		if err := s.cfg.Recorder.Record(ctx, ev); err != nil {
			s.log.Error("approval refusal not recorded", zap.String("approval", r.ID), zap.Error(err))
		}
		s.wake(ctx, r.ID)
		s.redraw(ctx, r.ID)
	}
	return n, nil
}

// open returns the pending and approved-but-unused requests.
func (s *Store) open(ctx context.Context) ([]Request, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+columns+` FROM approvals WHERE status IN (?, ?) ORDER BY created_at, id`),
		string(broker.ApprovalPending), string(broker.ApprovalApproved))
	if err != nil {
		return nil, fmt.Errorf("list open approvals: %w", err)
	}
	defer rows.Close()
	var out []Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, fmt.Errorf("list open approvals: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// refuse cancels an open request with code owner_disabled; changed is false
// when it was no longer in r's status.
func (s *Store) refuse(ctx context.Context, r Request, reason string, at time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE approvals SET status = ?, reason = ?, error_code = ?, error_message = ?, decided_at = ? WHERE id = ? AND status = ?`),
		string(broker.ApprovalCancelled), reason, string(broker.CodeOwnerDisabled), reason, at.UnixMicro(), r.ID, string(r.Status))
	if err != nil {
		return false, fmt.Errorf("refuse approval %s: %w", r.ID, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
