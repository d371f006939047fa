package recordings

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"

	"github.com/toolgate/toolgate/broker"
)

// Events yields the records f selects, decoded, oldest first (by time,
// then chain and seq), as Export orders them. It streams: memory does not
// grow with the number of records. A failure is yielded once, last.
func (s *Store) Events(ctx context.Context, f Filter) iter.Seq2[broker.Event, error] {
	return func(yield func(broker.Event, error) bool) {
		if err := f.Validate(); err != nil {
			yield(broker.Event{}, err)
			return
		}
		rows, err := s.selectEvents(ctx, f, "chain, seq, event")
		if err != nil {
			yield(broker.Event{}, fmt.Errorf("recordings: read events: %w", err))
			return
		}
		defer rows.Close()
		for rows.Next() {
			var chain, event string
			var seq int64
			if err := rows.Scan(&chain, &seq, &event); err != nil {
				yield(broker.Event{}, fmt.Errorf("recordings: read events: %w", err))
				return
			}
			var ev broker.Event
			if err := json.Unmarshal([]byte(event), &ev); err != nil {
				yield(broker.Event{}, fmt.Errorf("recordings: read events: record %s/%d: %w", chain, seq, err))
				return
			}
			if !yield(ev, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(broker.Event{}, fmt.Errorf("recordings: read events: %w", err))
		}
	}
}
