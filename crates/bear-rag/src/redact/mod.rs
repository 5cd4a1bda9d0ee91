//! Redacted copies of PDF and DOCX files: every value a [`Marker`] finds is removed from the
//! output, not covered, and whatever else in the file can hold text is stripped.
//!
//! - [`pdf`]: glyphs, the vector paths and image pixels under them are removed by
//!   open-redact-pdf; metadata, attachments, annotations, form fields, outlines, thumbnails,
//!   the structure tree and hidden layers are stripped; the file is rewritten whole. A
//!   scanned page is read by OCR and re-rendered without its values ([`scan`]).
//! - [`docx`]: the values are cut from the text runs of every part (body, headers, footers,
//!   notes) and replaced by `[REDACTED]`; tracked changes, hidden text, comments and document
//!   properties are dropped.
//!
//! Both fail closed: the output is read back and checked (no value left, nothing new found)
//! before it is returned, and whatever cannot be placed or read with certainty (a font without
//! a Unicode map, an embedded file) refuses the document with its reason. The log says what
//! kind of value was removed on which page and how often, never the values.

mod docx;
mod pdf;
mod scan;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::extract::{Format, Limits, Refusal};

/// The label a redacted value is replaced with in formats that flow text (DOCX).
pub const LABEL: &str = "[REDACTED]";

/// One value to remove: a byte span of the text it was found in, and its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// Start byte.
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
    /// What it is (`EMAIL`, `PERSON`, `TERM`, ...): goes into the log.
    pub kind: String,
}

/// Finds the values to remove in a text (PII findings, listed terms).
pub trait Marker: Send + Sync {
    /// The spans to remove, on `char` boundaries of `text`.
    fn mark(&self, text: &str) -> Vec<Mark>;
}

/// How a removed value looks in a PDF.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    /// A black box where the value was (the usual look of a redaction).
    #[default]
    Box,
    /// White space where the value was.
    Blank,
}

/// How many values of one kind were removed from one page.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LogEntry {
    /// What kind of value.
    pub kind: String,
    /// 1-based page (PDF), or `None` for formats without fixed pages.
    pub page: Option<u32>,
    /// How many were removed.
    pub count: u32,
}

/// A redacted copy.
#[derive(Debug, Clone)]
pub struct Redacted {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// What was removed where; no values.
    pub log: Vec<LogEntry>,
    /// What else was taken out of the file (`metadata`, `annotations`, `tracked changes`, ...).
    pub stripped: Vec<String>,
}

/// Writes a redacted copy of `bytes`, a PDF or DOCX file.
///
/// # Errors
/// A [`Refusal`] when the file cannot be read, or when something in it cannot be redacted with
/// certainty; nothing is returned then.
pub fn redact(
    bytes: &[u8],
    format: Format,
    marker: &dyn Marker,
    style: Style,
    limits: &Limits,
) -> Result<Redacted, Refusal> {
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(Refusal::TooLarge {
            size: bytes.len() as u64,
            limit: limits.max_file_bytes,
        });
    }
    // The parsers are Rust and return errors, but a hostile file that trips one into a panic
    // is a refusal like any other.
    let run = |f: &dyn Fn() -> Result<Redacted, Refusal>| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(Err(Refusal::Internal))
    };
    match format {
        Format::Pdf => run(&|| pdf::redact(bytes, marker, style, limits)),
        Format::Docx => run(&|| docx::redact(bytes, marker, limits)),
        other => Err(Refusal::Unredactable {
            detail: format!(
                "BEAR writes redacted copies of PDF and DOCX files, not of a {}",
                other.label()
            ),
        }),
    }
}

/// Counts what was removed, per kind and page, and remembers the values to check the output
/// against (in memory only).
#[derive(Default)]
struct Tally {
    counts: BTreeMap<(String, Option<u32>), u32>,
    values: BTreeSet<String>,
}

impl Tally {
    fn add(&mut self, kind: &str, page: Option<u32>, value: &str) {
        *self.counts.entry((kind.to_string(), page)).or_insert(0) += 1;
        let v = normalize(value);
        if !v.is_empty() {
            self.values.insert(v);
        }
    }

    fn log(&self) -> Vec<LogEntry> {
        self.counts
            .iter()
            .map(|((kind, page), count)| LogEntry {
                kind: kind.clone(),
                page: *page,
                count: *count,
            })
            .collect()
    }

    /// Whether `text` still holds a removed value.
    fn left_in(&self, text: &str) -> bool {
        let t = normalize(text);
        self.values.iter().any(|v| t.contains(v.as_str()))
    }

    /// `text`, read back from the output at `place` (`page 3`), may hold no removed value and
    /// nothing the marker finds.
    fn check(&self, marker: &dyn Marker, text: &str, place: &str) -> Result<(), Refusal> {
        let found = marker.mark(text);
        if !self.left_in(text) && found.is_empty() {
            return Ok(());
        }
        let kind = found.first().map_or("removed value", |m| m.kind.as_str());
        Err(Refusal::Unredactable {
            detail: format!("read back, {place} still holds a {kind}; nothing was written"),
        })
    }
}

/// Lower case, runs of white space as one space: how values are compared with what is read
/// back.
fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            space = !out.is_empty();
        } else {
            if space {
                out.push(' ');
                space = false;
            }
            out.extend(c.to_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_values_are_found_across_case_and_line_breaks() {
        let mut t = Tally::default();
        t.add("PERSON", Some(1), "Jan  de Vries");
        assert!(t.left_in("signed by JAN DE\nVRIES today"));
        assert!(!t.left_in("signed by Jan de Vos"));
        assert_eq!(
            t.log(),
            vec![LogEntry {
                kind: "PERSON".into(),
                page: Some(1),
                count: 1
            }]
        );
    }
}
