-- Requests keep their whole state (action, decision, reviews, state) as JSON written by the
-- approval core; the columns beside it exist for lookups.
CREATE TABLE requests (
    id          TEXT PRIMARY KEY NOT NULL,
    state       TEXT NOT NULL,
    requester   TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    body        TEXT NOT NULL
) STRICT;

CREATE INDEX requests_by_state ON requests (state, created_at);
CREATE INDEX requests_pending_deadline ON requests (expires_at) WHERE state = 'pending';

-- One row per review the core accepted, for queries; the request body holds the same reviews.
CREATE TABLE reviews (
    request_id  TEXT NOT NULL REFERENCES requests (id),
    reviewer    TEXT NOT NULL,
    verdict     TEXT NOT NULL,
    channel     TEXT NOT NULL,
    at          INTEGER NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (request_id, reviewer)
) STRICT;

-- Grants: consumed_at is set exactly once; a second consumption finds it set.
CREATE TABLE grants (
    id          TEXT PRIMARY KEY NOT NULL,
    request_id  TEXT NOT NULL REFERENCES requests (id),
    digest      TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    consumed_at INTEGER
) STRICT;

-- The audit log: body is the event exactly as sealed (its hash covers every field).
CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY NOT NULL,
    request_id  TEXT,
    body        TEXT NOT NULL
) STRICT;

CREATE INDEX audit_events_by_request ON audit_events (request_id) WHERE request_id IS NOT NULL;

CREATE TABLE audit_checkpoints (
    seq         INTEGER PRIMARY KEY NOT NULL,
    body        TEXT NOT NULL
) STRICT;
