//! A matter's questions and answers (the web app's Ask history): every completed answer is
//! kept in `history.jsonl` beside the collection's tables, so it goes with the collection.
//! Its text (question, answer, passages) is stored scrubbed under the matter's PII policy,
//! as the documents are, and restored when read, as search hits are.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::docs::Removed;
use crate::rag::{AskResponse, Finish};
use crate::{App, Error, Result, Viewer};

/// The history file in a collection's directory.
const FILE: &str = "history.jsonl";

/// One writer at a time for every history file of this process.
static WRITING: Mutex<()> = Mutex::new(());

/// One question and its answer, as kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// Its id (a UUID, time-ordered).
    pub id: String,
    /// When it was asked (RFC 3339, UTC).
    pub asked_at: String,
    /// The API key that asked (its public id); absent for the user at this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked_by: Option<String>,
    /// The question.
    pub question: String,
    /// The answer with its sources, as it was given.
    pub answer: AskResponse,
}

/// One entry in a list: enough to pick it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HistoryItem {
    /// Its id.
    pub id: String,
    /// When it was asked (RFC 3339, UTC).
    pub asked_at: String,
    /// The question.
    pub question: String,
    /// Whether the documents held an answer.
    pub relevant: bool,
}

fn not_found(id: &str) -> Error {
    Error::Core(bear_core::Error::backend(
        bear_core::ErrorKind::NotFound,
        format!("no question `{id}` in this matter's history"),
    ))
}

fn io(e: std::io::Error) -> Error {
    Error::Core(bear_core::Error::backend(
        bear_core::ErrorKind::Storage,
        format!(
            "the matter's history cannot be written or read: {}",
            e.kind()
        ),
    ))
}

/// Applies `f` to every text of `e` that may hold PII.
fn each_text(e: &mut HistoryEntry, f: &dyn Fn(&str) -> Result<String>) -> Result<()> {
    e.question = f(&e.question)?;
    e.answer.answer = f(&e.answer.answer)?;
    for s in &mut e.answer.sources {
        s.hit.text = f(&s.hit.text)?;
    }
    Ok(())
}

/// The entries of the file at `path`, oldest first; none if it does not exist.
fn read(path: &Path) -> Result<Vec<HistoryEntry>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    // A line cut short by a crash is skipped, not fatal: the others are still the history.
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Writes `entries` in place of the file at `path` (a new file renamed over it).
fn rewrite(path: &Path, entries: &[HistoryEntry]) -> Result<()> {
    let tmp = path.with_extension("jsonl.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    for e in entries {
        let line = serde_json::to_string(e).map_err(|e| io(std::io::Error::other(e)))?;
        writeln!(f, "{line}").map_err(io)?;
    }
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

impl App {
    fn history_file(&self, c: &bear_rag::Collection) -> PathBuf {
        c.dir().join(FILE)
    }

    /// Keeps a completed answer in the history of collection `c` (a stopped one is not kept).
    pub(crate) fn remember(
        &self,
        c: &bear_rag::Collection,
        viewer: &Viewer,
        question: &str,
        answer: &AskResponse,
    ) -> Result<()> {
        if answer.finish_reason == Some(Finish::Cancelled) {
            return Ok(());
        }
        let scrubber = self.scrubber_for(c.meta().pii_policy)?;
        let mut entry = HistoryEntry {
            id: uuid::Uuid::now_v7().to_string(),
            asked_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            asked_by: match viewer {
                Viewer::Local => None,
                Viewer::Key { id, .. } => Some(id.clone()),
            },
            question: question.to_string(),
            answer: answer.clone(),
        };
        each_text(&mut entry, &|t| {
            Ok(scrubber.scrub(t)?.text.expose().to_string())
        })?;
        // New tokens are saved before the entry that uses them.
        if let Some(s) = self.scrubbers() {
            s.persist()?;
        }
        let line = serde_json::to_string(&entry).map_err(|e| io(std::io::Error::other(e)))?;
        let _held = WRITING.lock().unwrap_or_else(|p| p.into_inner());
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.history_file(c))
            .map_err(io)?;
        writeln!(f, "{line}").map_err(io)
    }

    /// The history of matter `name`, newest first.
    pub async fn history(&self, viewer: &Viewer, name: &str) -> Result<Vec<HistoryItem>> {
        let c = self.collection(viewer, Some(name)).await?;
        let scrubber = self.scrubber_for(c.meta().pii_policy)?;
        let mut items = read(&self.history_file(&c))?
            .into_iter()
            .map(|e| {
                Ok(HistoryItem {
                    question: scrubber.restore(&e.question)?,
                    relevant: e.answer.relevant,
                    id: e.id,
                    asked_at: e.asked_at,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        items.reverse();
        Ok(items)
    }

    /// Entry `id` of matter `name`'s history, restored.
    pub async fn history_entry(
        &self,
        viewer: &Viewer,
        name: &str,
        id: &str,
    ) -> Result<HistoryEntry> {
        let c = self.collection(viewer, Some(name)).await?;
        let scrubber = self.scrubber_for(c.meta().pii_policy)?;
        let mut entry = read(&self.history_file(&c))?
            .into_iter()
            .find(|e| e.id == id)
            .ok_or_else(|| not_found(id))?;
        each_text(&mut entry, &|t| Ok(scrubber.restore(t)?))?;
        Ok(entry)
    }

    /// Deletes entry `id` from matter `name`'s history, and audits it.
    pub async fn forget(&self, viewer: &Viewer, name: &str, id: &str) -> Result<Removed> {
        let c = self.collection(viewer, Some(name)).await?;
        self.audit_log()?;
        let path = self.history_file(&c);
        {
            let _held = WRITING.lock().unwrap_or_else(|p| p.into_inner());
            let mut entries = read(&path)?;
            let before = entries.len();
            entries.retain(|e| e.id != id);
            if entries.len() == before {
                return Err(not_found(id));
            }
            rewrite(&path, &entries)?;
        }
        self.record(viewer, "rag.history.rm", "ok", (1, 0))?;
        Ok(Removed {
            id: id.to_string(),
            path: None,
            status: "removed".into(),
        })
    }
}
