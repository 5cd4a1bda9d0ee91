//! The tamper-evident audit log: append-only JSONL, each record hash-chained to the one before
//! with SHA-256, holding metadata only.
//!
//! A record's `hash` is SHA-256 over the previous record's hash and the record's own canonical
//! JSON (with `hash` empty); the first record chains to 64 zeros. Sequence numbers run from 1
//! without gaps. Beside the log, `<log>.head` holds the last sequence number and hash, so
//! removing records from the end is detected too. [`verify`] names the first bad line.
//!
//! Records hold the actor, the action, the time, counts and types of entities, lengths, and
//! keyed hashes (HMAC-SHA256 under a keyring key) of inputs, never the text or the PII.
//! In fail-closed mode an operation whose record cannot be written must fail:
//! [`AuditLog::record`] returns [`Error::AuditWrite`] and the caller does not proceed.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use bear_core::PiiEntity;
use ring::{digest, hmac};
use serde::{Deserialize, Serialize};

use crate::crypto::write_atomic;
use crate::{Error, Result};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit record, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// Sequence number, from 1.
    pub seq: u64,
    /// Unix time in milliseconds.
    pub time_ms: u64,
    /// Who acted: `cli`, an API key id, a workflow run id.
    pub actor: String,
    /// What was done: `pii.scrub`, `vault.restore`, `keys.rotate`.
    pub action: String,
    /// `ok` or an error class.
    pub outcome: String,
    /// Entities found, per type.
    pub entities: BTreeMap<PiiEntity, u32>,
    /// Entities per type and page, for operations on paged documents (a redaction); absent
    /// from records that have none, so records written before it chain as they were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pages: Vec<PageCount>,
    /// Input length in bytes.
    pub input_len: u64,
    /// Output length in bytes.
    pub output_len: u64,
    /// Keyed hash of the input (hex HMAC-SHA256), when a key is configured.
    pub input_hmac: Option<String>,
    /// The previous record's hash.
    pub prev: String,
    /// This record's hash.
    pub hash: String,
}

/// How many entities of one type an operation found (or removed) on one page.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageCount {
    /// The entity type (`EMAIL`, `PERSON`, a deny list's name).
    pub entity: String,
    /// 1-based page.
    pub page: u32,
    /// How many.
    pub count: u32,
}

/// What a caller reports; the log adds sequence, time and chain.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    /// Who acted.
    pub actor: String,
    /// What was done.
    pub action: String,
    /// `ok` or an error class.
    pub outcome: String,
    /// Entities found, per type.
    pub entities: BTreeMap<PiiEntity, u32>,
    /// Entities per type and page.
    pub pages: Vec<PageCount>,
    /// Input length.
    pub input_len: u64,
    /// Output length.
    pub output_len: u64,
    /// The input's keyed hash, from [`AuditLog::keyed_hash`].
    pub input_hmac: Option<String>,
}

fn record_hash(r: &AuditRecord) -> String {
    let mut copy = r.clone();
    copy.hash = String::new();
    let json = serde_json::to_vec(&copy).unwrap_or_default();
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(r.prev.as_bytes());
    ctx.update(b"\n");
    ctx.update(&json);
    hex::encode(ctx.finish())
}

#[derive(Serialize, Deserialize)]
struct Head {
    seq: u64,
    hash: String,
}

struct Tail {
    file: Option<File>,
    seq: u64,
    hash: String,
    /// The log's length after the last record this handle read or wrote: a different
    /// length at the next write means another writer (another process) appended meanwhile.
    len: u64,
}

/// An open audit log.
pub struct AuditLog {
    path: PathBuf,
    fail_closed: bool,
    hmac: Option<hmac::Key>,
    tail: Mutex<Tail>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("fail_closed", &self.fail_closed)
            .finish()
    }
}

fn head_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".head");
    PathBuf::from(p)
}

impl AuditLog {
    /// Opens (or creates) the log at `path`, resuming its chain from the last record. With
    /// `fail_closed`, a log that cannot be opened for appending is an error; otherwise a
    /// warning is logged and records are dropped.
    pub fn open(path: &Path, fail_closed: bool, hmac: Option<hmac::Key>) -> Result<Self> {
        let (seq, hash) = match last_record(path)? {
            Some(r) => (r.seq, r.hash),
            None => (0, GENESIS.to_string()),
        };
        let file = match path
            .parent()
            .map(std::fs::create_dir_all)
            .transpose()
            .and_then(|_| OpenOptions::new().create(true).append(true).open(path))
        {
            Ok(f) => Some(f),
            Err(source) if fail_closed => {
                return Err(Error::AuditWrite {
                    path: path.into(),
                    source,
                });
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "audit log cannot be opened; records will be dropped (fail-open)");
                None
            }
        };
        let len = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        Ok(Self {
            path: path.into(),
            fail_closed,
            hmac,
            tail: Mutex::new(Tail {
                file,
                seq,
                hash,
                len,
            }),
        })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keyed hash of `data` for [`AuditEvent::input_hmac`], if a key is configured.
    pub fn keyed_hash(&self, data: &[u8]) -> Option<String> {
        self.hmac
            .as_ref()
            .map(|k| hex::encode(hmac::sign(k, data).as_ref()))
    }

    /// Appends a record. In fail-closed mode a write failure is returned and the caller must
    /// not carry on with the operation; in fail-open mode it is logged and ignored.
    ///
    /// Several processes may append to one log (bear-server and CLI commands): each append
    /// holds an exclusive OS lock on the file, and continues the chain from the record another
    /// writer appended since this handle's last one, so the chain stays whole.
    pub fn record(&self, event: AuditEvent) -> Result<()> {
        let mut tail = self
            .tail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let locked = self.lock_and_catch_up(&mut tail);
        let result = locked.and_then(|()| self.append(&mut tail, event));
        if let Some(f) = tail.file.as_ref() {
            let _ = f.unlock();
        }
        match result {
            Ok(()) => Ok(()),
            Err(source) if self.fail_closed => Err(Error::AuditWrite {
                path: self.path.clone(),
                source,
            }),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "audit record dropped (fail-open)");
                Ok(())
            }
        }
    }

    /// Takes the file's lock and, if the log grew since this handle's last record, reads the
    /// newest record to continue the chain from.
    fn lock_and_catch_up(&self, tail: &mut Tail) -> std::io::Result<()> {
        let f = tail.file.as_ref().ok_or_else(not_open)?;
        crate::crypto::lock_exclusive(f)?;
        let len = f.metadata()?.len();
        if len != tail.len {
            let (seq, hash) = match last_record(&self.path).map_err(std::io::Error::other)? {
                Some(r) => (r.seq, r.hash),
                None => (0, GENESIS.to_string()),
            };
            tail.seq = seq;
            tail.hash = hash;
            tail.len = len;
        }
        Ok(())
    }

    /// Appends one record and the head file under the lock.
    fn append(&self, tail: &mut Tail, event: AuditEvent) -> std::io::Result<()> {
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut rec = AuditRecord {
            seq: tail.seq + 1,
            time_ms,
            actor: event.actor,
            action: event.action,
            outcome: event.outcome,
            entities: event.entities,
            pages: event.pages,
            input_len: event.input_len,
            output_len: event.output_len,
            input_hmac: event.input_hmac,
            prev: tail.hash.clone(),
            hash: String::new(),
        };
        rec.hash = record_hash(&rec);
        let mut line = serde_json::to_vec(&rec).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let f = tail.file.as_mut().ok_or_else(not_open)?;
        f.write_all(&line).and_then(|()| f.sync_data())?;
        tail.len += line.len() as u64;
        tail.seq = rec.seq;
        tail.hash = rec.hash.clone();
        let head = serde_json::to_vec(&Head {
            seq: rec.seq,
            hash: rec.hash,
        })
        .map_err(std::io::Error::other)?;
        write_atomic(&head_path(&self.path), &head, false).map_err(std::io::Error::other)
    }
}

fn not_open() -> std::io::Error {
    std::io::Error::other("the audit log is not open for writing")
}

/// The longest tail read back to find the last record when a log is reopened; a last line
/// longer than this is not a record.
const MAX_TAIL_BYTES: u64 = 1 << 20;

/// The last record of the log, read from its end: reopening costs the same for a log of ten
/// records and one of ten million. (The whole chain is checked by [`verify`].)
fn last_record(path: &Path) -> Result<Option<AuditRecord>> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |e| Error::io("cannot read audit log", path, e);
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    // Only a regular file holds a chain to continue; a device or pipe would be read without
    // end (or block), so the chain starts afresh and writes decide (fail-closed or not).
    let meta = f.metadata().map_err(io)?;
    if !meta.is_file() {
        return Ok(None);
    }
    // The last non-blank line within the file's last MAX_TAIL_BYTES.
    let start = meta.len().saturating_sub(MAX_TAIL_BYTES);
    let mut tail = Vec::new();
    f.seek(SeekFrom::Start(start)).map_err(io)?;
    f.read_to_end(&mut tail).map_err(io)?;
    let content = tail
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let line_start = match tail[..content].iter().rposition(|&b| b == b'\n') {
        Some(nl) => nl + 1,
        None if content == 0 && start == 0 => return Ok(None),
        None if start == 0 => 0,
        None => {
            return Err(Error::AuditBroken {
                path: path.into(),
                line: line_number_at(path, start)?,
                reason: "the last line is too long to be an audit record; run `bear audit verify`"
                    .into(),
            });
        }
    };
    let line = tail[line_start..].trim_ascii();
    match serde_json::from_slice::<AuditRecord>(line) {
        Ok(rec) => Ok(Some(rec)),
        Err(_) => Err(Error::AuditBroken {
            path: path.into(),
            line: line_number_at(path, start + line_start as u64)?,
            reason: "not an audit record; run `bear audit verify`".into(),
        }),
    }
}

/// The 1-based number of the line that starts at byte `offset` (read only to report an error).
fn line_number_at(path: &Path, offset: u64) -> Result<u64> {
    use std::io::Read;
    let io = |e| Error::io("cannot read audit log", path, e);
    let mut r = File::open(path).map_err(io)?.take(offset);
    let mut buf = [0u8; 64 << 10];
    let mut newlines = 0u64;
    loop {
        let n = r.read(&mut buf).map_err(io)?;
        if n == 0 {
            return Ok(newlines + 1);
        }
        newlines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

/// The result of a successful [`verify`].
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Records checked.
    pub records: u64,
    /// Hash of the last record (the chain head).
    pub head: String,
    /// Whether a head file was present and matched.
    pub head_checked: bool,
}

/// Checks the whole chain. Any edited, deleted, inserted or reordered record gives
/// [`Error::AuditBroken`] naming the first bad line.
pub fn verify(path: &Path) -> Result<VerifyReport> {
    let f = File::open(path).map_err(|e| Error::io("cannot read audit log", path, e))?;
    let broken = |line: u64, reason: String| Error::AuditBroken {
        path: path.into(),
        line,
        reason,
    };
    let mut prev = GENESIS.to_string();
    let mut seq = 0u64;
    let mut n = 0u64;
    for (i, line) in BufReader::new(f).split(b'\n').enumerate() {
        let lineno = i as u64 + 1;
        let line = line.map_err(|e| Error::io("cannot read audit log", path, e))?;
        if line.iter().all(u8::is_ascii_whitespace) {
            return Err(broken(lineno, "empty line inside the log".into()));
        }
        let rec: AuditRecord = serde_json::from_slice(&line)
            .map_err(|_| broken(lineno, "not a valid audit record".into()))?;
        if rec.seq != seq + 1 {
            return Err(broken(
                lineno,
                format!(
                    "sequence {} follows {seq} (a record was deleted, inserted or moved)",
                    rec.seq
                ),
            ));
        }
        if rec.prev != prev {
            return Err(broken(
                lineno,
                "does not chain to the record before it".into(),
            ));
        }
        if record_hash(&rec) != rec.hash {
            return Err(broken(lineno, "its contents were changed".into()));
        }
        prev = rec.hash;
        seq = rec.seq;
        n += 1;
    }
    let head_file = head_path(path);
    let head_checked = match std::fs::read(&head_file) {
        Ok(bytes) => {
            let head: Head = serde_json::from_slice(&bytes)
                .map_err(|_| Error::format(&head_file, "not an audit head file"))?;
            if head.seq != seq || head.hash != prev {
                return Err(broken(
                    n + 1,
                    format!(
                        "the log ends at record {seq} but its head says {} (records were removed from the end)",
                        head.seq
                    ),
                ));
            }
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(Error::io("cannot read", head_file, e)),
    };
    Ok(VerifyReport {
        records: n,
        head: prev,
        head_checked,
    })
}
