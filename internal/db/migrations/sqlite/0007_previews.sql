-- 0007_previews: what an approval request shows of its call's effect (DESIGN §6).
--
-- preview is the masked effect preview as JSON ({"rows_affected", "sample",
-- "truncated", "image", "note", "hash", "tolerance"} or {"unavailable",
-- "code"}), NULL for requests made without one (passthrough HTTP, and every
-- request made before this migration). preview_hash is the SHA-256 the
-- request is bound to: the run on its approval refuses a stored preview that
-- no longer hashes to it, and must change as many rows as it counted. The
-- hash is not part of the unique pending key: a call has one pending
-- request, previewed once when it is made.
ALTER TABLE approvals ADD COLUMN preview TEXT;
ALTER TABLE approvals ADD COLUMN preview_hash TEXT NOT NULL DEFAULT '';
