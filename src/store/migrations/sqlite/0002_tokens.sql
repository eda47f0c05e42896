-- Logging out everywhere: a user's tokens issued before this time (Unix seconds) are refused.
ALTER TABLE users ADD COLUMN tokens_valid_after BIGINT NOT NULL DEFAULT 0;
-- The scopes a user may be granted (space-separated); NULL: every configured scope.
ALTER TABLE users ADD COLUMN scopes TEXT;

-- Refresh tokens (RFC 6749 §6), kept only as SHA-256 hashes, in families: a login starts a
-- family, each refresh replaces the family's live token (rotation), and presenting a replaced
-- one ends the whole family (RFC 9700 §4.14.2). A family lives at most until expires_at; a
-- token is refused after idle_expires_at.
CREATE TABLE refresh_families (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT NOT NULL,
    scope TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX refresh_families_by_username ON refresh_families (username);
CREATE INDEX refresh_families_by_expiry ON refresh_families (expires_at);

CREATE TABLE refresh_tokens (
    hash TEXT PRIMARY KEY NOT NULL,
    family_id TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    idle_expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);

-- Access tokens revoked before they expire (RFC 7009), named by a hash of their signature,
-- kept until they would have expired; every instance follows them by revision.
CREATE TABLE revoked_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    expires_at BIGINT NOT NULL,
    revision BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_by_revision ON revoked_tokens (revision);
CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at);
