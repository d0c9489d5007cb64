-- The transactional outbox (shared::events::outbox): each event is written in
-- the same transaction as the change it describes, and the relay publishes it
-- to NATS JetStream. Portable SQL (SQLite and PostgreSQL). Stays empty while
-- events are off (NATS_URL unset).
CREATE TABLE outbox (
    id          TEXT PRIMARY KEY,   -- the event id (UUIDv7, time-ordered)
    subject     TEXT NOT NULL,      -- the event type, also the NATS subject
    event       TEXT NOT NULL,      -- the CloudEvent, JSON
    traceparent TEXT,               -- W3C trace context of the change
    created_at  BIGINT NOT NULL,    -- ms since the Unix epoch
    sent_at     BIGINT              -- NULL until JetStream acknowledged it
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;
