-- Messages posted about a request in a chat service (Slack): where, so that any broker instance,
-- after any restart, can update them. `settled` is set once the message shows the request's end.
CREATE TABLE messages (
    request_id  TEXT NOT NULL REFERENCES requests (id),
    service     TEXT NOT NULL,
    target      TEXT NOT NULL,
    channel     TEXT NOT NULL,
    ts          TEXT NOT NULL,
    settled     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (request_id, service, target)
) STRICT;

CREATE INDEX messages_unsettled ON messages (service) WHERE settled = 0;
