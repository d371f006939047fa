package recordings

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/toolgate/toolgate/broker"
)

// Auditors is the access rule of the audit trail: the principal names
// (auth.auditors, e.g. "key:audit" or "group:security") whose holders may
// read it through a front door. Names are compared in normal form.
type Auditors []string

// Check returns nil when p answers to one of the auditors, else a
// forbidden *broker.Error that says how to become one.
func (a Auditors) Check(p broker.Principal) error {
	if broker.MatchPrincipal(p.Names(), a) {
		return nil
	}
	return broker.Errorf(broker.CodeForbidden,
		"principal %s may not read audit records; list it (or one of its groups) in auth.auditors", p.Subject)
}

// ReaderConfig configures a Reader. Store is required.
type ReaderConfig struct {
	Store    *Store
	Auditors Auditors
	// VerifyEvery is how long a chain verification is reused before
	// VerifyRun verifies again; 0 means one minute.
	VerifyEvery time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Reader is the audit trail as principals read it through a front door
// (the HTTP API, the console): every read checks the reader against
// Auditors first and reads nothing for anyone else. The CLI, which reads
// the store its config names, uses the Store directly.
type Reader struct {
	cfg ReaderConfig

	mu      sync.Mutex
	checked time.Time
	report  Report
}

// Validate reports what is missing.
func (c ReaderConfig) Validate() error {
	if c.Store == nil {
		return errors.New("recordings reader: Store is required")
	}
	if c.VerifyEvery < 0 {
		return errors.New("recordings reader: VerifyEvery must not be negative")
	}
	return nil
}

// NewReader returns a Reader over cfg.Store for a valid config.
func NewReader(cfg ReaderConfig) (*Reader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.VerifyEvery == 0 {
		cfg.VerifyEvery = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Reader{cfg: cfg}, nil
}

// Auditor returns nil when p may read the audit trail (Auditors.Check).
func (r *Reader) Auditor(p broker.Principal) error { return r.cfg.Auditors.Check(p) }

// Export is Store.Export for an auditor.
func (r *Reader) Export(ctx context.Context, viewer broker.Principal, f Filter, format string, w io.Writer) (int, error) {
	if err := r.Auditor(viewer); err != nil {
		return 0, err
	}
	return r.cfg.Store.Export(ctx, f, format, w)
}

// Trace is Store.Trace for an auditor.
func (r *Reader) Trace(ctx context.Context, viewer broker.Principal, run string) ([]broker.Event, error) {
	if err := r.Auditor(viewer); err != nil {
		return nil, err
	}
	return r.cfg.Store.Trace(ctx, run)
}

// Runs is Store.Runs for an auditor.
func (r *Reader) Runs(ctx context.Context, viewer broker.Principal, f RunFilter) ([]RunSummary, error) {
	if err := r.Auditor(viewer); err != nil {
		return nil, err
	}
	return r.cfg.Store.Runs(ctx, f)
}

// RunCheck is the verification of the chains holding a run's records.
type RunCheck struct {
	// Checked is when the chains were verified.
	Checked time.Time
	// Chains are the chains holding the run's records.
	Chains []string
	// Problems are the first problem of each of those chains that is
	// broken; none when they are intact.
	Problems []Problem
}

// VerifyRun verifies the chains that hold run's records, for an auditor.
// Verification walks every chain of the store, so its report is reused for
// ReaderConfig.VerifyEvery; RunCheck.Checked says when it was made.
func (r *Reader) VerifyRun(ctx context.Context, viewer broker.Principal, run string) (RunCheck, error) {
	if err := r.Auditor(viewer); err != nil {
		return RunCheck{}, err
	}
	chains, err := r.cfg.Store.RunChains(ctx, run)
	if err != nil {
		return RunCheck{}, err
	}
	rep, at, err := r.verified(ctx)
	if err != nil {
		return RunCheck{}, err
	}
	out := RunCheck{Checked: at, Chains: chains}
	for _, p := range rep.Problems {
		if slices.Contains(chains, p.Chain) {
			out.Problems = append(out.Problems, p)
		}
	}
	return out, nil
}

// verified returns a report no older than VerifyEvery, verifying when
// needed; one verification runs at a time.
func (r *Reader) verified(ctx context.Context) (Report, time.Time, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.cfg.Now()
	if !r.checked.IsZero() && now.Sub(r.checked) < r.cfg.VerifyEvery {
		return r.report, r.checked, nil
	}
	rep, err := r.cfg.Store.Verify(ctx)
	if err != nil {
		return Report{}, time.Time{}, err
	}
	r.report, r.checked = rep, now.UTC()
	return rep, r.checked, nil
}
