-- Fracta state store, schema version 1.
-- Timestamps are RFC 3339 UTC text with nine fractional digits (fixed width, so
-- text order is time order). JSON columns hold serialized JSON text.

CREATE TABLE tasks (
    name          TEXT PRIMARY KEY NOT NULL,
    description   TEXT,
    source        TEXT NOT NULL,
    defaults      TEXT NOT NULL DEFAULT '{}',
    instructions  TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

-- parent_id / root_id are deliberately not foreign keys: deleting an agent must
-- not require deleting (or rewriting) its descendants.
CREATE TABLE agents (
    id             TEXT PRIMARY KEY NOT NULL,
    parent_id      TEXT,
    root_id        TEXT NOT NULL,
    depth          INTEGER NOT NULL DEFAULT 0,
    task           TEXT NOT NULL,
    runtime        TEXT NOT NULL,
    adapter        TEXT NOT NULL,
    mode           TEXT NOT NULL,
    model          TEXT,
    status         TEXT NOT NULL,
    prompt         TEXT NOT NULL,
    resume_token   TEXT,
    workspace      TEXT,
    branch         TEXT,
    runtime_home   TEXT,
    pid            INTEGER,
    process_start  TEXT,
    host           TEXT,
    exit_code      INTEGER,
    signal         INTEGER,
    error          TEXT,
    result         TEXT,
    input_tokens   INTEGER NOT NULL DEFAULT 0,
    output_tokens  INTEGER NOT NULL DEFAULT 0,
    cached_tokens  INTEGER NOT NULL DEFAULT 0,
    cost_usd       REAL,
    created_at     TEXT NOT NULL,
    started_at     TEXT,
    ended_at       TEXT,
    updated_at     TEXT NOT NULL,
    meta           TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX agents_parent ON agents (parent_id);
CREATE INDEX agents_root ON agents (root_id);
CREATE INDEX agents_status ON agents (status);
CREATE INDEX agents_created ON agents (created_at);

CREATE TABLE events (
    agent_id  TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    at        TEXT NOT NULL,
    kind      TEXT NOT NULL,
    payload   TEXT NOT NULL,
    raw       TEXT,
    parsed    INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (agent_id, seq)
) WITHOUT ROWID;

CREATE TABLE usage (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id       TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    turn           INTEGER NOT NULL,
    model          TEXT,
    input_tokens   INTEGER NOT NULL DEFAULT 0,
    output_tokens  INTEGER NOT NULL DEFAULT 0,
    cached_tokens  INTEGER NOT NULL DEFAULT 0,
    cost_usd       REAL,
    at             TEXT NOT NULL
);

CREATE INDEX usage_agent ON usage (agent_id, turn);
