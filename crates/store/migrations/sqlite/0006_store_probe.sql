-- One row the health check rewrites when no write has committed recently: whether the store can
-- commit is known by committing.
CREATE TABLE store_probe (
    id  INTEGER PRIMARY KEY NOT NULL,
    at  INTEGER NOT NULL
) STRICT;
