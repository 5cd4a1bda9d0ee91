//! Redacted copies of PDF and DOCX files (`bear redact`, `POST /api/v1/redact`): the PII the
//! configured detector finds (all types, or those asked for) and the terms given are removed
//! from the file by `bear_rag::redact`, and the log (type, page, count; never values) goes to
//! the audit trail whether the copy was written or refused.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bear_core::{DenyList, PiiEntity};
use bear_rag::extract::{Format, Limits, OcrSetup};
use bear_rag::redact::{LogEntry, Mark, Marker, Style};
use bear_security::Detector;
use bear_security::audit::PageCount;
use serde::{Deserialize, Serialize};

use crate::{App, Error, Result, Viewer};

/// The entity name the terms of a request are found under.
pub const TERM: &str = "TERM";

/// A file to redact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedactRequest {
    /// The file's name; its extension says the format (`.pdf` or `.docx`).
    pub filename: String,
    /// The file's bytes (base64 in JSON).
    #[serde(with = "base64_bytes")]
    #[schema(value_type = String, format = Byte)]
    pub content: Vec<u8>,
    /// Terms removed besides the PII (names of parties, a matter number), matched as whole
    /// words, case-insensitively.
    #[serde(default)]
    pub terms: Vec<String>,
    /// Only these PII types (`EMAIL`, `PERSON`, `IBAN`, ...); every type when empty.
    #[serde(default)]
    pub entities: Vec<String>,
    /// Remove the terms only, no PII.
    #[serde(default)]
    pub terms_only: bool,
    /// `box` (a black box where a value was; the default) or `blank` (PDF only).
    #[serde(default)]
    #[schema(value_type = String)]
    pub style: Style,
}

/// A redacted copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RedactResponse {
    /// The copy's bytes (base64 in JSON).
    #[serde(with = "base64_bytes")]
    #[schema(value_type = String, format = Byte)]
    pub content: Vec<u8>,
    /// Values removed in all.
    pub removed: u32,
    /// What was removed where: type, page (PDF) and count; never the values.
    #[schema(value_type = Vec<Object>)]
    pub log: Vec<LogEntry>,
    /// What else was taken out of the file (`metadata`, `annotations`, `tracked changes`, ...).
    pub stripped: Vec<String>,
}

impl App {
    /// Writes a redacted copy of `req.content`, recording the log in the audit trail.
    pub async fn redact(&self, viewer: &Viewer, req: RedactRequest) -> Result<RedactResponse> {
        let format = format_of(&req.filename)?;
        let marker = self.marker(&req)?;
        let rag = &self.config().config.rag;
        let mut limits = Limits::from_config(rag);
        if format == Format::Pdf {
            limits.ocr = self.ocr().await.map(|e| OcrSetup::new(e, rag));
        }
        let input_len = req.content.len() as u64;
        let RedactRequest {
            filename,
            content,
            style,
            ..
        } = req;
        let done = tokio::task::spawn_blocking(move || {
            bear_rag::redact::redact(&content, format, &marker, style, &limits)
        })
        .await
        .map_err(|_| Error::invalid("content", "the redactor stopped unexpectedly"))?;
        let out = match done {
            Ok(out) => out,
            Err(reason) => {
                self.record(viewer, "redact", "refused", (input_len, 0))?;
                return Err(bear_rag::Error::Document {
                    path: filename.into(),
                    reason,
                }
                .into());
            }
        };
        self.audit_log()?
            .record(log_event(viewer, &out, input_len))?;
        Ok(RedactResponse {
            removed: out.log.iter().map(|e| e.count).sum(),
            content: out.bytes,
            log: out.log,
            stripped: out.stripped,
        })
    }

    /// The detector for a request: the configured rules, plus its terms as a deny list.
    fn marker(&self, req: &RedactRequest) -> Result<RedactMarker> {
        let terms: Vec<String> = req
            .terms
            .iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
        if req.terms_only && terms.is_empty() {
            return Err(Error::invalid(
                "terms",
                "terms_only needs at least one term",
            ));
        }
        let detector = if terms.is_empty() {
            self.detector()?
        } else {
            let mut config = self.config().config.pii.clone();
            config.deny_lists.push(DenyList {
                name: TERM.into(),
                terms,
            });
            Arc::new(Detector::new(&config)?)
        };
        let entities = self.entities(&req.entities)?;
        Ok(RedactMarker {
            detector,
            entities,
            terms_only: req.terms_only,
        })
    }
}

impl App {
    /// The PII types asked for, each one the detector knows (built in or configured).
    fn entities(&self, asked: &[String]) -> Result<BTreeSet<String>> {
        let pii = &self.config().config.pii;
        let known: BTreeSet<String> = PiiEntity::BUILTIN
            .iter()
            .map(|e| e.name().into_owned())
            .chain(pii.patterns.iter().map(|p| p.name.clone()))
            .chain(pii.deny_lists.iter().map(|d| d.name.clone()))
            .collect();
        let asked: BTreeSet<String> = asked
            .iter()
            .map(|e| e.trim().to_ascii_uppercase())
            .filter(|e| !e.is_empty())
            .collect();
        if let Some(bad) = asked.iter().find(|e| !known.contains(*e)) {
            let names: Vec<&str> = known.iter().map(String::as_str).collect();
            return Err(Error::invalid(
                "entities",
                format!(
                    "unknown PII type `{bad}`; the types are {}",
                    names.join(", ")
                ),
            ));
        }
        Ok(asked)
    }
}

/// The format a file name says, PDF or DOCX.
fn format_of(filename: &str) -> Result<Format> {
    match Format::from_path(std::path::Path::new(filename)) {
        Some(f @ (Format::Pdf | Format::Docx)) => Ok(f),
        _ => Err(Error::invalid(
            "filename",
            "BEAR writes redacted copies of .pdf and .docx files; name the file with one of \
             those extensions",
        )),
    }
}

/// The audit record of a written copy: counts per type, and per type and page.
fn log_event(
    viewer: &Viewer,
    out: &bear_rag::redact::Redacted,
    input_len: u64,
) -> bear_security::AuditEvent {
    let mut entities: BTreeMap<PiiEntity, u32> = BTreeMap::new();
    let mut pages = Vec::new();
    for e in &out.log {
        *entities.entry(PiiEntity::from_name(&e.kind)).or_insert(0) += e.count;
        if let Some(page) = e.page {
            pages.push(PageCount {
                entity: e.kind.clone(),
                page,
                count: e.count,
            });
        }
    }
    let mut event =
        crate::audit::event(viewer, "redact", "ok", (input_len, out.bytes.len() as u64));
    event.entities = entities;
    event.pages = pages;
    event
}

/// The configured detector, keeping the types asked for and the terms.
struct RedactMarker {
    detector: Arc<Detector>,
    entities: BTreeSet<String>,
    terms_only: bool,
}

impl Marker for RedactMarker {
    fn mark(&self, text: &str) -> Vec<Mark> {
        self.detector
            .detect(text)
            .into_iter()
            .filter_map(|f| {
                let kind = f.entity.name().into_owned();
                let wanted = if kind == TERM {
                    true
                } else {
                    !self.terms_only && (self.entities.is_empty() || self.entities.contains(&kind))
                };
                wanted.then_some(Mark {
                    start: f.start,
                    end: f.end,
                    kind,
                })
            })
            .collect()
    }
}

/// Bytes as base64 in JSON.
mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD
            .decode(s.as_bytes())
            .map_err(|_| serde::de::Error::custom("content is not valid base64"))
    }
}
