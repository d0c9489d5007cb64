-- Portable SQL: the same migration runs on SQLite and PostgreSQL.

CREATE TABLE orders (
    id                  TEXT PRIMARY KEY,
    customer_id         TEXT NOT NULL,
    -- pending | confirmed | pending_pricing | rejected | failed | cancelled
    status              TEXT NOT NULL,
    -- live | fallback; NULL until priced
    pricing             TEXT,
    currency            TEXT,
    -- NULL while any line is unpriced
    total_cents         BIGINT,
    -- The client's Idempotency-Key. UNIQUE makes "one order per key" hold
    -- across replicas; NULLs (no key) never conflict.
    idempotency_key     TEXT UNIQUE,
    -- Canonical form of the request, to refuse a key reused for another order.
    request_fingerprint TEXT NOT NULL,
    failure_reason      TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

CREATE INDEX orders_by_customer ON orders (customer_id, created_at);
CREATE INDEX orders_by_status ON orders (status, created_at);

CREATE TABLE order_items (
    order_id         TEXT NOT NULL REFERENCES orders (id),
    line_no          INTEGER NOT NULL,
    sku              TEXT NOT NULL,
    name             TEXT,
    quantity         BIGINT NOT NULL CHECK (quantity > 0),
    unit_price_cents BIGINT,
    discount_percent BIGINT,
    line_total_cents BIGINT,
    PRIMARY KEY (order_id, line_no)
);

-- The last price the pricing service quoted for each sku: what fallback
-- pricing charges when pricing cannot be reached.
CREATE TABLE last_prices (
    sku              TEXT PRIMARY KEY,
    unit_price_cents BIGINT NOT NULL,
    discount_percent BIGINT NOT NULL,
    currency         TEXT NOT NULL,
    seen_at          BIGINT NOT NULL
);
