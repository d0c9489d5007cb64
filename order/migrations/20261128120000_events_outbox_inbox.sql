-- Events (NATS JetStream): the outbox the relay publishes (an order's event is
-- written in the same transaction as its status change), and the inbox of
-- events order's consumers have handled. Portable SQL: SQLite and PostgreSQL.
CREATE TABLE outbox (
    id          TEXT PRIMARY KEY,
    subject     TEXT NOT NULL,
    event       TEXT NOT NULL,
    traceparent TEXT,
    created_at  BIGINT NOT NULL,
    sent_at     BIGINT
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;

CREATE TABLE inbox (
    consumer   TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    handled_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX inbox_handled ON inbox (handled_at);
