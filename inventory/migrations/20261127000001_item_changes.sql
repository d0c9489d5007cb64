-- Who changed an item, when, and how: one row per catalogue change, written
-- in the same transaction as the change itself. Portable SQL (SQLite and
-- PostgreSQL).
--
-- `seq` numbers each item's changes 1, 2, 3, …: the change's transaction has
-- already written the item's row (and so, on PostgreSQL, holds its row lock;
-- on SQLite the one writer), so the next number cannot be taken twice. It
-- also orders the history newest first without relying on clocks.
CREATE TABLE item_changes (
    sku         TEXT NOT NULL REFERENCES items (sku),
    seq         BIGINT NOT NULL,
    -- Milliseconds since the Unix epoch.
    at          BIGINT NOT NULL,
    -- The token's subject, or "anonymous" / "service".
    actor       TEXT NOT NULL,
    -- created | updated | stock
    kind        TEXT NOT NULL,
    -- Stock changes only.
    delta       BIGINT,
    reason      TEXT,
    stock_after BIGINT,
    -- Creations and updates only.
    name        TEXT,
    category    TEXT,
    PRIMARY KEY (sku, seq)
);
