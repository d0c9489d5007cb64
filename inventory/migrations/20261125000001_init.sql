-- Portable SQL: the same migration runs on SQLite and PostgreSQL.

CREATE TABLE items (
    sku      TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    category TEXT NOT NULL,
    -- What can still be ordered. The CHECK is the last line of defence; the
    -- conditional UPDATE in the store is what keeps it from being needed.
    stock    BIGINT NOT NULL CHECK (stock >= 0)
);

CREATE INDEX items_category ON items (category);

CREATE TABLE reservations (
    id         TEXT PRIMARY KEY,
    -- reserved | confirmed | released | expired
    status     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- Milliseconds since the Unix epoch; NULL once no longer reserved.
    expires_at BIGINT,
    updated_at BIGINT NOT NULL
);

CREATE INDEX reservations_due ON reservations (status, expires_at);

CREATE TABLE reservation_lines (
    reservation_id TEXT NOT NULL REFERENCES reservations (id),
    sku            TEXT NOT NULL REFERENCES items (sku),
    quantity       BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (reservation_id, sku)
);
