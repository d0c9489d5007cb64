-- A reservation is written whole and read whole, so its lines now live in its
-- row, as a JSON array of {sku, name, category, quantity}: confirming one is a
-- single statement, and reserving one line takes one statement fewer. (On
-- SQLite every statement is a round trip to the connection's own thread.)
-- Portable SQL; TEXT holds the JSON on both stores.
ALTER TABLE reservations ADD COLUMN lines TEXT;

-- Reservations made before this migration keep their lines in
-- reservation_lines until the service copies them over at start-up
-- (Store::connect); the table is then empty and unused, and a later migration
-- drops it.
