//! Run persistence: [`SqliteStore`] (sqlx, durable) and [`MemoryStore`] (in-process, for
//! embedding BEAR where runs need not outlive the process).
//!
//! The schema is two tables, `bear_runs` and `bear_steps`, written in SQL that SQLite and
//! PostgreSQL both accept (`$n` parameters, `ON CONFLICT ... DO UPDATE`, `BIGINT` times), so the
//! same statements can serve several servers sharing a PostgreSQL database later.
//!
//! Durability: the database runs in WAL mode. Every method is one transaction, so after a crash
//! either all of a write is visible or none of it. With `fsync = false` (the default) a commit
//! survives a crash of BEAR itself (kill -9) but may be lost, never corrupted, by a power cut;
//! `fsync = true` flushes every commit.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bear_core::{
    Error as CoreError, ErrorKind, RunControl, RunId, RunRecord, RunStatus, StepId, StepRecord,
    StepStatus, WorkflowStateStore,
};
use bear_security::FileKeys;
use bear_security::crypto::segment;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use crate::error::{Error, Result};

/// The schema. Run state and the (possibly large) definition live in separate tables, so the
/// frequent small updates of a run's status and heartbeat never rewrite its definition.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS bear_runs (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        control TEXT,
        created_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        heartbeat_ms BIGINT NOT NULL,
        owner TEXT
    )",
    "CREATE INDEX IF NOT EXISTS bear_runs_status ON bear_runs (status, created_ms)",
    "CREATE TABLE IF NOT EXISTS bear_run_definitions (
        run_id TEXT PRIMARY KEY REFERENCES bear_runs (id) ON DELETE CASCADE,
        definition TEXT NOT NULL,
        inputs TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS bear_steps (
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
    )",
];

/// Runs with their definitions, for loading.
const SELECT_RUNS: &str = "SELECT r.id, r.name, r.status, r.created_ms, r.updated_ms,
        r.heartbeat_ms, r.owner, d.definition, d.inputs
    FROM bear_runs r JOIN bear_run_definitions d ON d.run_id = r.id";

fn storage(message: impl Into<String>) -> CoreError {
    CoreError::backend(ErrorKind::Storage, message)
}

fn db(e: sqlx::Error) -> CoreError {
    storage(format!("workflow database: {e}"))
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn unms(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Runs kept in a SQLite database file through sqlx.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    seal: Columns,
}

/// Column-level sealing: the text of a run's definition and inputs and of each step's output
/// and error is sealed (AES-256-GCM, a segmented sealed message as the matters' files are,
/// base64 in the column), named in its AAD by run, step and column, so a value moved to
/// another row or column fails to open. Ids, names, statuses and times stay clear: the engine
/// queries them. A value written before sealing (no prefix) is read as it is.
#[derive(Debug, Clone, Default)]
struct Columns(Option<FileKeys>);

/// The prefix of a sealed column value.
const SEALED: &str = "bearseg1:";

impl Columns {
    fn seal(&self, name: &str, plain: String) -> Result<String, CoreError> {
        let Some(keys) = &self.0 else {
            return Ok(plain);
        };
        let sealed = segment::seal_file(keys, name, plain.as_bytes())?;
        Ok(format!("{SEALED}{}", BASE64.encode(sealed)))
    }

    fn open(&self, name: &str, stored: String) -> Result<String, CoreError> {
        let Some(body) = stored.strip_prefix(SEALED) else {
            return Ok(stored);
        };
        let what = || format!("workflow database: {name}");
        let damaged = |reason: &str| bear_security::Error::Integrity {
            what: what(),
            reason: reason.into(),
        };
        let keys = self
            .0
            .as_ref()
            .ok_or_else(|| damaged("sealed, and the workflow key is not at hand"))?;
        let sealed = BASE64
            .decode(body)
            .map_err(|_| damaged("not a sealed value"))?;
        let plain = segment::open_file(keys, name, &sealed).map_err(|e| match e {
            bear_security::Error::Integrity { reason, .. } => damaged(&reason),
            other => other,
        })?;
        String::from_utf8(plain).map_err(|_| damaged("not UTF-8 text").into())
    }

    fn seal_opt(&self, name: &str, plain: Option<String>) -> Result<Option<String>, CoreError> {
        plain.map(|p| self.seal(name, p)).transpose()
    }

    fn open_opt(&self, name: &str, stored: Option<String>) -> Result<Option<String>, CoreError> {
        stored.map(|s| self.open(name, s)).transpose()
    }
}

/// A column's name in its sealed value's AAD.
fn column(run: &str, step: Option<&str>, column: &str) -> String {
    match step {
        Some(step) => format!("workflow/{run}/step/{step}/{column}"),
        None => format!("workflow/{run}/{column}"),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and its tables. The file is created
    /// readable by its owner only.
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
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(Error::db)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if fsync {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| Error::Database(format!("cannot open {}: {e}", path.display())))?;
        for statement in SCHEMA {
            sqlx::query(statement).execute(&pool).await?;
        }
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
            seal: Columns::default(),
        })
    }

    /// Seals run definitions, inputs, step outputs and errors under `keys` from now on (values
    /// already stored sealed need them to be read).
    pub fn sealed_with(mut self, keys: FileKeys) -> Self {
        self.seal = Columns(Some(keys));
        self
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
            let status: String = row.try_get("status").map_err(db)?;
            let at = |c: &str| column(run, Some(&id), c);
            let output = self
                .seal
                .open_opt(&at("output"), row.try_get("output").map_err(db)?)?;
            let error = self
                .seal
                .open_opt(&at("error"), row.try_get("error").map_err(db)?)?;
            let agent: Option<String> = row.try_get("agent").map_err(db)?;
            let record = StepRecord {
                status: StepStatus::parse(&status)
                    .ok_or_else(|| storage("workflow database: unknown step status"))?,
                attempts: u32::try_from(row.try_get::<i64, _>("attempts").map_err(db)?)
                    .unwrap_or(0),
                idempotency_key: row.try_get("idempotency_key").map_err(db)?,
                output: output
                    .map(|o| serde_json::from_str(&o))
                    .transpose()
                    .map_err(|_| storage("workflow database: a step output is not JSON"))?,
                error,
                updated_ms: unms(row.try_get("updated_ms").map_err(db)?),
                agent: agent.map(bear_core::AgentId::new).transpose()?,
                started_ms: row
                    .try_get::<Option<i64>, _>("started_ms")
                    .map_err(db)?
                    .map(unms),
                finished_ms: row
                    .try_get::<Option<i64>, _>("finished_ms")
                    .map_err(db)?
                    .map(unms),
            };
            steps.insert(StepId::new(id)?, record);
        }
        Ok(steps)
    }

    fn run_from_row(
        &self,
        row: &sqlx::sqlite::SqliteRow,
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
            owner: row.try_get("owner").map_err(db)?,
        })
    }
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

async fn upsert_step(
    tx: &mut Transaction<'_, Sqlite>,
    seal: &Columns,
    run: &str,
    step: &str,
    r: &StepRecord,
) -> Result<(), CoreError> {
    let (output, error) = step_texts(seal, run, step, r)?;
    sqlx::query(
        "INSERT INTO bear_steps (run_id, step_id, status, attempts, idempotency_key, output,
                                 error, agent, started_ms, finished_ms, updated_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (run_id, step_id) DO UPDATE SET
            status = excluded.status, attempts = excluded.attempts,
            idempotency_key = excluded.idempotency_key, output = excluded.output,
            error = excluded.error, agent = excluded.agent, started_ms = excluded.started_ms,
            finished_ms = excluded.finished_ms, updated_ms = excluded.updated_ms",
    )
    .bind(run)
    .bind(step)
    .bind(r.status.as_str())
    .bind(i64::from(r.attempts))
    .bind(&r.idempotency_key)
    .bind(output)
    .bind(error)
    .bind(r.agent.as_ref().map(|a| a.as_str()))
    .bind(r.started_ms.map(ms))
    .bind(r.finished_ms.map(ms))
    .bind(ms(r.updated_ms))
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

#[async_trait::async_trait]
impl WorkflowStateStore for SqliteStore {
    async fn save_run(&self, run: &RunRecord) -> bear_core::Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
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
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query(
            "INSERT INTO bear_run_definitions (run_id, definition, inputs) VALUES ($1, $2, $3)
             ON CONFLICT (run_id) DO UPDATE SET
                definition = excluded.definition, inputs = excluded.inputs",
        )
        .bind(run.id.as_str())
        .bind(self.seal.seal(
            &column(run.id.as_str(), None, "definition"),
            json(&run.definition)?,
        )?)
        .bind(
            self.seal
                .seal(&column(run.id.as_str(), None, "inputs"), json(&run.inputs)?)?,
        )
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("DELETE FROM bear_steps WHERE run_id = $1")
            .bind(run.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        // Many rows per statement: a 10,000-step run is saved in 20 round trips, not 10,000.
        let steps: Vec<(&StepId, &StepRecord)> = run.steps.iter().collect();
        for chunk in steps.chunks(500) {
            let texts = chunk
                .iter()
                .map(|(id, r)| step_texts(&self.seal, run.id.as_str(), id.as_str(), r))
                .collect::<Result<Vec<_>, CoreError>>()?;
            let mut q = sqlx::QueryBuilder::<Sqlite>::new(
                "INSERT INTO bear_steps (run_id, step_id, status, attempts, idempotency_key, \
                 output, error, agent, started_ms, finished_ms, updated_ms) ",
            );
            q.push_values(
                chunk.iter().zip(texts),
                |mut b, ((id, r), (output, error))| {
                    b.push_bind(run.id.as_str())
                        .push_bind(id.as_str())
                        .push_bind(r.status.as_str())
                        .push_bind(i64::from(r.attempts))
                        .push_bind(r.idempotency_key.as_str())
                        .push_bind(output)
                        .push_bind(error)
                        .push_bind(r.agent.as_ref().map(|a| a.as_str()))
                        .push_bind(r.started_ms.map(ms))
                        .push_bind(r.finished_ms.map(ms))
                        .push_bind(ms(r.updated_ms));
                },
            );
            q.build().execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)
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
        let row = sqlx::query(&format!("{SELECT_RUNS} WHERE r.id = $1"))
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
                sqlx::query(&format!(
                    "{SELECT_RUNS} WHERE r.status = $1 ORDER BY r.created_ms DESC"
                ))
                .bind(s.as_str())
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(&format!("{SELECT_RUNS} ORDER BY r.created_ms DESC"))
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

    async fn heartbeat(&self, run: &RunId, now_ms: u64) -> bear_core::Result<()> {
        sqlx::query("UPDATE bear_runs SET heartbeat_ms = $1 WHERE id = $2")
            .bind(ms(now_ms))
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
        Ok(())
    }

    async fn take_control(&self, run: &RunId) -> bear_core::Result<Option<RunControl>> {
        // Read, then clear only if unchanged: a request written in between is not lost (it is
        // taken at the next call), and no transaction has to upgrade from read to write.
        let row = sqlx::query("SELECT control FROM bear_runs WHERE id = $1")
            .bind(run.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        let control: Option<String> = match row {
            Some(r) => r.try_get("control").map_err(db)?,
            None => None,
        };
        let Some(c) = control else {
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
        let control = Some(c);
        Ok(control.as_deref().and_then(RunControl::parse))
    }
}

/// Runs kept in memory: nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    runs: Mutex<BTreeMap<RunId, (RunRecord, Option<RunControl>)>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut BTreeMap<RunId, (RunRecord, Option<RunControl>)>) -> T,
    ) -> T {
        let mut guard = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }
}

fn unknown(run: &RunId) -> CoreError {
    CoreError::backend(ErrorKind::NotFound, format!("no workflow run `{run}`"))
}

#[async_trait::async_trait]
impl WorkflowStateStore for MemoryStore {
    async fn save_run(&self, run: &RunRecord) -> bear_core::Result<()> {
        self.with(|m| {
            let control = m.get(&run.id).and_then(|(_, c)| *c);
            m.insert(run.id.clone(), (run.clone(), control));
        });
        Ok(())
    }

    async fn update_step(
        &self,
        run: &RunId,
        step: &StepId,
        record: &StepRecord,
        run_status: RunStatus,
    ) -> bear_core::Result<()> {
        self.with(|m| {
            let (r, _) = m.get_mut(run).ok_or_else(|| unknown(run))?;
            r.steps.insert(step.clone(), record.clone());
            r.status = run_status;
            r.updated_ms = record.updated_ms;
            Ok(())
        })
    }

    async fn load_run(&self, run: &RunId) -> bear_core::Result<Option<RunRecord>> {
        Ok(self.with(|m| m.get(run).map(|(r, _)| r.clone())))
    }

    async fn list_runs(&self, status: Option<RunStatus>) -> bear_core::Result<Vec<RunRecord>> {
        let mut runs: Vec<RunRecord> = self.with(|m| {
            m.values()
                .filter(|(r, _)| status.is_none_or(|s| r.status == s))
                .map(|(r, _)| r.clone())
                .collect()
        });
        runs.sort_by_key(|r| std::cmp::Reverse(r.created_ms));
        Ok(runs)
    }

    async fn set_run_status(&self, run: &RunId, status: RunStatus) -> bear_core::Result<()> {
        self.with(|m| {
            let (r, _) = m.get_mut(run).ok_or_else(|| unknown(run))?;
            r.status = status;
            r.updated_ms = crate::now_ms();
            Ok(())
        })
    }

    async fn heartbeat(&self, run: &RunId, now_ms: u64) -> bear_core::Result<()> {
        self.with(|m| {
            if let Some((r, _)) = m.get_mut(run) {
                r.heartbeat_ms = now_ms;
            }
        });
        Ok(())
    }

    async fn request_control(&self, run: &RunId, control: RunControl) -> bear_core::Result<()> {
        self.with(|m| {
            let (_, c) = m.get_mut(run).ok_or_else(|| unknown(run))?;
            *c = Some(control);
            Ok(())
        })
    }

    async fn take_control(&self, run: &RunId) -> bear_core::Result<Option<RunControl>> {
        Ok(self.with(|m| m.get_mut(run).and_then(|(_, c)| c.take())))
    }
}
