//! Run persistence: [`SqlStore`] (sqlx: a SQLite file by default, or a PostgreSQL database that
//! several instances share) and [`MemoryStore`] (in-process, for embedding BEAR where runs need
//! not outlive the process).
//!
//! The schema (`migrations/`, run by sqlx's migrator on either database) is three tables,
//! `bear_runs`, `bear_run_definitions` and `bear_steps`, written in SQL both engines accept;
//! the statements go through sqlx's `Any` driver, so one code path serves both. Where the two
//! differ ([`Dialect`]): the database's clock, and `FOR UPDATE SKIP LOCKED` when an instance
//! picks an interrupted run to take over.
//!
//! Durability: SQLite runs in WAL mode. Every method is one transaction, so after a crash
//! either all of a write is visible or none of it. With `fsync = false` (the default) a commit
//! survives a crash of BEAR itself (kill -9) but may be lost, never corrupted, by a power cut;
//! `fsync = true` flushes every commit. PostgreSQL commits durably.

mod columns;
mod memory;
mod notify;
pub mod schema;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bear_core::{
    Error as CoreError, ErrorKind, RunControl, RunId, RunRecord, RunStatus, StepId, StepRecord,
    StepStatus, WorkflowStateStore,
};
use bear_security::FileKeys;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};

use crate::error::{Error, Result};
use columns::{Columns, SEALED, column};
pub use memory::MemoryStore;

/// Runs with their definitions, for loading; `{now}` is the dialect's clock.
const SELECT_RUNS: &str = "SELECT r.id, r.name, r.status, r.created_ms, r.updated_ms,
        r.heartbeat_ms, r.owner, d.definition, d.inputs,
        CAST(CASE WHEN r.lease_until_ms > {now} THEN 1 ELSE 0 END AS BIGINT) AS leased
    FROM bear_runs r JOIN bear_run_definitions d ON d.run_id = r.id";

/// The columns of `bear_steps`, in the order rows are inserted.
const STEP_COLUMNS: &str = "run_id, step_id, status, attempts, idempotency_key, output, error, \
                            agent, started_ms, finished_ms, updated_ms";

/// The plain text of the key check value.
const KEYCHECK: &str = "bear workflow keyring check";

/// Rows per multi-row insert: 500 x 11 parameters stay under both engines' limits.
const ROWS_PER_INSERT: usize = 500;

fn storage(message: impl Into<String>) -> CoreError {
    CoreError::backend(ErrorKind::Storage, message)
}

/// A database error as bear-core's: a lost connection is `Unavailable` (retry later), the
/// rest `Storage`. sqlx's messages name SQL and addresses, never bound values or passwords.
fn db(e: sqlx::Error) -> CoreError {
    let kind = match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => ErrorKind::Unavailable,
        _ => ErrorKind::Storage,
    };
    CoreError::backend(kind, format!("workflow database: {e}"))
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn unms(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
}

/// Where SQLite and PostgreSQL differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// A SQLite file: one writer at a time, so a plain `UPDATE` is already exclusive.
    Sqlite,
    /// A PostgreSQL server shared by several instances.
    Postgres,
}

impl Dialect {
    /// Unix milliseconds on the database's clock, as SQL: leases are measured on one clock
    /// however far the instances' clocks drift.
    fn now_ms(self) -> &'static str {
        match self {
            Self::Sqlite => "CAST(unixepoch('subsec') * 1000 AS BIGINT)",
            Self::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    /// Row locking for the pick of an interrupted run: a row another instance is claiming is
    /// passed over rather than waited for.
    fn skip_locked(self) -> &'static str {
        match self {
            Self::Sqlite => "",
            Self::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// `sql` with `{now}` replaced by the clock.
    fn sql(self, sql: &str) -> String {
        sql.replace("{now}", self.now_ms())
    }
}

/// Runs kept in a SQL database through sqlx.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
    seal: Columns,
    notices: Option<Arc<notify::Notices>>,
}

impl SqlStore {
    /// Opens (creating if needed) the SQLite database at `path` and brings its schema up to
    /// date. The file is created readable by its owner only.
    pub async fn open(path: &Path, fsync: bool) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                Error::Database(format!(
                    "cannot create the folder {}: {}",
                    parent.display(),
                    e.kind()
                ))
            })?;
        }
        if !path.exists() {
            create_private(path)?;
        }
        let url = sqlite_url(path)?;
        let synchronous = if fsync { "FULL" } else { "NORMAL" };
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    let pragmas = format!(
                        "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                         PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON;"
                    );
                    conn.execute(pragmas.as_str()).await.map(drop)
                })
            })
            .connect(&url)
            .await
            .map_err(|e| Error::Database(format!("cannot open {}: {e}", path.display())))?;
        Self::migrated(pool, Dialect::Sqlite, None).await
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://user:password@host:port/db`),
    /// brings its schema up to date (instances starting together take turns: the migrator
    /// holds an advisory lock) and listens for control requests. An unreachable server is a
    /// configuration error naming the host, never the password.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let place = describe_url(url);
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| Error::Unreachable {
                what: format!("the PostgreSQL database at {place}"),
                reason: e.to_string(),
            })?;
        let notices = notify::Notices::listen(url).await?;
        Self::migrated(pool, Dialect::Postgres, Some(Arc::new(notices))).await
    }

    async fn migrated(
        pool: AnyPool,
        dialect: Dialect,
        notices: Option<Arc<notify::Notices>>,
    ) -> Result<Self> {
        let migrator = schema::migrator().await.map_err(migrate)?;
        migrator.run(&pool).await.map_err(migrate)?;
        // Databases made before runs had owners gain the column (SQL both engines accept).
        if sqlx::query("SELECT owner FROM bear_runs LIMIT 1")
            .fetch_optional(&pool)
            .await
            .is_err()
        {
            sqlx::query("ALTER TABLE bear_runs ADD COLUMN owner TEXT")
                .execute(&pool)
                .await?;
        }
        Ok(Self {
            pool,
            dialect,
            seal: Columns::default(),
            notices,
        })
    }

    /// Which database this is.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The schema versions applied to the database, oldest first.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> =
            sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(v,)| v).collect())
    }

    /// Seals run definitions, inputs, step outputs and errors under `keys` from now on (values
    /// already stored sealed need them to be read).
    pub fn sealed_with(mut self, keys: FileKeys) -> Self {
        self.seal = Columns(Some(keys));
        self
    }

    /// Checks that this store's keys are those the database's runs are sealed under: the
    /// first sealed instance leaves a sealed check value, which every later one must open.
    /// Refused with what to do when it cannot (another keyring); nothing to do without keys.
    pub async fn verify_keys(&self) -> Result<()> {
        if self.seal.0.is_none() {
            return Ok(());
        }
        let name = "workflow/keycheck";
        let value = self.seal.seal(name, KEYCHECK.into())?;
        sqlx::query(
            "INSERT INTO bear_keycheck (id, sealed) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(value)
        .execute(&self.pool)
        .await?;
        let (stored,): (String,) = sqlx::query_as("SELECT sealed FROM bear_keycheck WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        match self.seal.open(name, stored) {
            Ok(plain) if plain == KEYCHECK => Ok(()),
            _ => Err(Error::OtherKeyring),
        }
    }

    /// Seals every run text stored before sealing (values without the sealed prefix), row by
    /// row, each in its own transaction: a kill loses nothing and a re-run goes on. The number
    /// of values sealed; nothing to do without keys.
    pub async fn seal_plain_values(&self) -> Result<u64> {
        if self.seal.0.is_none() {
            return Ok(0);
        }
        let like = format!("{SEALED}%");
        let runs: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT run_id, definition, inputs FROM bear_run_definitions
             WHERE definition NOT LIKE $1 OR inputs NOT LIKE $1",
        )
        .bind(&like)
        .fetch_all(&self.pool)
        .await?;
        let mut sealed = 0;
        for (run, definition, inputs) in runs {
            let def = self.seal_again(&column(&run, None, "definition"), definition)?;
            let inp = self.seal_again(&column(&run, None, "inputs"), inputs)?;
            sqlx::query(
                "UPDATE bear_run_definitions SET definition = $1, inputs = $2 WHERE run_id = $3",
            )
            .bind(def)
            .bind(inp)
            .bind(&run)
            .execute(&self.pool)
            .await?;
            sealed += 2;
        }
        let steps: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT run_id, step_id, output, error FROM bear_steps
             WHERE output NOT LIKE $1 OR error NOT LIKE $1",
        )
        .bind(&like)
        .fetch_all(&self.pool)
        .await?;
        for (run, step, output, error) in steps {
            let at = |c: &str| column(&run, Some(&step), c);
            let out = output
                .map(|o| self.seal_again(&at("output"), o))
                .transpose()?;
            let err = error
                .map(|e| self.seal_again(&at("error"), e))
                .transpose()?;
            sqlx::query(
                "UPDATE bear_steps SET output = $1, error = $2 WHERE run_id = $3 AND step_id = $4",
            )
            .bind(out)
            .bind(err)
            .bind(&run)
            .bind(&step)
            .execute(&self.pool)
            .await?;
            sealed += 1;
        }
        Ok(sealed)
    }

    /// `value` sealed as `name`, unless it already is.
    fn seal_again(&self, name: &str, value: String) -> Result<String> {
        if value.starts_with(SEALED) {
            return Ok(value);
        }
        Ok(self.seal.seal(name, value)?)
    }

    /// Closes the pool, waiting for open connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn steps_of(&self, run: &str) -> Result<BTreeMap<StepId, StepRecord>, CoreError> {
        let rows = sqlx::query(
            "SELECT step_id, status, attempts, idempotency_key, output, error, agent,
                    started_ms, finished_ms, updated_ms
             FROM bear_steps WHERE run_id = $1",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut steps = BTreeMap::new();
        for row in rows {
            let id: String = row.try_get("step_id").map_err(db)?;
            let record = self.step_from_row(run, &id, &row)?;
            steps.insert(StepId::new(id)?, record);
        }
        Ok(steps)
    }

    fn step_from_row(&self, run: &str, id: &str, row: &AnyRow) -> Result<StepRecord, CoreError> {
        let status: String = row.try_get("status").map_err(db)?;
        let at = |c: &str| column(run, Some(id), c);
        let output = self
            .seal
            .open_opt(&at("output"), row.try_get("output").map_err(db)?)?;
        let error = self
            .seal
            .open_opt(&at("error"), row.try_get("error").map_err(db)?)?;
        let agent: Option<String> = row.try_get("agent").map_err(db)?;
        let time = |c: &str| -> Result<Option<u64>, CoreError> {
            Ok(row.try_get::<Option<i64>, _>(c).map_err(db)?.map(unms))
        };
        Ok(StepRecord {
            status: StepStatus::parse(&status)
                .ok_or_else(|| storage("workflow database: unknown step status"))?,
            attempts: u32::try_from(row.try_get::<i64, _>("attempts").map_err(db)?).unwrap_or(0),
            idempotency_key: row.try_get("idempotency_key").map_err(db)?,
            output: output
                .map(|o| serde_json::from_str(&o))
                .transpose()
                .map_err(|_| storage("workflow database: a step output is not JSON"))?,
            error,
            updated_ms: unms(row.try_get("updated_ms").map_err(db)?),
            agent: agent.map(bear_core::AgentId::new).transpose()?,
            started_ms: time("started_ms")?,
            finished_ms: time("finished_ms")?,
        })
    }

    fn run_from_row(
        &self,
        row: &AnyRow,
        steps: BTreeMap<StepId, StepRecord>,
    ) -> Result<RunRecord, CoreError> {
        let id: String = row.try_get("id").map_err(db)?;
        let status: String = row.try_get("status").map_err(db)?;
        let definition = self.seal.open(
            &column(&id, None, "definition"),
            row.try_get("definition").map_err(db)?,
        )?;
        let inputs = self.seal.open(
            &column(&id, None, "inputs"),
            row.try_get("inputs").map_err(db)?,
        )?;
        let json = |s: &str| {
            serde_json::from_str(s).map_err(|_| storage("workflow database: a run is not JSON"))
        };
        Ok(RunRecord {
            id: RunId::new(id)?,
            name: row.try_get("name").map_err(db)?,
            definition: json(&definition)?,
            inputs: json(&inputs)?,
            status: RunStatus::parse(&status)
                .ok_or_else(|| storage("workflow database: unknown run status"))?,
            steps,
            created_ms: unms(row.try_get("created_ms").map_err(db)?),
            updated_ms: unms(row.try_get("updated_ms").map_err(db)?),
            heartbeat_ms: unms(row.try_get("heartbeat_ms").map_err(db)?),
            leased: row.try_get::<i64, _>("leased").map_err(db)? == 1,
            owner: row.try_get("owner").map_err(db)?,
        })
    }

    /// Writes a whole run in `tx`: the run row, its definition and all its steps.
    async fn write_run(
        &self,
        tx: &mut Transaction<'_, Any>,
        run: &RunRecord,
    ) -> Result<(), CoreError> {
        let json = |v: &serde_json::Value| {
            serde_json::to_string(v).map_err(|_| storage("a run cannot be stored as JSON"))
        };
        sqlx::query(
            "INSERT INTO bear_runs (id, name, status, control, created_ms, updated_ms,
                                    heartbeat_ms, owner)
             VALUES ($1, $2, $3, NULL, $4, $5, $6, $7)
             ON CONFLICT (id) DO UPDATE SET
                name = excluded.name, status = excluded.status,
                updated_ms = excluded.updated_ms, heartbeat_ms = excluded.heartbeat_ms,
                owner = excluded.owner",
        )
        .bind(run.id.as_str())
        .bind(&run.name)
        .bind(run.status.as_str())
        .bind(ms(run.created_ms))
        .bind(ms(run.updated_ms))
        .bind(ms(run.heartbeat_ms))
        .bind(run.owner.as_deref())
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        let id = run.id.as_str();
        sqlx::query(
            "INSERT INTO bear_run_definitions (run_id, definition, inputs) VALUES ($1, $2, $3)
             ON CONFLICT (run_id) DO UPDATE SET
                definition = excluded.definition, inputs = excluded.inputs",
        )
        .bind(id)
        .bind(
            self.seal
                .seal(&column(id, None, "definition"), json(&run.definition)?)?,
        )
        .bind(
            self.seal
                .seal(&column(id, None, "inputs"), json(&run.inputs)?)?,
        )
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        sqlx::query("DELETE FROM bear_steps WHERE run_id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        // Many rows per statement: a 10,000-step run is saved in 20 round trips, not 10,000.
        let steps: Vec<(&StepId, &StepRecord)> = run.steps.iter().collect();
        for chunk in steps.chunks(ROWS_PER_INSERT) {
            insert_steps(tx, &self.seal, id, chunk).await?;
        }
        Ok(())
    }

    /// Takes the lease on `run` for `instance` in `tx` (see [`WorkflowStateStore::claim`]).
    async fn claim_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        run: &str,
        instance: &str,
        lease: Duration,
    ) -> Result<bool, CoreError> {
        let sql = self.dialect.sql(
            "UPDATE bear_runs SET lease_owner = $1, lease_until_ms = {now} + $2,
                heartbeat_ms = {now}
             WHERE id = $3 AND status IN ('pending', 'running', 'paused')
               AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until_ms IS NULL
                    OR lease_until_ms <= {now})",
        );
        let done = sqlx::query(&sql)
            .bind(instance)
            .bind(lease_ms(lease))
            .bind(run)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }
}

/// The sqlx URL of the SQLite file at `path` (percent-encoded, created when missing).
fn sqlite_url(path: &Path) -> Result<String> {
    let absolute = std::path::absolute(path)
        .map_err(|e| Error::Database(format!("cannot resolve {}: {}", path.display(), e.kind())))?;
    let url = url::Url::from_file_path(&absolute)
        .map_err(|()| Error::Database(format!("{} is not a file path", path.display())))?;
    Ok(format!("sqlite://{}?mode=rwc", url.path()))
}

/// `url` without its user and password: scheme, host, port and database.
pub fn describe_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}:{}{}",
            u.scheme(),
            u.host_str().unwrap_or("localhost"),
            u.port().unwrap_or(5432),
            u.path()
        ),
        Err(_) => "(a database URL that does not parse)".into(),
    }
}

fn migrate(e: sqlx::migrate::MigrateError) -> Error {
    Error::Database(format!("cannot bring the schema up to date: {e}"))
}

#[cfg(unix)]
fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .or_else(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(|e| Error::Database(format!("cannot create {}: {}", path.display(), e.kind())))
}

#[cfg(not(unix))]
fn create_private(_path: &Path) -> Result<()> {
    Ok(())
}

/// A step's output and error as stored: JSON text and text, sealed by `seal`, or NULL.
fn step_texts(
    seal: &Columns,
    run: &str,
    step: &str,
    r: &StepRecord,
) -> Result<(Option<String>, Option<String>), CoreError> {
    let output = r
        .output
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|_| storage("a step output cannot be stored as JSON"))?;
    Ok((
        seal.seal_opt(&column(run, Some(step), "output"), output)?,
        seal.seal_opt(&column(run, Some(step), "error"), r.error.clone())?,
    ))
}

/// `VALUES ($1, ..., $11), ($12, ...)` for `rows` rows of `STEP_COLUMNS` (numbered
/// placeholders, which both engines read).
fn step_values(rows: usize) -> String {
    let width = STEP_COLUMNS.split(',').count();
    let row = |r: usize| {
        let cells: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
        format!("({})", cells.join(", "))
    };
    let all: Vec<String> = (0..rows).map(row).collect();
    format!("VALUES {}", all.join(", "))
}

/// Inserts `steps` of `run` in one statement.
async fn insert_steps(
    tx: &mut Transaction<'_, Any>,
    seal: &Columns,
    run: &str,
    steps: &[(&StepId, &StepRecord)],
) -> Result<(), CoreError> {
    let sql = format!(
        "INSERT INTO bear_steps ({STEP_COLUMNS}) {}",
        step_values(steps.len())
    );
    let mut q = sqlx::query(&sql);
    for (id, r) in steps {
        let (output, error) = step_texts(seal, run, id.as_str(), r)?;
        q = bind_step(q, run, id.as_str(), r, output, error);
    }
    q.execute(&mut **tx).await.map_err(db)?;
    Ok(())
}

type Query<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;

/// Binds one step row's values in `STEP_COLUMNS` order.
fn bind_step<'q>(
    q: Query<'q>,
    run: &'q str,
    step: &'q str,
    r: &'q StepRecord,
    output: Option<String>,
    error: Option<String>,
) -> Query<'q> {
    q.bind(run)
        .bind(step)
        .bind(r.status.as_str())
        .bind(i64::from(r.attempts))
        .bind(r.idempotency_key.as_str())
        .bind(output)
        .bind(error)
        .bind(r.agent.as_ref().map(|a| a.as_str()))
        .bind(r.started_ms.map(ms))
        .bind(r.finished_ms.map(ms))
        .bind(ms(r.updated_ms))
}

async fn upsert_step(
    tx: &mut Transaction<'_, Any>,
    seal: &Columns,
    run: &str,
    step: &str,
    r: &StepRecord,
) -> Result<(), CoreError> {
    let (output, error) = step_texts(seal, run, step, r)?;
    let sql = format!(
        "INSERT INTO bear_steps ({STEP_COLUMNS}) {}
         ON CONFLICT (run_id, step_id) DO UPDATE SET
            status = excluded.status, attempts = excluded.attempts,
            idempotency_key = excluded.idempotency_key, output = excluded.output,
            error = excluded.error, agent = excluded.agent, started_ms = excluded.started_ms,
            finished_ms = excluded.finished_ms, updated_ms = excluded.updated_ms",
        step_values(1)
    );
    bind_step(sqlx::query(&sql), run, step, r, output, error)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(())
}

#[async_trait::async_trait]
impl WorkflowStateStore for SqlStore {
    async fn save_run(&self, run: &RunRecord) -> bear_core::Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        self.write_run(&mut tx, run).await?;
        tx.commit().await.map_err(db)
    }

    async fn create_run(
        &self,
        run: &RunRecord,
        instance: &str,
        lease: Duration,
    ) -> bear_core::Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        self.write_run(&mut tx, run).await?;
        self.claim_in(&mut tx, run.id.as_str(), instance, lease)
            .await?;
        tx.commit().await.map_err(db)
    }

    async fn claim(&self, run: &RunId, instance: &str, lease: Duration) -> bear_core::Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let claimed = self
            .claim_in(&mut tx, run.as_str(), instance, lease)
            .await?;
        tx.commit().await.map_err(db)?;
        Ok(claimed)
    }

    async fn claim_interrupted(
        &self,
        instance: &str,
        lease: Duration,
    ) -> bear_core::Result<Option<RunId>> {
        let sql = self.dialect.sql(&format!(
            "UPDATE bear_runs SET lease_owner = $1, lease_until_ms = {{now}} + $2,
                heartbeat_ms = {{now}}
             WHERE id = (SELECT id FROM bear_runs
                         WHERE status IN ('pending', 'running')
                           AND (lease_until_ms IS NULL OR lease_until_ms <= {{now}})
                         ORDER BY created_ms LIMIT 1{})
             RETURNING id",
            self.dialect.skip_locked()
        ));
        let row: Option<(String,)> = sqlx::query_as(&sql)
            .bind(instance)
            .bind(lease_ms(lease))
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|(id,)| RunId::new(id)).transpose()
    }

    async fn release(&self, run: &RunId, instance: &str) -> bear_core::Result<()> {
        sqlx::query(
            "UPDATE bear_runs SET lease_owner = NULL, lease_until_ms = NULL
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(run.as_str())
        .bind(instance)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn control_requested(&self, run: &RunId) {
        match &self.notices {
            Some(n) => n.wait_for(run).await,
            None => std::future::pending().await,
        }
    }

    async fn update_step(
        &self,
        run: &RunId,
        step: &StepId,
        record: &StepRecord,
        run_status: RunStatus,
    ) -> bear_core::Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        upsert_step(&mut tx, &self.seal, run.as_str(), step.as_str(), record).await?;
        sqlx::query("UPDATE bear_runs SET status = $1, updated_ms = $2 WHERE id = $3")
            .bind(run_status.as_str())
            .bind(ms(record.updated_ms))
            .bind(run.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn load_run(&self, run: &RunId) -> bear_core::Result<Option<RunRecord>> {
        let sql = self.dialect.sql(&format!("{SELECT_RUNS} WHERE r.id = $1"));
        let row = sqlx::query(&sql)
            .bind(run.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        match row {
            None => Ok(None),
            Some(row) => {
                let steps = self.steps_of(run.as_str()).await?;
                Ok(Some(self.run_from_row(&row, steps)?))
            }
        }
    }

    async fn list_runs(&self, status: Option<RunStatus>) -> bear_core::Result<Vec<RunRecord>> {
        let rows = match status {
            Some(s) => {
                let sql = format!("{SELECT_RUNS} WHERE r.status = $1 ORDER BY r.created_ms DESC");
                sqlx::query(&self.dialect.sql(&sql))
                    .bind(s.as_str())
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                let sql = format!("{SELECT_RUNS} ORDER BY r.created_ms DESC");
                sqlx::query(&self.dialect.sql(&sql))
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("id").map_err(db)?;
            let steps = self.steps_of(&id).await?;
            out.push(self.run_from_row(&row, steps)?);
        }
        Ok(out)
    }

    async fn set_run_status(&self, run: &RunId, status: RunStatus) -> bear_core::Result<()> {
        sqlx::query("UPDATE bear_runs SET status = $1, updated_ms = $2 WHERE id = $3")
            .bind(status.as_str())
            .bind(ms(crate::now_ms()))
            .bind(run.as_str())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn request_control(&self, run: &RunId, control: RunControl) -> bear_core::Result<()> {
        sqlx::query("UPDATE bear_runs SET control = $1 WHERE id = $2")
            .bind(control.as_str())
            .bind(run.as_str())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        if let Some(n) = &self.notices {
            n.announce(run).await?;
        }
        Ok(())
    }

    async fn take_control(&self, run: &RunId) -> bear_core::Result<Option<RunControl>> {
        // Read, then clear only if unchanged: a request written in between is not lost (it is
        // taken at the next call), and no transaction has to upgrade from read to write.
        let row: Option<(Option<String>,)> =
            sqlx::query_as("SELECT control FROM bear_runs WHERE id = $1")
                .bind(run.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        let Some(c) = row.and_then(|(c,)| c) else {
            return Ok(None);
        };
        let cleared =
            sqlx::query("UPDATE bear_runs SET control = NULL WHERE id = $1 AND control = $2")
                .bind(run.as_str())
                .bind(&c)
                .execute(&self.pool)
                .await
                .map_err(db)?;
        if cleared.rows_affected() == 0 {
            return Ok(None);
        }
        Ok(RunControl::parse(&c))
    }
}
