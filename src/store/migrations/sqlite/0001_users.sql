-- Users, and the store-wide revision that every change bumps in the same transaction, so a
-- running server can follow changes by asking for what came after the revision it knows.
CREATE TABLE store_revision (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    revision BIGINT NOT NULL
);
INSERT INTO store_revision (id, revision) VALUES (1, 0);

CREATE TABLE users (
    username TEXT PRIMARY KEY NOT NULL,
    full_name TEXT,
    email TEXT,
    disabled BOOLEAN,
    hashed_password TEXT NOT NULL,
    revision BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX users_by_revision ON users (revision);

-- Usernames removed, and when: the readers' way to learn of a removal.
CREATE TABLE removed_users (
    username TEXT PRIMARY KEY NOT NULL,
    revision BIGINT NOT NULL
);
CREATE INDEX removed_users_by_revision ON removed_users (revision);
