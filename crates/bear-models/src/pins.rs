//! Models kept loaded in a long-running process (`bear-server`), asked for by another process
//! (`bear models load|unload`) through two small files instead of a connection.
//!
//! - The **pin file** (`<data>/models/pinned.json`, written by the CLI under a lock): the models
//!   to keep resident, the models to unload, and a generation that every change increments.
//! - The **status file** (`<data>/models/server-status.json`, written by the server about once a
//!   second): which generation it has acted on, what is resident and pinned, which pins failed
//!   to load and why, and which unloads wait for a request to finish.
//!
//! [`PinWatcher::tick`] is the server's side: it applies the pin file to a [`ModelManager`]
//! (pinned models are exempt from keep-alive and LRU eviction) and returns the status to write.
//! The CLI never opens a socket, so "nothing but bear-server listening opens a connection" holds.
//! Both files hold model ids and error messages about model files, never user text.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bear_core::ModelId;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::manager::ModelManager;

/// The pin file, relative to the data directory.
pub const PINS_FILE: &str = "models/pinned.json";
/// The server's status file, relative to the data directory.
pub const STATUS_FILE: &str = "models/server-status.json";
/// A status older than this is from a server that is gone.
pub const STATUS_FRESH: Duration = Duration::from_secs(5);

/// What the CLI asks of the server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pins {
    /// Incremented by every change.
    pub generation: u64,
    /// Models to load and keep resident.
    pub pinned: BTreeSet<ModelId>,
    /// Models to unload, with the generation that asked; the server acts on each once.
    pub unload: BTreeMap<ModelId, u64>,
}

/// The pin file of one data directory.
#[derive(Debug, Clone)]
pub struct PinFile {
    path: PathBuf,
}

fn state_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::State {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename
/// (tempfile's `persist`): readers see the old or the new content, never half of it.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |e: std::io::Error| state_err(path, format!("cannot write: {e}"));
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io)?;
    let mut f = tempfile::NamedTempFile::new_in(parent).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.as_file().sync_all().map_err(io)?;
    f.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

impl PinFile {
    /// The pin file under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(PINS_FILE),
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current pins; no file means none.
    pub fn read(&self) -> Result<Pins> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                state_err(
                    &self.path,
                    format!(
                        "not a valid pin file ({e}); delete it and pin the models again with \
                         `bear models load`"
                    ),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Pins::default()),
            Err(e) => Err(state_err(&self.path, format!("cannot read: {e}"))),
        }
    }

    /// Changes the pins under an exclusive lock (so two CLIs never lose each other's change),
    /// increments the generation and writes the file atomically. Returns the new pins.
    pub fn update(&self, change: impl FnOnce(&mut Pins)) -> Result<Pins> {
        let lock_path = self.path.with_extension("lock");
        let io = |e: std::io::Error| state_err(&lock_path, format!("cannot lock: {e}"));
        if let Some(parent) = lock_path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io)?;
        lock.lock().map_err(io)?;
        let mut pins = self.read()?;
        change(&mut pins);
        pins.generation += 1;
        let bytes = serde_json::to_vec_pretty(&pins).expect("pins serialize");
        write_atomically(&self.path, &bytes)?;
        Ok(pins)
    }
}

/// What a server reports about its models.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatus {
    /// The server's process id.
    pub pid: u32,
    /// When this was written, in milliseconds since the Unix epoch.
    pub updated_unix_ms: u64,
    /// The pin file generation the server has acted on.
    pub generation: u64,
    /// Models in memory.
    pub resident: Vec<ModelId>,
    /// Models kept in memory on request.
    pub pinned: Vec<ModelId>,
    /// Pinned models that could not be loaded, with why; tried again when the pins change.
    pub failed: BTreeMap<ModelId, String>,
    /// Models asked to unload that a request is still using; unloaded as soon as it finishes.
    pub releasing: Vec<ModelId>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl ServerStatus {
    /// The status of a running server, or `None` when no server has written one within
    /// [`STATUS_FRESH`] (none running, or it stopped).
    pub fn current(data_dir: &Path) -> Result<Option<Self>> {
        let path = data_dir.join(STATUS_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(state_err(&path, format!("cannot read: {e}"))),
        };
        // A status being replaced is never half-written (rename), so a parse error means a file
        // that is not ours: treat it as no server.
        let Ok(status) = serde_json::from_slice::<Self>(&bytes) else {
            return Ok(None);
        };
        let age = now_ms().saturating_sub(status.updated_unix_ms);
        Ok((age <= STATUS_FRESH.as_millis() as u64).then_some(status))
    }

    /// Writes the status for other processes to read.
    pub fn write(&self, data_dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).expect("status serializes");
        write_atomically(&data_dir.join(STATUS_FILE), &bytes)
    }

    /// Marks the status as current again (a heartbeat while a long load runs).
    pub fn touch(&mut self) {
        self.updated_unix_ms = now_ms();
    }

    /// Removes the status file, when the server stops.
    pub fn remove(data_dir: &Path) {
        let _ = std::fs::remove_file(data_dir.join(STATUS_FILE));
    }
}

/// The server's side: applies the pin file to a model manager, one round per [`Self::tick`].
#[derive(Debug)]
pub struct PinWatcher {
    pins: PinFile,
    /// The last pin file read well; kept while the file is unreadable.
    last: Pins,
    seen: u64,
    failed: BTreeMap<ModelId, String>,
    releasing: BTreeSet<ModelId>,
}

impl PinWatcher {
    /// A watcher of the pin file under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            pins: PinFile::new(data_dir),
            last: Pins::default(),
            seen: 0,
            failed: BTreeMap::new(),
            releasing: BTreeSet::new(),
        }
    }

    /// Reads the pin file and brings `manager` in line: loads and pins what is pinned (a
    /// failure is remembered, not retried until the pins change), unpins what is not, unloads
    /// what was asked to unload (later, if a request is using it). Blocks while models load.
    pub fn tick(&mut self, manager: &ModelManager) -> ServerStatus {
        let pins = match self.pins.read() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the pin file; keeping the last pins");
                self.last.clone()
            }
        };
        if pins.generation != self.seen {
            self.failed.clear();
        }
        let pinned_now: BTreeSet<ModelId> = manager.pinned().into_iter().collect();
        for id in &pins.pinned {
            if pinned_now.contains(id) || self.failed.contains_key(id) {
                continue;
            }
            self.releasing.remove(id);
            match manager.pin(id) {
                Ok(()) => tracing::info!(model = %id, "pinned model loaded"),
                Err(e) => {
                    tracing::warn!(model = %id, error = %e, "cannot load a pinned model");
                    self.failed.insert(id.clone(), e.to_string());
                }
            }
        }
        let mut release: BTreeSet<ModelId> = pinned_now.difference(&pins.pinned).cloned().collect();
        release.extend(
            pins.unload
                .iter()
                .filter(|(id, generation)| **generation > self.seen && !pins.pinned.contains(*id))
                .map(|(id, _)| id.clone()),
        );
        release.extend(std::mem::take(&mut self.releasing));
        for id in release {
            match manager.unpin(&id) {
                Ok(true) => {}
                Ok(false) => {
                    self.releasing.insert(id);
                }
                Err(e) => tracing::warn!(model = %id, error = %e, "cannot unload a model"),
            }
        }
        self.failed.retain(|id, _| pins.pinned.contains(id));
        self.seen = pins.generation;
        self.last = pins;
        self.status(manager)
    }

    /// The status as of now, without acting on the pin file.
    pub fn status(&self, manager: &ModelManager) -> ServerStatus {
        ServerStatus {
            pid: std::process::id(),
            updated_unix_ms: now_ms(),
            generation: self.seen,
            resident: manager.resident_ids(),
            pinned: manager.pinned(),
            failed: self.failed.clone(),
            releasing: self.releasing.iter().cloned().collect(),
        }
    }
}
