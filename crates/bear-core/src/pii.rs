//! PII vocabulary and the [`PiiScrubber`] trait.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Redacted, Result};

/// The kinds of personal data BEAR detects.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum PiiEntity {
    /// An email address.
    Email,
    /// A telephone number.
    Phone,
    /// A US social security number.
    UsSsn,
    /// A payment card number.
    CreditCard,
    /// An international bank account number.
    Iban,
    /// An IPv4 or IPv6 address.
    IpAddress,
    /// A URL.
    Url,
    /// A MAC address.
    MacAddress,
    /// A cryptocurrency address.
    Crypto,
    /// A date of birth.
    DateOfBirth,
    /// A Dutch citizen service number.
    NlBsn,
    /// A Dutch legal-entity tax number.
    NlRsin,
    /// A UK national insurance number.
    UkNino,
    /// A European case-law identifier.
    Ecli,
    /// A person's name.
    Person,
    /// An organisation's name.
    Organization,
    /// A user-defined pattern or deny-list entry.
    Custom(String),
}

/// How much harm the text would do if it leaked, from what was found in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskLevel {
    /// Nothing, or only low-value identifiers.
    Low,
    /// Contact details or names.
    Medium,
    /// Government or financial identifiers.
    High,
    /// Several high-risk identifiers together.
    Critical,
}

/// The result of scrubbing one text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScrubOutcome {
    /// The text with PII replaced according to policy.
    #[serde(with = "crate::generation::redacted_string")]
    pub text: Redacted<String>,
    /// How many findings of each type were scrubbed.
    pub counts: BTreeMap<PiiEntity, u32>,
    /// The risk level of the original text.
    pub risk: RiskLevel,
}

/// Finds and removes PII from text.
///
/// Implemented by bear-security's scrubber. Called by bear-rag before text is embedded or
/// stored, by bear-agents for `pii_scrub` steps, and by bear-api.
///
/// Callers may assume:
/// - scanning the returned text again finds none of the scrubbed types;
/// - with a reversible policy, [`PiiScrubber::restore`] of the scrubbed text gives back the
///   original exactly; with an irreversible one it returns the text unchanged;
/// - neither method logs or returns the original values anywhere but in `restore`'s result.
pub trait PiiScrubber: Send + Sync {
    /// Scrubs `text` with the scrubber's configured policy.
    fn scrub(&self, text: &str) -> Result<ScrubOutcome>;

    /// Puts originals back in place of reversible tokens found in `text`.
    fn restore(&self, text: &str) -> Result<String>;
}
