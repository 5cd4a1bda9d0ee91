//! A list of records kept as JSON lines in one file, sealed whole under a data key (or plain
//! for a collection from before sealing): a matter's question history, a user's chats.
//! Writers take a lock file (other processes) and [`WRITING`] (this one); a new version is
//! written to a temporary file, flushed and renamed over the old.

use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Mutex;

use bear_security::crypto::segment::{read_whole, write_whole};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// One writer at a time for every list file of this process.
static WRITING: Mutex<()> = Mutex::new(());

/// A sealed JSON-lines file of `T`.
pub(crate) struct SealedList<T> {
    path: PathBuf,
    /// The name it is sealed under (its AAD).
    name: String,
    lock: PathBuf,
    keys: Option<bear_security::FileKeys>,
    what: &'static str,
    records: PhantomData<T>,
}

impl<T: Serialize + DeserializeOwned> SealedList<T> {
    /// The list at `path`, sealed as `name` with `keys` (plain without), locked through
    /// `lock`; `what` names it in errors.
    pub(crate) fn new(
        path: PathBuf,
        name: &str,
        lock: PathBuf,
        keys: Option<bear_security::FileKeys>,
        what: &'static str,
    ) -> Self {
        Self {
            path,
            name: name.to_string(),
            lock,
            keys,
            what,
            records: PhantomData,
        }
    }

    /// Where it is kept.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::Core(bear_core::Error::backend(
            bear_core::ErrorKind::Storage,
            format!("{} cannot be written or read: {}", self.what, e.kind()),
        ))
    }

    /// The records, oldest first; none if the file does not exist.
    pub(crate) fn read(&self) -> Result<Vec<T>> {
        let text = match read_whole(&self.path, &self.name, self.keys.as_ref()) {
            Ok(t) => t,
            Err(bear_security::Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(Vec::new());
            }
            Err(e) => return Err(Error::Security(e)),
        };
        // A line cut short by a crash (plain files) is skipped: the others are the list.
        Ok(String::from_utf8_lossy(&text)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    /// Replaces the file with `records`.
    fn write(&self, records: &[T]) -> Result<()> {
        let mut text = Vec::new();
        for r in records {
            serde_json::to_writer(&mut text, r).map_err(|e| self.io(std::io::Error::other(e)))?;
            text.push(b'\n');
        }
        write_whole(&self.path, &self.name, self.keys.as_ref(), &text)?;
        Ok(())
    }

    /// Runs `change` on the records under both locks and writes the result.
    pub(crate) fn update<R>(&self, change: impl FnOnce(&mut Vec<T>) -> Result<R>) -> Result<R> {
        let _held = WRITING.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dir) = self.lock.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .map_err(|e| self.io(e))?;
        match lock.lock() {
            Err(e) if e.kind() != std::io::ErrorKind::Unsupported => return Err(self.io(e)),
            _ => {}
        }
        let mut records = self.read()?;
        let out = change(&mut records)?;
        self.write(&records)?;
        Ok(out)
    }
}
