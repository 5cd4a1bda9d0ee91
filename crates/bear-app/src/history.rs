//! A matter's questions and answers (the web app's Ask history): every completed answer is
//! kept beside the collection's tables, so it goes with the collection, sealed under the
//! matter's data key as its tables are. Its text (question, answer, passages) is also scrubbed
//! under the matter's PII policy, as the documents are, and restored when read, as search hits
//! are.

use serde::{Deserialize, Serialize};

use crate::docs::Removed;
use crate::rag::{AskResponse, Finish};
use crate::sealed_list::SealedList;
use crate::{App, Error, Result, Viewer};

/// The history file in a plain collection's directory.
const FILE: &str = "history.jsonl";
/// The history file in a sealed collection's directory.
const SEALED: &str = "history.sealed";
/// The lock file writers of either take.
const LOCK: &str = "history.lock";

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

/// Applies `f` to every text of `e` that may hold PII.
fn each_text(e: &mut HistoryEntry, f: &dyn Fn(&str) -> Result<String>) -> Result<()> {
    e.question = f(&e.question)?;
    e.answer.answer = f(&e.answer.answer)?;
    for s in &mut e.answer.sources {
        s.hit.text = f(&s.hit.text)?;
        s.hit.title = f(&s.hit.title)?;
        s.hit.citation = f(&s.hit.citation)?;
    }
    for c in &mut e.answer.citations {
        if let Some(span) = &mut c.span {
            span.text = f(&span.text)?;
        }
    }
    Ok(())
}

/// A matter's history file: JSON lines, sealed whole under the matter's data key when the
/// matter is sealed (`history.sealed`), plain otherwise (`history.jsonl`), locked through
/// `history.lock`.
type HistoryFile = SealedList<HistoryEntry>;

fn history_at(dir: &std::path::Path, keys: Option<bear_security::FileKeys>) -> HistoryFile {
    let file = if keys.is_some() { SEALED } else { FILE };
    let what = "the matter's history";
    SealedList::new(dir.join(file), SEALED, dir.join(LOCK), keys, what)
}

impl App {
    fn history_file(&self, c: &bear_rag::Collection) -> Result<HistoryFile> {
        let keys = match c.meta().sealed {
            true => Some(self.file_keys(c.meta().name.as_str())?),
            false => None,
        };
        Ok(history_at(c.dir(), keys))
    }

    /// Moves a plain history a collection kept before it was sealed into its sealed history
    /// (entries merged by id, so a re-run after a kill adds none twice), then removes the
    /// plain file. Whether there was one.
    pub(crate) fn seal_old_history(&self, c: &bear_rag::Collection) -> Result<bool> {
        let plain = history_at(c.dir(), None);
        if !c.meta().sealed || !plain.path().is_file() {
            return Ok(false);
        }
        let old = plain.read()?;
        self.history_file(c)?.update(|entries| {
            for e in old {
                if !entries.iter().any(|k| k.id == e.id) {
                    entries.push(e);
                }
            }
            entries.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(())
        })?;
        std::fs::remove_file(plain.path()).map_err(|e| {
            Error::Core(bear_core::Error::backend(
                bear_core::ErrorKind::Storage,
                format!("the matter's plain history cannot be removed: {}", e.kind()),
            ))
        })?;
        Ok(true)
    }

    /// Each history entry of `c` as JSON text, as stored (scrubbed).
    pub(crate) fn history_texts(&self, c: &bear_rag::Collection) -> Result<Vec<String>> {
        Ok(self
            .history_file(c)?
            .read()?
            .iter()
            .filter_map(|e| serde_json::to_string(e).ok())
            .collect())
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
        let scrubber = self.scrubber_of(c)?;
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
        self.history_file(c)?.update(|entries| {
            entries.push(entry);
            Ok(())
        })
    }

    /// The history of matter `name`, newest first.
    pub async fn history(&self, viewer: &Viewer, name: &str) -> Result<Vec<HistoryItem>> {
        let c = self.collection(viewer, Some(name)).await?;
        let scrubber = self.scrubber_of(&c)?;
        let mut items = self
            .history_file(&c)?
            .read()?
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
        let scrubber = self.scrubber_of(&c)?;
        let mut entry = self
            .history_file(&c)?
            .read()?
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
        self.history_file(&c)?.update(|entries| {
            let before = entries.len();
            entries.retain(|e| e.id != id);
            if entries.len() == before {
                return Err(not_found(id));
            }
            Ok(())
        })?;
        self.record(viewer, "rag.history.rm", "ok", (1, 0))?;
        Ok(Removed {
            id: id.to_string(),
            path: None,
            status: "removed".into(),
        })
    }
}
