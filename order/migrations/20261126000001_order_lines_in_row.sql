-- An order is written whole and read whole, so its lines now live in its row,
-- as a JSON array: each step of placing an order is one statement and needs no
-- transaction. (On SQLite every statement, and a transaction's BEGIN and COMMIT,
-- is a round trip to the connection's own thread: placing an order went from
-- nine of them to three.) Portable SQL; TEXT holds the JSON on both stores.
ALTER TABLE orders ADD COLUMN lines TEXT;

-- Orders placed before this migration keep their lines in order_items until
-- the service copies them over at start-up (Store::connect); the table is then
-- empty and unused, and a later migration drops it.
