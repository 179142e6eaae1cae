-- The id an enforcement point gives an event it reports is its own: ids are de-duplicated per
-- reporter (the event's principal), so one principal's `event_id` can never make the broker
-- drop another principal's event as one already recorded. The ids recorded so far are read back
-- from the reported events themselves, which name their reporter.
CREATE TABLE reported_event_ids (
    reporter TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (reporter, event_id)
) STRICT;

INSERT OR IGNORE INTO reported_event_ids (reporter, event_id)
SELECT COALESCE(json_extract(body, '$.principal'), ''), json_extract(body, '$.data.event_id')
FROM audit_events
WHERE json_type(body, '$.data.reported_by') IS NOT NULL
  AND json_type(body, '$.data.event_id') = 'text';

DROP TABLE reported_events;
