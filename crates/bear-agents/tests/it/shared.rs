//! Runs shared by several instances: migrations on both databases, leases claimed by exactly
//! one of many instances, a run finished by another instance when its own dies, and control
//! requests that reach the owning instance at once (LISTEN/NOTIFY). Against a real PostgreSQL
//! server started by the test (`pg.rs`) and SQLite files.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bear_agents::store::schema;
use bear_agents::{Dialect, Engine, EngineConfig, SqlStore};
use bear_core::{ErrorKind, Event, RunStatus, StepStatus, WorkflowStateStore};
use serde_json::json;

use crate::pg::Postgres;
use crate::{Log, engine_with, fast_config, workflow};

fn config(instance: &str) -> EngineConfig {
    EngineConfig {
        instance: instance.into(),
        ..fast_config()
    }
}

/// A run that is created and then left as a dead instance leaves it: lease lapsed at once.
async fn orphan(store: &SqlStore, engine: &Engine) -> bear_core::RunId {
    let w = workflow(json!({"name": "orphan", "steps": [
        {"id": "a", "type": "tool_execution", "parameters": {"tool": "echo", "input": {}}},
    ]}));
    let h = engine.start(w, BTreeMap::new()).await.unwrap();
    let id = h.id.clone();
    h.wait().await.unwrap();
    let mut record = store.load_run(&id).await.unwrap().unwrap();
    record.status = RunStatus::Running;
    store.save_run(&record).await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_bring_sqlite_and_postgres_to_the_latest_schema() {
    let latest: Vec<i64> = (1..=schema::latest_version()).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.db");
    let lite = SqlStore::open(&path, false).await.unwrap();
    assert_eq!(lite.dialect(), Dialect::Sqlite);
    assert_eq!(lite.applied_migrations().await.unwrap(), latest);
    lite.close().await;
    // Opening again applies nothing twice.
    let lite = SqlStore::open(&path, false).await.unwrap();
    assert_eq!(lite.applied_migrations().await.unwrap(), latest);

    let pg = Postgres::start().unwrap();
    let url = pg.create_database("migrations").unwrap();
    // Three instances starting together: the migrator's lock makes them take turns.
    let (a, b, c) = tokio::join!(
        SqlStore::connect(&url),
        SqlStore::connect(&url),
        SqlStore::connect(&url)
    );
    for store in [a.unwrap(), b.unwrap(), c.unwrap()] {
        assert_eq!(store.dialect(), Dialect::Postgres);
        assert_eq!(store.applied_migrations().await.unwrap(), latest);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_a_configuration_error_without_the_password() {
    let pg = Postgres::start().unwrap();
    let url = pg.url();
    pg.kill();
    let e = SqlStore::connect(&url).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    let message = e.to_string();
    assert!(message.contains("127.0.0.1"), "{message}");
    assert!(message.contains("database_url"), "{message}");
    assert!(!message.contains(pg.password()), "{message}");
}

/// Of 32 instances claiming one interrupted run at once, exactly one gets it; the same for a
/// direct claim of a run nobody holds.
async fn one_claim_wins(store: Arc<SqlStore>) {
    let log = Log::default();
    let engine = engine_with(store.clone(), &log, config("starter"));
    let id = orphan(&store, &engine).await;
    let lease = Duration::from_secs(30);
    let claims = (0..32).map(|i| {
        let store = store.clone();
        tokio::spawn(async move { store.claim_interrupted(&format!("i{i}"), lease).await })
    });
    let won: Vec<_> = futures::future::join_all(claims)
        .await
        .into_iter()
        .filter_map(|r| r.unwrap().unwrap())
        .collect();
    assert_eq!(
        won,
        std::slice::from_ref(&id),
        "exactly one instance takes the run over"
    );
    let record = store.load_run(&id).await.unwrap().unwrap();
    assert!(record.leased);
    // Held: nobody else claims it, directly or as interrupted.
    assert!(!store.claim(&id, "other", lease).await.unwrap());
    assert_eq!(store.claim_interrupted("other", lease).await.unwrap(), None);

    let id2 = orphan(&store, &engine).await;
    let claims = (0..32).map(|i| {
        let (store, id2) = (store.clone(), id2.clone());
        tokio::spawn(async move { store.claim(&id2, &format!("j{i}"), lease).await })
    });
    let granted = futures::future::join_all(claims)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap().as_ref().unwrap())
        .count();
    assert_eq!(granted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_many_instances_claiming_a_run_exactly_one_gets_it() {
    let pg = Postgres::start().unwrap();
    let url = pg.create_database("claims").unwrap();
    one_claim_wins(Arc::new(SqlStore::connect(&url).await.unwrap())).await;
    let dir = tempfile::tempdir().unwrap();
    let lite = SqlStore::open(&dir.path().join("runs.db"), false)
        .await
        .unwrap();
    one_claim_wins(Arc::new(lite)).await;
}

/// Waits (at most a minute) for `status` of `run` on `engine`'s bus.
async fn status_event(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    run: &bear_core::RunId,
    status: RunStatus,
) {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(Event::RunChanged {
                run: r, status: s, ..
            }) = events.recv().await
                && &r == run
                && s == status
            {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {status:?} event for the run"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_instance_dies_is_finished_by_another_without_repeating_steps() {
    let pg = Postgres::start().unwrap();
    let url = pg.create_database("takeover").unwrap();
    let log = Log::default();
    let a = engine_with(
        Arc::new(SqlStore::connect(&url).await.unwrap()),
        &log,
        config("a"),
    );
    let b = engine_with(
        Arc::new(SqlStore::connect(&url).await.unwrap()),
        &log,
        config("b"),
    );
    let mut b_events = b.bus().subscribe();
    let w = workflow(json!({"name": "takeover", "steps": [
        {"id": "first", "type": "tool_execution", "parameters": {"tool": "echo", "input": {"id": "first"}}},
        {"id": "wait", "type": "tool_execution", "depends_on": ["first"], "parameters": {"tool": "sleep", "input": {"ms": 1500}}},
        {"id": "last", "type": "tool_execution", "depends_on": ["wait"], "parameters": {"tool": "echo", "input": {"id": "last"}}},
    ]}));
    let mut a_events = a.bus().subscribe();
    let h = a.start(w, BTreeMap::new()).await.unwrap();
    let id = h.id.clone();
    // Once `first` completed on a, a dies while `wait` runs.
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(Event::StepChanged {
                step,
                status: StepStatus::Completed,
                ..
            }) = a_events.recv().await
                && step.as_str() == "first"
            {
                return;
            }
        }
    })
    .await
    .unwrap();
    h.abandon();
    // b looks for runs whose lease lapsed, as a server does, and finishes this one.
    let _takeover = b.spawn_takeover();
    status_event(&mut b_events, &id, RunStatus::Completed).await;
    let ran = log.items();
    let count = |what: &str| ran.iter().filter(|l| *l == what).count();
    assert_eq!(
        count("start first"),
        1,
        "the completed step is not run again"
    );
    assert_eq!(count("start last"), 1);
    let p = b.progress(&id).await.unwrap();
    assert_eq!(p.status, RunStatus::Completed);
    let last = p.steps.iter().find(|s| s.id.as_str() == "last").unwrap();
    assert_eq!(last.status, StepStatus::Completed);
    assert!(!p.interrupted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_cancel_reach_the_owning_instance_at_once() {
    let pg = Postgres::start().unwrap();
    let url = pg.create_database("control").unwrap();
    let log = Log::default();
    // a polls for requests only once a minute: what reaches it sooner came by NOTIFY.
    let slow = EngineConfig {
        tick: Duration::from_secs(60),
        stale_after: Duration::from_secs(120),
        ..config("a")
    };
    let a = engine_with(Arc::new(SqlStore::connect(&url).await.unwrap()), &log, slow);
    let b = engine_with(
        Arc::new(SqlStore::connect(&url).await.unwrap()),
        &log,
        config("b"),
    );
    let w = workflow(json!({"name": "control", "steps": [
        {"id": "wait", "type": "tool_execution", "parameters": {"tool": "sleep", "input": {"ms": 600000}}},
    ]}));
    let mut events = a.bus().subscribe();
    let h = a.start(w, BTreeMap::new()).await.unwrap();
    let id = h.id.clone();
    status_event(&mut events, &id, RunStatus::Running).await;
    let asked = std::time::Instant::now();
    b.pause(&id).await.unwrap();
    status_event(&mut events, &id, RunStatus::Paused).await;
    b.cancel(&id).await.unwrap();
    assert_eq!(h.wait().await.unwrap(), RunStatus::Cancelled);
    assert!(
        asked.elapsed() < Duration::from_secs(30),
        "the requests came by notification, not by a's once-a-minute poll"
    );
    assert_eq!(b.progress(&id).await.unwrap().status, RunStatus::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_with_another_keyring_is_refused() {
    let pg = Postgres::start().unwrap();
    let url = pg.create_database("keyrings").unwrap();
    let (one, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let keys = crate::persistence::workflow_keys(one.path());
    let first = SqlStore::connect(&url)
        .await
        .unwrap()
        .sealed_with(keys.clone());
    first.verify_keys().await.unwrap();
    // The same keyring again: accepted.
    let same = SqlStore::connect(&url).await.unwrap().sealed_with(keys);
    same.verify_keys().await.unwrap();
    let stranger = SqlStore::connect(&url)
        .await
        .unwrap()
        .sealed_with(crate::persistence::workflow_keys(other.path()));
    let e = stranger.verify_keys().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Security);
    assert!(e.to_string().contains("same keyring"), "{e}");
}

/// The database goes away mid-run: the run's writes fail and its driver stops, nothing is
/// half-written; once the database is back, the run is claimed again and finished, its
/// completed step kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_outlives_the_database_restarting() {
    let pg = Postgres::start().unwrap();
    let url = pg.create_database("restart").unwrap();
    let log = Log::default();
    let a = engine_with(
        Arc::new(SqlStore::connect(&url).await.unwrap()),
        &log,
        config("a"),
    );
    let mut events = a.bus().subscribe();
    let w = workflow(json!({"name": "restart", "steps": [
        {"id": "first", "type": "tool_execution", "parameters": {"tool": "echo", "input": {"id": "first"}}},
        {"id": "wait", "type": "tool_execution", "depends_on": ["first"], "parameters": {"tool": "sleep", "input": {"ms": 1500}}},
        {"id": "last", "type": "tool_execution", "depends_on": ["wait"], "parameters": {"tool": "echo", "input": {"id": "last"}}},
    ]}));
    let h = a.start(w, BTreeMap::new()).await.unwrap();
    let id = h.id.clone();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(Event::StepChanged {
                step,
                status: StepStatus::Running,
                ..
            }) = events.recv().await
                && step.as_str() == "wait"
            {
                return;
            }
        }
    })
    .await
    .unwrap();
    pg.kill();
    let e = h.wait().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    pg.restart().unwrap();
    let _takeover = a.spawn_takeover();
    status_event(&mut events, &id, RunStatus::Completed).await;
    let ran = log.items();
    assert_eq!(ran.iter().filter(|l| *l == "start first").count(), 1);
    assert_eq!(ran.iter().filter(|l| *l == "start last").count(), 1);
}

/// An instance that stalls past its lease finds the run taken at its next renewal and stops
/// driving it, writing nothing more: the new owner's state is left as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_lease_was_taken_stops_writing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqlStore::open(&dir.path().join("runs.db"), false)
            .await
            .unwrap(),
    );
    // Renewals a second apart on a lease of 50 ms: the lease lapses between them.
    let stalling = EngineConfig {
        tick: Duration::from_secs(1),
        stale_after: Duration::from_millis(50),
        ..config("a")
    };
    let a = engine_with(store.clone(), &Log::default(), stalling);
    let mut events = a.bus().subscribe();
    let w = workflow(json!({"name": "stall", "steps": [
        {"id": "wait", "type": "tool_execution", "parameters": {"tool": "sleep", "input": {"ms": 600000}}},
    ]}));
    let h = a.start(w, BTreeMap::new()).await.unwrap();
    let id = h.id.clone();
    status_event(&mut events, &id, RunStatus::Running).await;
    let lease = Duration::from_secs(600);
    let taken = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(run) = store.claim_interrupted("thief", lease).await.unwrap() {
                return run;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the lease lapses");
    assert_eq!(taken, id);
    let e = h.wait().await.unwrap_err();
    assert!(matches!(e, bear_agents::Error::LeaseLost { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    // a wrote nothing after: the step it was running is as a left it, the lease the thief's.
    let record = store.load_run(&id).await.unwrap().unwrap();
    assert_eq!(record.status, RunStatus::Running);
    assert!(record.leased);
    assert!(!store.claim(&id, "a", lease).await.unwrap());
}
