-- Portable SQL: the same migration runs on SQLite and PostgreSQL.

-- One row per priced sku. Amounts are integer cents; the currency and the
-- catalogue-wide quantity tiers come from the catalogue file.
CREATE TABLE prices (
    sku              TEXT PRIMARY KEY,
    base_cents       BIGINT NOT NULL CHECK (base_cents >= 0),
    discount_percent BIGINT NOT NULL CHECK (discount_percent BETWEEN 0 AND 100),
    -- The sku's own tiers as a JSON array of {min_quantity, discount_percent};
    -- NULL means the catalogue's.
    tiers            TEXT,
    -- Listing order: the catalogue's, then skus in the order they were added.
    position         BIGINT NOT NULL
);

-- Who set a price, when, and to what; written in the same transaction as the
-- price. `seq` numbers each sku's changes: the change has already written the
-- sku's price row (row lock on PostgreSQL, the one writer on SQLite), so the
-- next number cannot be taken twice.
CREATE TABLE price_changes (
    sku              TEXT NOT NULL REFERENCES prices (sku),
    seq              BIGINT NOT NULL,
    -- Milliseconds since the Unix epoch.
    at               BIGINT NOT NULL,
    actor            TEXT NOT NULL,
    base_cents       BIGINT NOT NULL,
    discount_percent BIGINT NOT NULL,
    tiers            TEXT,
    PRIMARY KEY (sku, seq)
);
