//! PII vocabulary and the [`PiiScrubber`] trait.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Redacted, Result};

/// The kinds of personal data BEAR detects. Serialised as its [`PiiEntity::name`], so it can
/// key JSON maps.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

impl PiiEntity {
    /// The upper-case name used in tokens, reports and configuration (`US_SSN`, `PERSON`; a
    /// custom entity's own name).
    pub fn name(&self) -> std::borrow::Cow<'static, str> {
        use std::borrow::Cow::{Borrowed, Owned};
        match self {
            Self::Email => Borrowed("EMAIL"),
            Self::Phone => Borrowed("PHONE"),
            Self::UsSsn => Borrowed("US_SSN"),
            Self::CreditCard => Borrowed("CREDIT_CARD"),
            Self::Iban => Borrowed("IBAN"),
            Self::IpAddress => Borrowed("IP_ADDRESS"),
            Self::Url => Borrowed("URL"),
            Self::MacAddress => Borrowed("MAC_ADDRESS"),
            Self::Crypto => Borrowed("CRYPTO"),
            Self::DateOfBirth => Borrowed("DATE_OF_BIRTH"),
            Self::NlBsn => Borrowed("NL_BSN"),
            Self::NlRsin => Borrowed("NL_RSIN"),
            Self::UkNino => Borrowed("UK_NINO"),
            Self::Ecli => Borrowed("ECLI"),
            Self::Person => Borrowed("PERSON"),
            Self::Organization => Borrowed("ORGANIZATION"),
            Self::Custom(n) => Owned(n.clone()),
        }
    }

    /// Every built-in entity type.
    pub const BUILTIN: [PiiEntity; 16] = [
        Self::Email,
        Self::Phone,
        Self::UsSsn,
        Self::CreditCard,
        Self::Iban,
        Self::IpAddress,
        Self::Url,
        Self::MacAddress,
        Self::Crypto,
        Self::DateOfBirth,
        Self::NlBsn,
        Self::NlRsin,
        Self::UkNino,
        Self::Ecli,
        Self::Person,
        Self::Organization,
    ];

    /// The entity named `name` (as [`PiiEntity::name`] prints it); other names are custom.
    pub fn from_name(name: &str) -> Self {
        Self::BUILTIN
            .iter()
            .find(|e| e.name() == name)
            .cloned()
            .unwrap_or_else(|| Self::Custom(name.to_string()))
    }
}

impl Serialize for PiiEntity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for PiiEntity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(Self::from_name(&name))
    }
}

/// What scrubbing does to one kind of PII.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PiiPolicy {
    /// `[PERSON_1]`, numbered consistently within a document or session.
    Replace,
    /// Every letter and digit becomes `*`, but for the last digits of numbers.
    Mask,
    /// `[EMAIL_hash_…]`: a keyed HMAC-SHA256, stable for one key, not reversible.
    Hash,
    /// `[REDACTED]`.
    Redact,
    /// A vault-backed token; restoring puts the original back.
    Tokenize,
}

impl std::str::FromStr for PiiPolicy {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "replace" => Self::Replace,
            "mask" => Self::Mask,
            "hash" => Self::Hash,
            "redact" => Self::Redact,
            "tokenize" => Self::Tokenize,
            _ => {
                return Err(crate::Error::backend(
                    crate::ErrorKind::InvalidRequest,
                    "unknown policy: expected replace, mask, hash, redact or tokenize",
                ));
            }
        })
    }
}

/// How text input that is not valid UTF-8 is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvalidUtf8 {
    /// Refuse the input, naming the offset.
    Refuse,
    /// Replace invalid sequences with U+FFFD and process the rest.
    Replace,
}

/// A user-defined PII pattern (`[[pii.patterns]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomPattern {
    /// Entity name, reported as a custom entity; letters, digits and `_`.
    pub name: String,
    /// The regex (Rust `regex` syntax: linear time, no backreferences or look-around).
    pub pattern: String,
    /// Score of a match, 0..=1.
    #[serde(default = "default_custom_score")]
    pub score: f32,
}

fn default_custom_score() -> f32 {
    0.85
}

/// A list of terms that are always PII (`[[pii.deny_lists]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenyList {
    /// Entity name, reported as a custom entity.
    pub name: String,
    /// Terms, matched case-insensitively as whole words.
    pub terms: Vec<String>,
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
