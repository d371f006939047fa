-- 0005_identity: who asked, and what an approval is bound to (DESIGN §6).
--
-- approvals.principal now names who asked (for a grant token, the principal
-- that minted the grant); approvals.caller is the credential identity the
-- request is bound to (the caller's subject, in normal form): only a call
-- made with it runs on the approval. rule_version identifies the governing
-- rule as it was when the request was made; a request whose rule changed is
-- stale. Rows from before this migration have no rule version, so their
-- pending and unused approvals go stale on the next call.
ALTER TABLE approvals ADD COLUMN caller TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN rule_version TEXT NOT NULL DEFAULT '';
UPDATE approvals SET caller = principal;

-- At most one pending request per call: concurrent identical calls converge
-- on it. Older duplicates are withdrawn first, keeping the oldest.
UPDATE approvals SET status = 'cancelled', reason = 'withdrawn: a duplicate of an older pending request for the same call'
WHERE status = 'pending' AND EXISTS (
    SELECT 1 FROM approvals o
    WHERE o.status = 'pending' AND o.graph = approvals.graph AND o.node = approvals.node
      AND o.run_id = approvals.run_id AND o.tool = approvals.tool AND o.args_hash = approvals.args_hash
      AND o.caller = approvals.caller
      AND (o.created_at < approvals.created_at OR (o.created_at = approvals.created_at AND o.id < approvals.id)));
CREATE UNIQUE INDEX approvals_one_pending ON approvals (graph, node, run_id, tool, args_hash, caller) WHERE status = 'pending';

-- The principal that minted a grant, as JSON {"subject", "email",
-- "auth_method"}: the human or service behind the grant's calls. Empty for
-- grants minted before this migration; created_by names the minter then.
ALTER TABLE grants ADD COLUMN minter TEXT NOT NULL DEFAULT '';
