-- Runs and their steps. Run state and the (possibly large) definition live in separate tables,
-- so the frequent small updates of a run's status and lease never rewrite its definition.
-- SQL that SQLite and PostgreSQL both accept; IF NOT EXISTS, as databases made before
-- migrations already hold these tables.
CREATE TABLE IF NOT EXISTS bear_runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    control TEXT,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL,
    owner TEXT
);
CREATE INDEX IF NOT EXISTS bear_runs_status ON bear_runs (status, created_ms);
CREATE TABLE IF NOT EXISTS bear_run_definitions (
    run_id TEXT PRIMARY KEY REFERENCES bear_runs (id) ON DELETE CASCADE,
    definition TEXT NOT NULL,
    inputs TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bear_steps (
    run_id TEXT NOT NULL REFERENCES bear_runs (id) ON DELETE CASCADE,
    step_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL,
    output TEXT,
    error TEXT,
    agent TEXT,
    started_ms BIGINT,
    finished_ms BIGINT,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (run_id, step_id)
);
