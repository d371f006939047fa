-- 0006_principals: owned, expiring API keys managed at run time, their last
-- use, disabled principals (offboarding), SCIM users, and why a grant was
-- revoked. Times are Unix milliseconds (UTC), like the grants.

-- Keys made through POST /v1/keys. Only the hex SHA-256 of a key is stored.
-- Names are never reused: a revoked key keeps its row.
CREATE TABLE api_keys (
    name        TEXT PRIMARY KEY,
    sha256      TEXT NOT NULL UNIQUE,
    owner       TEXT NOT NULL,   -- principal accountable for the key, normal form
    created_by  TEXT NOT NULL,   -- admin principal that made it, normal form
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX api_keys_owner ON api_keys (owner);
CREATE INDEX api_keys_created_by ON api_keys (created_by);

-- When each key (configured or made at run time) was last used, written at
-- most once a minute per key and instance.
CREATE TABLE key_usage (
    name          TEXT PRIMARY KEY,
    last_used_at  BIGINT NOT NULL
);

-- Disabled principals. A principal is disabled while either flag is set:
-- admin_disabled by POST /v1/principals/{p}/disable, scim_disabled by the
-- identity provider (SCIM active=false). scim_id names the SCIM user whose
-- names these are. A row with both flags clear is an enabled principal.
CREATE TABLE principal_states (
    principal       TEXT PRIMARY KEY,
    admin_disabled  BOOLEAN NOT NULL DEFAULT FALSE,
    scim_disabled   BOOLEAN NOT NULL DEFAULT FALSE,
    scim_id         TEXT NOT NULL DEFAULT '',
    reason          TEXT NOT NULL DEFAULT '',
    changed_by      TEXT NOT NULL DEFAULT '',
    changed_at      BIGINT NOT NULL
);
CREATE INDEX principal_states_changed_at ON principal_states (changed_at);

-- Users provisioned by an identity provider over SCIM 2.0. principals is the
-- JSON array of principal names (normal form) the user maps to: user:<userName>
-- and user:<email> for each email.
CREATE TABLE scim_users (
    id           TEXT PRIMARY KEY,
    user_name    TEXT NOT NULL,
    external_id  TEXT NOT NULL DEFAULT '',
    display_name TEXT NOT NULL DEFAULT '',
    emails       TEXT NOT NULL DEFAULT '[]',
    principals   TEXT NOT NULL DEFAULT '[]',
    active       BOOLEAN NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
-- userName is unique regardless of case, as SCIM compares it.
CREATE UNIQUE INDEX scim_users_user_name ON scim_users (lower(user_name));

-- Why a grant was revoked: '' (revoked by a principal of its graph) or
-- 'owner_disabled' (the principal that minted it was disabled).
ALTER TABLE grants ADD COLUMN revoked_reason TEXT NOT NULL DEFAULT '';
