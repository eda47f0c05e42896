-- Login throttling shared by every instance on this database: the failure count and lockout of
-- each key, the attempts in flight (each holding its place under its keys until settled, or
-- until its lease runs out if its instance died), and the (username, address) pairs that logged
-- in. Usernames appear only as keyed hashes, under the random key in store_secrets.
CREATE TABLE throttle_counters (
    key TEXT PRIMARY KEY NOT NULL,
    failures INTEGER NOT NULL,
    pending INTEGER NOT NULL,
    last_failure_ms BIGINT NOT NULL,
    blocked_until_ms BIGINT
);
CREATE INDEX throttle_counters_by_last_failure ON throttle_counters (last_failure_ms);

CREATE TABLE throttle_attempts (
    id BIGSERIAL PRIMARY KEY,
    keys TEXT[] NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE INDEX throttle_attempts_by_expiry ON throttle_attempts (expires_at_ms);

CREATE TABLE throttle_known (
    pair TEXT PRIMARY KEY NOT NULL,
    last_success_ms BIGINT NOT NULL
);
CREATE INDEX throttle_known_by_last_success ON throttle_known (last_success_ms);

CREATE TABLE store_secrets (
    name TEXT PRIMARY KEY NOT NULL,
    value BYTEA NOT NULL
);
-- 32 bytes from PostgreSQL's strong random source (gen_random_uuid uses it; 244 random bits).
INSERT INTO store_secrets (name, value)
VALUES ('throttle_key', decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));
