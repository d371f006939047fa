// Package mask keeps sensitive values out of what toolgate hands to agents,
// writes to recordings and logs, and puts in error messages (DESIGN §7). It
// implements broker.Masker. A tool's result masking (its merged rules and
// detectors) is compiled once, by PrepareTool, when the catalog loads,
// into a ToolMasking the broker keeps with the tool; nothing is compiled or
// cached per call.
//
// # Path rules
//
// Rules map gjson paths to actions. Paths use the plain part of gjson path
// syntax: dot-separated keys (backslash escapes a dot or wildcard), numeric
// array indexes, "#" for every element of an array (nested arrays too, as
// in "rows.#.items.#.owner.email"; a trailing "#" means every element,
// not the count), and * / ? wildcards in keys. gjson queries ("#(...)"),
// modifiers ("@reverse"), pipes and multipaths compute new documents
// rather than point into one, so Validate refuses them. Rules merge by
// path: global < target < tool; when two different paths match the same
// value, the rule from the higher layer wins (then the lexically smaller
// path). A rule that matches an object or array masks the whole subtree.
//
// The actions:
//
//	redact  "[REDACTED]"
//	last4   every character but the last four becomes "*": "************4242";
//	        four characters or fewer are all starred
//	email   "jane@example.com" becomes "j***@example.com"; a non-address is redacted
//	hash    "h_" + the first 12 hex digits of HMAC-SHA256(hash_key, value),
//	        stable so auditors can join on it
//	null    JSON null
//	drop    the key (or array element) is removed
//	deny    as drop in results; on a Postgres passthrough target's
//	        "table.column" rule, the database itself withholds the column
//	        (the per-grant role gets no privilege on it, connectors/pgroles)
//
// # Output-schema rule
//
// Masked output is the same document, compacted (insignificant whitespace
// is dropped), always valid JSON of the same shape. Masking actions always
// yield strings, except null (yields null) and drop
// (removes the member). A number, boolean, object or array field masked by
// redact, hash or last4 becomes a string ("[REDACTED]", "h_…", "****4242";
// last4 and email on objects, arrays and booleans give "[REDACTED]"). A
// JSON null stays null under every action but drop. A JSON number that
// the card detector recognises becomes the string "************4242". A
// tool whose output schema types a masked field as a number must declare
// it as string or ["number","string"].
//
// # Detectors
//
// Detectors run over every string value and object key (after decoding
// JSON escapes, so "\u0034\u0032..." spelling a card is caught) and, for
// cards, over JSON numbers: card (13-19 digits, spaces or dashes between
// groups, Luhn), email, ssn (AAA-GG-SSSS with dashes or spaces, SSA
// never-issued ranges excluded), iban (mod-97), jwt (header decodes to JSON
// with "alg"), secret (AWS AKIA/ASIA key ids, Slack xox[abpr]-, GitHub
// ghp_/gho_/ghs_/ghu_/ghr_/github_pat_, Stripe sk_live_/rk_live_, toolgate
// tgk_ and tg_ tokens, the token of "Bearer <token>") and private_key (PEM
// PRIVATE KEY blocks; a block without END runs to the end of the string).
// A hit replaces just the match: cards keep their last four digits
// ("************4242"), anything else becomes "[REDACTED:<kind>]". Text
// that spells a value with \uXXXX escapes (a string holding escaped JSON,
// text that is not JSON, an error message) is masked in its decoded form.
// Cards and SSNs are looked for at the start of every run of digits,
// whatever precedes or follows it ("x4242..." from 'x'||card, or a card in
// an error message's quoted value); a run of more than 19 digits is masked
// card by card when it splits wholly into Luhn-valid numbers of 13 to 19
// digits (cards glued by string_agg or format). A card padded with other
// digits, or any other reversible transform, is a different number: the
// detectors are a net, not a lock. An SSN must be written with dashes or
// spaces. The other detectors start at word boundaries.
//
// All detectors are on by default everywhere, except email, which is on
// for MaskRecord and MaskText and, for results, only where the global
// switches, the target or the tool turn it on. Switches merge defaults <
// global < target < tool, so a tool or target may switch any detector off.
//
// # Injected credentials
//
// The credentials toolgate itself holds and injects (target header values
// other than Accept, Content-Type and the like, DSN and base_url
// passwords, Slack tokens and secrets, the webhook secret, keys; see
// SecretsFromConfig) are redacted by value, before the detectors, wherever
// masking runs: every string value and object key of a result or record,
// free text, passthrough cells. Every spelling counts: as is, JSON-escaped
// (also inside JSON text inside a string, or spelled with \uXXXX),
// URL-encoded, and the parts of a "Bearer <token>" or "Basic <base64>"
// value (the token, user:password, the password). A hit becomes
// "[REDACTED:credential]" and is counted as "detector:credential". Values
// shorter than MinSecretBytes would match ordinary text, so they are not
// redacted; New logs where such a value is configured, never the value.
//
// # Passthrough cells
//
// MaskCell masks one text cell of a Postgres DataRow: the target's
// "table.column" rule (else a global rule with that exact key), then the
// target's result detectors. null, drop and deny turn the cell into SQL
// NULL. MaskColumn resolves the same once for every cell of a column; for
// a column of short integers (smallint, integer, oid, boolean) that no
// rule names it skips the detectors, which cannot match one.
//
// # What it must never do
//
// It never passes through what it cannot parse: invalid JSON becomes a JSON
// string of the detector-masked text. It never logs or returns a value it
// masked, and MaskStats counts by "rule:<path>" or "detector:<name>",
// never by value. A document nested deeper than MaxDepth is an error
// (ErrTooDeep), and the broker withholds the result. The document is read
// once: rule paths are matched while the writer walks it, without regular
// expressions or a re-parse per rule.
package mask
