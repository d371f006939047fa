// Package counters keeps policy budget counters in toolgate's store
// (internal/db, SQLite or PostgreSQL), so budgets hold across restarts and
// are shared by every broker instance on one store.
//
// Store.Add is one atomic statement,
//
//	INSERT ... ON CONFLICT (key) DO UPDATE SET n = n + excluded.n RETURNING n
//
// so two instances charging the same run never both see room for the last
// call. A store that does not answer is an error, never a guess: the policy
// engine then refuses the call (fail closed).
//
// Package counters must never decide a budget itself (policy does) and
// never keep a count only in memory.
package counters
