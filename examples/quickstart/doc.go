// Package quickstart holds the demo that `toolgate dev` serves: a config,
// tool declarations and the seed of a demo SQLite database (customers with
// fake card numbers, orders, refunds). It must never hold a real secret: the
// dev API keys are generated per data dir by `toolgate dev`.
package quickstart
