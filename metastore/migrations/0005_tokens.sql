-- Tokens every process accepts beside those of its configuration (`triad token add`).
-- Each row keeps the token's SHA-256 (`sha256:<hex>`), never the token. Every process
-- re-reads the table every few seconds: an added token works everywhere, a removed one
-- stops working everywhere, without a restart or a configuration change.

CREATE TABLE tokens (
    name       TEXT PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    tenant     TEXT NOT NULL,
    role       TEXT NOT NULL,   -- 'write', 'read' or 'admin'
    trusted    BOOLEAN NOT NULL,
    created_ms BIGINT NOT NULL
);
