-- Where a channel delivered a request's message, in words every channel shares: the channel
-- (`slack`, `teams`), the address it was asked to deliver to as configured (`#dba-approvals`),
-- and the channel's own reference to the message, which only that channel reads (Slack: the
-- channel id and the message's `ts`). Rows of the Slack-shaped `messages` table carry over.
CREATE TABLE deliveries (
    request_id  TEXT NOT NULL REFERENCES requests (id),
    channel     TEXT NOT NULL,
    address     TEXT NOT NULL,
    reference   TEXT NOT NULL,
    settled     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (request_id, channel, address)
) STRICT;

INSERT INTO deliveries (request_id, channel, address, reference, settled)
    SELECT request_id, service, target, channel || ' ' || ts, settled FROM messages;

DROP TABLE messages;

CREATE INDEX deliveries_unsettled ON deliveries (channel) WHERE settled = 0;
