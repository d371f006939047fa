package approvals

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/toolgate/toolgate/internal/db"
)

// Notifier wakes the calls waiting on an approval request when it changes.
// A lost notification only delays a waiter: waiters re-read the store on
// every progress tick.
type Notifier interface {
	// Subscribe returns a channel that receives after each Notify of id,
	// and a function that ends the subscription.
	Subscribe(id string) (<-chan struct{}, func())
	// Notify wakes the subscribers of id.
	Notify(ctx context.Context, id string) error
}

// LocalNotifier wakes waiters in this process.
type LocalNotifier struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

var _ Notifier = (*LocalNotifier)(nil)

// NewLocalNotifier returns an in-process notifier.
func NewLocalNotifier() *LocalNotifier {
	return &LocalNotifier{subs: map[string]map[chan struct{}]struct{}{}}
}

// Subscribe returns a channel woken by Notify(id).
func (n *LocalNotifier) Subscribe(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	if n.subs[id] == nil {
		n.subs[id] = map[chan struct{}]struct{}{}
	}
	n.subs[id][ch] = struct{}{}
	n.mu.Unlock()
	return ch, func() {
		n.mu.Lock()
		delete(n.subs[id], ch)
		if len(n.subs[id]) == 0 {
			delete(n.subs, id)
		}
		n.mu.Unlock()
	}
}

// Notify wakes every subscriber of id without blocking.
func (n *LocalNotifier) Notify(_ context.Context, id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for ch := range n.subs[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	return nil
}

// NotifyAll wakes every subscriber of every request, e.g. after a lost
// connection may have dropped notifications.
func (n *LocalNotifier) NotifyAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, subs := range n.subs {
		for ch := range subs {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// PGChannel is the Postgres NOTIFY channel approval changes go to.
const PGChannel = "toolgate_approvals"

// PGNotifier wakes waiters on every broker instance that shares a Postgres
// store: Notify sends NOTIFY toolgate_approvals with the request id, and
// Listen (run in the background on each instance) relays what it hears to
// the local waiters.
type PGNotifier struct {
	db    *db.DB
	log   *zap.Logger
	local *LocalNotifier
	ready chan struct{}
	once  sync.Once
}

var _ Notifier = (*PGNotifier)(nil)

// NewPGNotifier returns a notifier that sends through d's pool and listens
// on a dedicated connection of its own. Call Listen to start hearing other
// instances; until then it wakes local waiters only.
func NewPGNotifier(d *db.DB, log *zap.Logger) (*PGNotifier, error) {
	if d == nil || d.Driver() != db.DriverPostgres {
		return nil, errors.New("postgres notifier: a postgres store is required")
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &PGNotifier{db: d, log: log, local: NewLocalNotifier(), ready: make(chan struct{})}, nil
}

// Subscribe returns a channel woken by a notification for id from any instance.
func (n *PGNotifier) Subscribe(id string) (<-chan struct{}, func()) { return n.local.Subscribe(id) }

// Notify wakes local waiters at once and every instance through NOTIFY.
func (n *PGNotifier) Notify(ctx context.Context, id string) error {
	_ = n.local.Notify(ctx, id)
	if _, err := n.db.SQL().ExecContext(ctx, `SELECT pg_notify($1, $2)`, PGChannel, id); err != nil {
		return fmt.Errorf("notify approval %s: %w", id, err)
	}
	return nil
}

// Ready is closed once Listen is listening for the first time.
func (n *PGNotifier) Ready() <-chan struct{} { return n.ready }

// Listen relays notifications until ctx ends, reconnecting after a lost
// connection. It returns ctx's error.
func (n *PGNotifier) Listen(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		err := n.listenOnce(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n.log.Warn("approval listener lost its connection; reconnecting", zap.Error(err), zap.Duration("backoff", backoff))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (n *PGNotifier) listenOnce(ctx context.Context) error {
	conn, err := n.db.DedicatedConn(ctx)
	if err != nil {
		return fmt.Errorf("connect listener: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+PGChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	n.once.Do(func() { close(n.ready) })
	// Notifications sent while this connection was down are lost: let
	// every waiter re-read the store.
	n.local.NotifyAll()
	for {
		note, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		_ = n.local.Notify(ctx, note.Payload)
	}
}
