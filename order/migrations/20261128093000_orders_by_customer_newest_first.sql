-- A customer's order history is read newest first and paged by keyset on
-- (created_at, id) (GET /orders?customer_id=..&cursor=..). This index serves
-- that order and the "older than the cursor" range directly, the id included,
-- so no page sorts rows and a deep page costs what the first does. It covers
-- every use of orders_by_customer (customer_id, created_at), which goes.
-- Portable SQL: the same migration runs on SQLite and PostgreSQL.
CREATE INDEX orders_by_customer_newest ON orders (customer_id, created_at DESC, id DESC);
DROP INDEX orders_by_customer;
