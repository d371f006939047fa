package mcp

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"
)

// List connects to the upstream once, lists its tools and disconnects:
// what `toolgate tools pin` and `toolgate tools diff` read. Definitions
// that cannot be used (no name, no input schema, too large) come back as
// invalid entries; they cannot be pinned.
func List(ctx context.Context, cfg Config, opt Options) ([]Definition, []Entry, error) {
	u, err := newUpstream(cfg, opt)
	if err != nil {
		return nil, nil, err
	}
	defer u.Close()
	stop := context.AfterFunc(ctx, u.cancel)
	defer stop()
	s, err := u.dial(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("mcp target %s: %w", cfg.Name, err)
	}
	defer s.close()
	lctx, cancel := context.WithTimeout(ctx, u.cfg.Timeout)
	defer cancel()
	defs, bad, err := s.listTools(lctx)
	if err != nil {
		return nil, nil, fmt.Errorf("mcp target %s: %w", cfg.Name, err)
	}
	return defs, bad, nil
}

// Evaluate checks listed definitions (List's) against the pins of lock,
// as a running connector does, and returns the snapshot it would serve
// (not Connected): what `toolgate tools list` and `check --connect` show
// without serving. A nil lock pins nothing; lockErr, when set, says the
// lock could not be read, and then no tool is exposed.
func Evaluate(cfg Config, lock *Lock, lockErr error, defs []Definition, bad []Entry, compile CompileFunc) (*Snapshot, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if compile == nil {
		return nil, errors.New("mcp target " + cfg.Name + ": a schema compiler is required")
	}
	var pins TargetPins
	if lock != nil {
		pins = lock.Targets[cfg.Name]
	}
	if lockErr != nil {
		lockErr = errors.New("the tools lock cannot be read")
	}
	return evaluate(evaluation{cfg: cfg.withDefaults(), pins: pins, lockErr: lockErr, defs: defs, bad: bad, compile: compile}), nil
}

// evaluate lists the tools on s, checks them against the pins and
// publishes the snapshot. A failed listing ends the session.
func (u *Upstream) evaluate(s *session, trigger string) error {
	ctx, cancel := context.WithTimeout(u.ctx, u.cfg.Timeout)
	defs, bad, err := s.listTools(ctx)
	cancel()
	if err != nil {
		s.markLost(err.Error())
		return err
	}
	pins, lockErr := u.pins()
	snap := evaluate(evaluation{cfg: u.cfg, pins: pins, lockErr: lockErr, defs: defs, bad: bad, compile: u.opt.Compile})
	snap.Connected = true
	old := u.snap.Swap(snap)
	if trigger != "poll" || old == nil || !old.Connected || old.signature != snap.signature {
		u.report(snap, trigger)
	}
	return nil
}

// pins reads this target's pins from the lock file.
func (u *Upstream) pins() (TargetPins, error) {
	if u.cfg.ToolsLock == "" {
		return nil, nil
	}
	lock, err := ReadLock(u.cfg.ToolsLock)
	if err != nil {
		u.log.Error("cannot read the tools lock; no tool of this target is exposed", zap.Error(err))
		return nil, errors.New("the tools lock cannot be read")
	}
	return lock.Targets[u.cfg.Name], nil
}

// report logs an evaluation and sends its events: EventEvaluated, and
// EventQuarantined for each tool newly quarantined or whose changes
// differ from the last report.
func (u *Upstream) report(snap *Snapshot, trigger string) {
	counts := map[State]int{}
	reported := map[string]string{}
	for _, e := range snap.Entries {
		counts[e.State]++
		if e.State != StateChanged {
			continue
		}
		what := partList(e.Changes)
		reported[e.Tool] = what
		if prev, ok := u.reported[e.Tool]; ok && prev == what {
			continue
		}
		u.log.Warn("upstream tool quarantined: its definition differs from its pin",
			zap.String("tool", e.Tool), zap.String("changed", what))
		u.emit(Event{Kind: EventQuarantined, Tool: e.Tool, Name: e.Name, Changes: e.Changes, Reason: e.Reason})
	}
	u.reported = reported
	u.log.Info("upstream tools evaluated", zap.String("trigger", trigger),
		zap.Int("exposed", counts[StateExposed]), zap.Int("quarantined", counts[StateChanged]),
		zap.Int("unpinned", counts[StateUnpinned]), zap.Int("invalid", counts[StateInvalid]), zap.Int("removed", counts[StateRemoved]))
	u.emit(Event{Kind: EventEvaluated, Trigger: trigger, Snapshot: snap})
}
