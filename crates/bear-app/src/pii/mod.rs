//! PII detection: one response shape (findings with byte, character, line and column positions,
//! counts per entity, the risk level) whether the text came in one request or a stream of
//! chunks read from a file larger than memory.

use std::collections::BTreeMap;

use bear_core::PiiEntity;
use bear_security::Detector;
use serde::{Deserialize, Serialize};

use crate::{App, Result};

pub mod stream;

/// Text to look for PII in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectRequest {
    /// The text.
    pub text: String,
    /// Also return each finding's value (they are the PII; off by default).
    #[serde(default)]
    pub show_values: bool,
}

/// One piece of PII found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PiiFinding {
    /// The entity type (`EMAIL`, `IBAN`, `PERSON`, ...).
    pub entity: String,
    /// Byte offsets in the input, end exclusive.
    pub start: u64,
    /// End byte offset.
    pub end: u64,
    /// Character offsets in the input, end exclusive.
    pub char_start: u64,
    /// End character offset.
    pub char_end: u64,
    /// 1-based line.
    pub line: u64,
    /// 1-based column, in characters.
    pub column: u64,
    /// Confidence from 0 to 1.
    pub score: f32,
    /// The recognizer that found it.
    pub recognizer: String,
    /// The value, only when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// How much harm the text would do if it leaked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Nothing, or only low-value identifiers.
    Low,
    /// Contact details or names.
    Medium,
    /// Government or financial identifiers.
    High,
    /// Several high-risk identifiers together.
    Critical,
}

impl From<bear_core::RiskLevel> for Risk {
    fn from(r: bear_core::RiskLevel) -> Self {
        match r {
            bear_core::RiskLevel::Low => Self::Low,
            bear_core::RiskLevel::Medium => Self::Medium,
            bear_core::RiskLevel::High => Self::High,
            bear_core::RiskLevel::Critical => Self::Critical,
        }
    }
}

/// What detection found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DetectResponse {
    /// In input order.
    pub findings: Vec<PiiFinding>,
    /// Findings per entity type.
    pub counts: BTreeMap<String, u32>,
    /// The risk level of what was found.
    pub risk: Risk,
}

/// Text to scrub.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScrubRequest {
    /// The text.
    pub text: String,
    /// `replace` (the default: `[EMAIL_1]`), `mask`, `hash`, `redact`, or `tokenize`
    /// (reversible tokens kept in the vault; needs the server's keyring).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub policy: Option<bear_core::PiiPolicy>,
}

/// Tokenised text to restore.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// Text holding vault tokens.
    pub text: String,
}

/// Restored text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RestoreResponse {
    /// The text with each known token replaced by its value; unknown tokens stay as they are.
    pub text: String,
}

/// Scrubbed text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScrubResponse {
    /// The text with each finding replaced as the policy says (`[EMAIL_1]`, ...).
    pub text: String,
    /// Findings per entity type.
    pub counts: BTreeMap<String, u32>,
    /// The risk level of what was found.
    pub risk: Risk,
}

/// Scrubs `req.text` with `scrubber`.
pub fn scrub(scrubber: &dyn bear_core::PiiScrubber, req: &ScrubRequest) -> Result<ScrubResponse> {
    let out = scrubber.scrub(&req.text)?;
    Ok(ScrubResponse {
        counts: out
            .counts
            .iter()
            .map(|(e, n)| (e.name().into_owned(), *n))
            .collect(),
        risk: out.risk.into(),
        text: out.text.expose().clone(),
    })
}

/// Detection over a text fed in chunks, keeping positions across them.
#[derive(Debug)]
pub struct Detection<'a> {
    detector: &'a Detector,
    show_values: bool,
    findings: Vec<PiiFinding>,
    counts: BTreeMap<PiiEntity, u32>,
    bytes: u64,
    chars: u64,
    line: u64,
    column: u64,
}

impl<'a> Detection<'a> {
    /// Detection with `detector`; values are kept only with `show_values`.
    pub fn new(detector: &'a Detector, show_values: bool) -> Self {
        Self {
            detector,
            show_values,
            findings: Vec::new(),
            counts: BTreeMap::new(),
            bytes: 0,
            chars: 0,
            line: 1,
            column: 0,
        }
    }

    /// Scans the next chunk (chunks end at line ends, so no PII spans two).
    pub fn feed(&mut self, text: &str) {
        let mut pos = 0;
        for f in self.detector.detect(text) {
            self.advance(&text[pos..f.start]);
            pos = f.start;
            *self.counts.entry(f.entity.clone()).or_insert(0) += 1;
            self.findings.push(PiiFinding {
                entity: f.entity.name().into_owned(),
                start: self.bytes + f.start as u64,
                end: self.bytes + f.end as u64,
                char_start: self.chars + f.char_start as u64,
                char_end: self.chars + f.char_end as u64,
                line: self.line,
                column: self.column + 1,
                score: f.score,
                recognizer: f.recognizer.to_string(),
                value: self.show_values.then(|| text[f.start..f.end].to_string()),
            });
        }
        self.advance(&text[pos..]);
        self.bytes += text.len() as u64;
        self.chars += text.chars().count() as u64;
    }

    /// Moves the line and column past `s`.
    fn advance(&mut self, s: &str) {
        for c in s.chars() {
            if c == '\n' {
                self.line += 1;
                self.column = 0;
            } else {
                self.column += 1;
            }
        }
    }

    /// The findings, counts and risk.
    pub fn finish(self) -> DetectResponse {
        let risk = bear_security::scrub::risk_of(&self.counts).into();
        DetectResponse {
            findings: self.findings,
            counts: self
                .counts
                .iter()
                .map(|(e, n)| (e.name().into_owned(), *n))
                .collect(),
            risk,
        }
    }
}

impl App {
    /// The PII detector for the configured rules, compiled once.
    pub fn detector(&self) -> Result<std::sync::Arc<Detector>> {
        if let Some(d) = self.detector.get() {
            return Ok(d.clone());
        }
        let d = std::sync::Arc::new(Detector::new(&self.config().config.pii)?);
        Ok(self.detector.get_or_init(|| d).clone())
    }

    /// Scrubs one text with `req.policy`, `replace` (placeholders such as `[PERSON_1]`) when
    /// none is asked for, whatever the collections use; new vault tokens are saved at once.
    pub fn scrub(&self, req: &ScrubRequest) -> Result<ScrubResponse> {
        let policy = req.policy.unwrap_or(bear_core::PiiPolicy::Replace);
        let out = scrub(&*self.scrubber_for(policy)?, req)?;
        if policy == bear_core::PiiPolicy::Tokenize
            && let Some(s) = self.scrubbers()
        {
            s.persist()?;
        }
        Ok(out)
    }

    /// Puts the values back for the vault's tokens in one text (needs the keyring).
    pub fn restore(&self, req: &RestoreRequest) -> Result<RestoreResponse> {
        let scrubber = self.scrubber_for(bear_core::PiiPolicy::Tokenize)?;
        Ok(RestoreResponse {
            text: scrubber.restore(&req.text)?,
        })
    }

    /// Finds the PII in one text.
    pub fn detect(&self, req: &DetectRequest) -> Result<DetectResponse> {
        let detector = self.detector()?;
        let mut d = Detection::new(&detector, req.show_values);
        d.feed(&req.text);
        Ok(d.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_carry_across_chunks() {
        let detector = Detector::new(&bear_core::PiiConfig::default()).unwrap();
        let one = "first line\ncall jan@example.com\n";
        let two = "x\nand piet@example.org today\n";
        let mut whole = Detection::new(&detector, true);
        whole.feed(&format!("{one}{two}"));
        let mut parts = Detection::new(&detector, true);
        parts.feed(one);
        parts.feed(two);
        let (whole, parts) = (whole.finish(), parts.finish());
        assert_eq!(whole, parts);
        assert_eq!(whole.counts.get("EMAIL"), Some(&2));
        let second = &whole.findings[1];
        assert_eq!((second.line, second.column), (4, 5));
        assert_eq!(second.value.as_deref(), Some("piet@example.org"));
    }
}
