-- Portable SQL: the same migration runs on SQLite and PostgreSQL.

CREATE TABLE accounts (
    customer_id   TEXT PRIMARY KEY,
    -- Trimmed and lowercased by the service: the UNIQUE constraint is what
    -- makes "one account per email" hold across replicas.
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    -- argon2id PHC string ($argon2id$v=19$m=19456,t=2,p=1$salt$hash).
    password_hash TEXT NOT NULL,
    -- Milliseconds since the Unix epoch.
    created_at    BIGINT NOT NULL
);
