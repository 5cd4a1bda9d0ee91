//! Runs in a real SQLite file: they outlive their engine, and an interrupted run resumes
//! without re-running completed steps.

use std::collections::BTreeMap;
use std::sync::Arc;

use bear_agents::{Engine, SqlStore};
use bear_core::{RunControl, RunStatus, StepStatus, WorkflowStateStore};
use serde_json::json;

use crate::{Log, engine_with, fast_config, workflow};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_outlive_their_engine() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wf/workflows.db");
    let log = Log::default();
    let id = {
        let store = Arc::new(SqlStore::open(&path, false).await.unwrap());
        let engine = engine_with(store.clone(), &log, fast_config());
        let w = workflow(json!({"name": "durable", "steps": [
            {"id": "a", "type": "data_processing", "parameters": {"operation": "merge", "values": {"k": "v"}}},
            {"id": "b", "type": "tool_execution", "parameters": {"tool": "echo", "input": "{{ steps.a.output }}"}},
        ]}));
        let h = engine.start(w, BTreeMap::new()).await.unwrap();
        let id = h.id.clone();
        assert_eq!(h.wait().await.unwrap(), RunStatus::Completed);
        store.close().await;
        id
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the database is private to its owner");
    }
    let store = Arc::new(SqlStore::open(&path, true).await.unwrap());
    let engine = engine_with(store.clone(), &log, fast_config());
    let p = engine.progress(&id).await.unwrap();
    assert_eq!(p.status, RunStatus::Completed);
    assert_eq!(p.name, "durable");
    assert_eq!(p.results["b"], json!({"k": "v"}));
    assert_eq!((p.completed, p.total), (2, 2));
    assert!(p.steps.iter().all(|s| s.attempts == 1 && s.agent.is_some()));
    let listed = engine.list(Some(RunStatus::Completed)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        engine
            .list(Some(RunStatus::Running))
            .await
            .unwrap()
            .is_empty()
    );

    // Control requests are kept for the process that runs the run, and taken once.
    store.request_control(&id, RunControl::Pause).await.unwrap();
    assert_eq!(
        store.take_control(&id).await.unwrap(),
        Some(RunControl::Pause)
    );
    assert_eq!(store.take_control(&id).await.unwrap(), None);
}

/// An interrupted run, as a killed process leaves it: `a` completed, `b` running (its first
/// attempt's outcome unknown), `c` pending, the heartbeat old. Recovery must not run `a` again,
/// must retry `b` with the same idempotency key, and must finish the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_resumes_without_repeating_completed_steps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("workflows.db");
    let store = Arc::new(SqlStore::open(&path, false).await.unwrap());
    let log = Log::default();
    let engine: Engine = engine_with(store.clone(), &log, fast_config());
    let w = workflow(json!({"name": "crash", "steps": [
        {"id": "a", "type": "tool_execution", "parameters": {"tool": "echo", "input": {"id": "a"}}},
        {"id": "b", "type": "tool_execution", "depends_on": ["a"], "parameters": {"tool": "echo", "input": {"id": "b"}}},
        {"id": "c", "type": "tool_execution", "depends_on": ["b"], "parameters": {"tool": "echo", "input": {"id": "c"}}},
    ]}));
    // Run it once to get a persisted run, then rewrite it the way a killed process leaves it.
    let h = engine.start(w, BTreeMap::new()).await.unwrap();
    let id = h.id.clone();
    h.wait().await.unwrap();
    let mut record = store.load_run(&id).await.unwrap().unwrap();
    let old = bear_agents::now_ms() - 60_000;
    for (step, r) in record.steps.iter_mut() {
        r.finished_ms = None;
        r.error = None;
        match step.as_str() {
            "a" => {
                r.status = StepStatus::Completed;
                r.attempts = 1;
                r.output = Some(json!({"id": "a", "from": "before the crash"}));
            }
            "b" => {
                r.status = StepStatus::Running;
                r.attempts = 1;
                r.output = None;
            }
            _ => {
                r.status = StepStatus::Pending;
                r.attempts = 0;
                r.output = None;
            }
        }
    }
    record.status = RunStatus::Running;
    record.heartbeat_ms = old;
    store.save_run(&record).await.unwrap();
    let before = log.items().len();

    let p = engine.progress(&id).await.unwrap();
    assert!(p.interrupted, "an old heartbeat marks the run interrupted");
    let handles = engine.recover().await.unwrap();
    assert_eq!(handles.len(), 1);
    for h in handles {
        assert_eq!(h.wait().await.unwrap(), RunStatus::Completed);
    }
    let ran: Vec<String> = log.items()[before..].to_vec();
    assert_eq!(
        ran,
        ["start b", "end b", "start c", "end c"],
        "a is not run again"
    );
    let p = engine.progress(&id).await.unwrap();
    assert_eq!(p.results["a"]["from"], "before the crash");
    let b = &p.steps[1];
    assert_eq!(b.attempts, 2, "the interrupted attempt counts");
    let record = store.load_run(&id).await.unwrap().unwrap();
    assert_eq!(
        record.steps[&bear_core::StepId::new("b").unwrap()].idempotency_key,
        format!("{id}/b")
    );
    // Nothing is left to recover.
    assert!(engine.recover().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_before_owners_gains_the_column_and_owners_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        sqlx::query(
            "CREATE TABLE bear_runs (id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL,
             control TEXT, created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL,
             heartbeat_ms BIGINT NOT NULL)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let store = Arc::new(SqlStore::open(&path, false).await.unwrap());
    // Migrated too: a database from before migrations gets every one.
    let latest: Vec<i64> = (1..=bear_agents::store::schema::latest_version()).collect();
    assert_eq!(store.applied_migrations().await.unwrap(), latest);
    let engine = engine_with(store.clone(), &Log::default(), fast_config());
    let w = workflow(json!({"name": "owned", "steps": [
        {"id": "a", "type": "data_processing", "parameters": {"operation": "merge", "values": {}}},
    ]}));
    let h = engine
        .start_as(w, BTreeMap::new(), Some("key-123".into()))
        .await
        .unwrap();
    let id = h.id.clone();
    h.wait().await.unwrap();
    assert_eq!(
        engine.progress(&id).await.unwrap().owner.as_deref(),
        Some("key-123")
    );
}

/// The `@workflows` data keys of a keyring made under a key file in `dir`.
pub(crate) fn workflow_keys(dir: &std::path::Path) -> bear_security::FileKeys {
    let key_file = dir.join("master.key");
    bear_security::MasterKey::generate_key_file(&key_file).unwrap();
    let mut ring = bear_security::Keyring::create(
        &dir.join("keyring.json"),
        bear_security::KeySource::KeyFile(key_file),
    )
    .unwrap();
    ring.file_keys("@workflows").unwrap()
}

/// With a key, a run's definition, inputs, outputs and errors are sealed in the database: the
/// file holds none of their words, each value opens only in its own row and column, and
/// without the key nothing of the run is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_texts_are_sealed_in_the_database() {
    const CANARY: &str = "Greenfield Bakeries";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("workflows.db");
    let keys = workflow_keys(dir.path());
    let log = Log::default();
    let store = Arc::new(
        SqlStore::open(&path, false)
            .await
            .unwrap()
            .sealed_with(keys.clone()),
    );
    let engine = engine_with(store.clone(), &log, fast_config());
    let w = workflow(
        json!({"name": "sealed", "inputs": {"client": {}}, "steps": [
        {"id": "a", "type": "data_processing", "parameters": {"operation": "merge", "values": {"party": "{{ inputs.client }}", "note": "IBAN DE89370400440532013000"}}},
        {"id": "b", "type": "data_processing", "parameters": {"operation": "select", "value": "{{ steps.a.output }}", "pointer": "/missing"}},
    ], "on_failure": "continue"}),
    );
    let inputs = BTreeMap::from([("client".to_string(), json!(CANARY))]);
    let h = engine.start(w, inputs).await.unwrap();
    let id = h.id.clone();
    h.wait().await.unwrap();
    let p = engine.progress(&id).await.unwrap();
    assert_eq!(p.results["a"]["party"], CANARY);
    let failed = p.steps.iter().find(|s| s.id.as_str() == "b").unwrap();
    assert!(failed.error.is_some(), "{p:?}");
    store.close().await;

    // No canary in the database's files, raw or UTF-16; every text column is sealed.
    for file in std::fs::read_dir(dir.path()).unwrap() {
        // SQLite may remove its -wal/-shm files as the last connection ends, after the
        // listing: a file gone is one that holds nothing.
        let bytes = match std::fs::read(file.unwrap().path()) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{e}"),
        };
        for needle in [CANARY, "DE89370400440532013000", "IBAN"] {
            let utf16: Vec<u8> = needle.encode_utf16().flat_map(u16::to_le_bytes).collect();
            assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()));
            assert!(!bytes.windows(utf16.len()).any(|w| w == utf16));
        }
    }
    let raw = sqlx::SqlitePool::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    let texts: Vec<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT output, error FROM bear_steps ORDER BY step_id")
            .fetch_all(&raw)
            .await
            .unwrap();
    let (a_output, b_error) = (texts[0].0.clone().unwrap(), texts[1].1.clone().unwrap());
    assert!(a_output.starts_with("bearseg1:") && b_error.starts_with("bearseg1:"));

    // Reopened with the key: the same run. Without it: refused, naming the database.
    let sealed = SqlStore::open(&path, false)
        .await
        .unwrap()
        .sealed_with(keys.clone());
    let again = sealed.load_run(&id).await.unwrap().unwrap();
    assert_eq!(again.inputs["client"], CANARY);
    let plain = SqlStore::open(&path, false).await.unwrap();
    let err = plain.load_run(&id).await.unwrap_err();
    assert_eq!(err.kind(), bear_core::ErrorKind::Security, "{err}");
    assert!(err.to_string().contains("workflow database"), "{err}");

    // A value moved to another row fails to open, rather than being read as that row's.
    sqlx::query("UPDATE bear_steps SET error = $1 WHERE step_id = 'a'")
        .bind(&b_error)
        .execute(&raw)
        .await
        .unwrap();
    let err = sealed.load_run(&id).await.unwrap_err();
    assert_eq!(err.kind(), bear_core::ErrorKind::Security, "{err}");
    assert!(!err.to_string().contains(CANARY));
}

/// Runs stored before sealing are sealed in place by `seal_plain_values` (what `bear migrate`
/// calls), which a second call finds nothing left to do for; they load as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_stored_in_the_clear_are_sealed_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("workflows.db");
    let keys = workflow_keys(dir.path());
    let log = Log::default();
    let plain = Arc::new(SqlStore::open(&path, false).await.unwrap());
    let engine = engine_with(plain.clone(), &log, fast_config());
    let w = workflow(json!({"name": "old", "inputs": {"client": {}}, "steps": [
        {"id": "a", "type": "data_processing", "parameters": {"operation": "merge", "values": {"party": "{{ inputs.client }}"}}},
    ]}));
    let inputs = BTreeMap::from([("client".to_string(), json!("Greenfield Bakeries"))]);
    let h = engine.start(w, inputs).await.unwrap();
    let id = h.id.clone();
    h.wait().await.unwrap();
    let before = plain.load_run(&id).await.unwrap().unwrap();
    plain.close().await;

    let sealed = SqlStore::open(&path, false)
        .await
        .unwrap()
        .sealed_with(keys);
    assert_eq!(sealed.seal_plain_values().await.unwrap(), 3);
    assert_eq!(sealed.seal_plain_values().await.unwrap(), 0);
    let after = sealed.load_run(&id).await.unwrap().unwrap();
    assert_eq!(after.inputs, before.inputs);
    assert_eq!(after.steps, before.steps);
    sealed.close().await;
    let raw = sqlx::SqlitePool::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    let (inputs, output): (String, String) = sqlx::query_as(
        "SELECT d.inputs, s.output FROM bear_run_definitions d JOIN bear_steps s USING (run_id)",
    )
    .fetch_one(&raw)
    .await
    .unwrap();
    assert!(inputs.starts_with("bearseg1:") && output.starts_with("bearseg1:"));
    assert!(!inputs.contains("Greenfield") && !output.contains("Greenfield"));
}
