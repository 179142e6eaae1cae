-- Lists of requests (GET /v1/requests, the inbox, the channels' resync) are read newest first,
-- filtered by state, by requester, or not at all: each gets an index in that order, so no list
-- reads the history it does not show. The id settles ties between requests made in the same
-- millisecond, as the ORDER BY does.
DROP INDEX requests_by_state;
CREATE INDEX requests_by_state ON requests (state, created_at, id);
CREATE INDEX requests_by_requester ON requests (requester, created_at, id);
CREATE INDEX requests_by_created ON requests (created_at, id);
