-- The relay's lease on the outbox (shared_events::relay): replicas that share
-- one outbox publish it one at a time, in order, without holding a database
-- lock while the broker answers. A relay takes the lease (or renews its own)
-- in a statement of its own before each round, and marks rows sent only while
-- it is still the owner; another relay may take it once `expires_at` has
-- passed. Portable SQL (SQLite and PostgreSQL).
CREATE TABLE outbox_lease (
    name       TEXT PRIMARY KEY,  -- what is leased: 'relay'
    owner      TEXT NOT NULL,     -- the relay holding it (a random id per relay)
    expires_at BIGINT NOT NULL    -- ms since the Unix epoch
);
