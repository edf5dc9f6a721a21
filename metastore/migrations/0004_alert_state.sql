-- The alert notifier's shared state: silences and the notification log. Any process
-- may write a silence (the API of every query server); only the alerting leader writes
-- the notification log. The metastore keeps each record as the alert engine's JSON and
-- does not read it; `until_ms` is what retention goes by (a silence's end, a
-- notification's delivery time).

CREATE TABLE alert_state (
    kind     TEXT NOT NULL,   -- 'silence' or 'notification'
    key      TEXT NOT NULL,   -- a silence's ID; a notification's receiver and group key
    until_ms BIGINT NOT NULL,
    body     TEXT NOT NULL,
    PRIMARY KEY (kind, key)
);
