// Package recordings is toolgate's audit store: it makes every broker.Event
// durable in a tamper-evident hash chain, and reads it back for auditors
// (Verify, Export, Events, Trace and WriteTimeline) and for retention (Purge).
//
// # Durability
//
// Store.Record returns only after the event's transaction has committed.
// Concurrent Record calls are group-committed by leader and followers
// (group.go): the caller that finds no commit in flight commits at once,
// in its own goroutine, everything queued; callers arriving meanwhile
// queue, and the oldest of them leads the next commit, which takes them
// all. One transaction per batch; each caller is woken with the outcome.
// If the store cannot be written, Record returns a *broker.Error with code
// audit_unavailable and the broker fails the call closed; the next commit
// then re-reads the chain head first, so nothing is lost, duplicated or
// forked when the store comes back.
//
// # The chain
//
// Each Store writes one chain, named by Config.Instance, so instances
// sharing a PostgreSQL store never lock each other. Records in a chain are
// numbered seq = 1, 2, 3, ... and linked:
//
//	hash = hex(SHA-256(prev_hash + "\n" + chain + "\n" + event))
//
// where prev_hash is the previous record's hash (64 zeros for the first
// record, or the checkpoint hash after a purge) and event is the record's
// canonical JSON (see Canonical): the event with Time in UTC (RFC 3339 with
// nanoseconds), encoded as encoding/json encodes it (HTML-safe string
// escapes, omitempty, raw args and result compacted), with every object's
// members sorted byte-wise by their encoded keys and numbers kept as
// written, no insignificant whitespace. Canonical is a hand-written encoder
// for broker.Event that produces exactly those bytes without reflection; it
// copies raw args and results that are already canonical (the masker's
// output) as they are. Those exact bytes are stored in the event column and
// are what Export writes, and the chain hashes them, not a re-encoding: anyone
// can recompute the chain from an export without reproducing the encoder.
//
// Verify walks every chain and reports the first edited, removed or
// reordered record of each. A purge leaves a checkpoint (seq and hash of the
// last purged record, HMAC-signed when Config.CheckpointKey is set) where
// verification starts. Deleting the newest records of a chain cannot be
// told from a chain that simply ended, except for the chain this Store is
// writing, whose head it remembers.
//
// # Who may read
//
// Auditors (auth.auditors) is the one access rule of the audit trail, and
// Reader applies it to every read made through a front door: the HTTP API
// and the console call Reader, which refuses anyone else with forbidden
// before reading anything. Reader also lists runs (Runs) and verifies the
// chains that hold a run's records (VerifyRun), reusing one verification
// for a short while because it walks every chain. The CLI reads the store
// its config names and uses Store directly.
//
// Package recordings must never store or print an unmasked value (events
// arrive masked; it adds nothing), never acknowledge a record that is not
// committed, and never rewrite or delete a record except through Purge.
package recordings
