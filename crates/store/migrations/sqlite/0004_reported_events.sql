-- The ids enforcement points give the events they report (`data.event_id`): a batch shipped a
-- second time (a proxy that crashed between the broker's acknowledgement and its own note of
-- it) is recognised, and its events are not appended twice.
CREATE TABLE reported_events (
    event_id TEXT PRIMARY KEY NOT NULL
) STRICT;
