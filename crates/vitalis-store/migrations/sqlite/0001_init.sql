-- Vitalis history, schema version 1 (SQLite). Times are milliseconds since
-- the Unix epoch (UTC); durations are milliseconds. Every row carries the
-- name of the instance that wrote it.

-- Every result of every check (kept `raw_retention`, and at least until it
-- is rolled up).
CREATE TABLE results (
    id INTEGER PRIMARY KEY,
    instance TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    rseq INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    component TEXT NOT NULL,
    check_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    level TEXT NOT NULL,
    status TEXT NOT NULL,
    duration_ms REAL NOT NULL,
    observed_value REAL,
    observed_unit TEXT,
    output TEXT NOT NULL,
    error TEXT
);
CREATE UNIQUE INDEX results_once ON results (instance, epoch, rseq);
CREATE INDEX results_by_check ON results (component, check_name, time_ms);
CREATE INDEX results_by_component ON results (component, time_ms);
CREATE INDEX results_by_time ON results (time_ms);

-- Every transition of a check, component, group or the system (kept
-- `retention`). `part` is 0 for an event of the engine's log; rows 1..n at
-- one seq restate the whole state after a gap in the log (change 'resync').
CREATE TABLE transitions (
    id INTEGER PRIMARY KEY,
    instance TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    part INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    subject TEXT NOT NULL,
    subject_id TEXT,
    check_name TEXT,
    change TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT,
    output TEXT,
    error TEXT
);
CREATE UNIQUE INDEX transitions_once ON transitions (instance, epoch, seq, part);
CREATE INDEX transitions_by_subject ON transitions (subject_id, time_ms);
CREATE INDEX transitions_by_time ON transitions (time_ms);

-- Per-check rollups: bucket_secs 60 (minute) or 3600 (hour).
CREATE TABLE rollups (
    instance TEXT NOT NULL,
    bucket_secs INTEGER NOT NULL,
    start_ms INTEGER NOT NULL,
    component TEXT NOT NULL,
    check_name TEXT NOT NULL,
    pass INTEGER NOT NULL,
    warn INTEGER NOT NULL,
    fail INTEGER NOT NULL,
    unknown INTEGER NOT NULL,
    latency_min_ms REAL NOT NULL,
    latency_avg_ms REAL NOT NULL,
    latency_max_ms REAL NOT NULL,
    latency_p95_ms REAL NOT NULL,
    PRIMARY KEY (instance, bucket_secs, component, check_name, start_ms)
);
CREATE INDEX rollups_by_time ON rollups (bucket_secs, start_ms);

-- How far each instance has rolled up its results.
CREATE TABLE rollup_progress (
    instance TEXT NOT NULL,
    bucket_secs INTEGER NOT NULL,
    done_until_ms INTEGER NOT NULL,
    PRIMARY KEY (instance, bucket_secs)
);

-- One row per run of an instance: uptime counts time outside every session
-- as no data.
CREATE TABLE sessions (
    instance TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    started_ms INTEGER NOT NULL,
    last_alive_ms INTEGER NOT NULL,
    stopped_ms INTEGER,
    PRIMARY KEY (instance, epoch)
);
CREATE INDEX sessions_by_time ON sessions (instance, started_ms);
