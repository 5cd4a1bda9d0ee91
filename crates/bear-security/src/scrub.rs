//! Scrubbing: a policy per entity type, consistent numbering within a session, the keyed
//! hash, the reversible vault, risk levels, and streaming over inputs larger than memory.
//!
//! Replacement texts (`[PERSON_1]`, `[EMAIL_hash_…]`, `[IBAN_tokenletters]`, `[REDACTED]`,
//! `****1234`) are chosen so that no recognizer matches them: entity names are followed by `_`
//! (so whole-word deny terms never fire inside them) and hashes and tokens are letters only.
//! After replacing, the text is scanned again and anything a replacement newly exposed (a
//! number whose neighbour was replaced) is scrubbed too, so rescanning scrubbed text finds
//! nothing of a scrubbed type.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};

use std::sync::{Arc, Mutex};

use bear_core::{
    InvalidUtf8, PiiConfig, PiiEntity, PiiPolicy as Policy, PiiScrubber, Redacted, RiskLevel,
    ScrubOutcome,
};
use ring::hmac;
use serde::Serialize;

use crate::detect::{Detector, Finding};
use crate::secret::SecretBytes;
use crate::vault::Vault;
use crate::{Error, Result};

/// Numbering state for one document or conversation: the same value gets the same number.
/// Values are held only as keyed hashes.
pub struct Session {
    key: hmac::Key,
    seen: HashMap<(PiiEntity, [u8; 32]), u32>,
    next: HashMap<PiiEntity, u32>,
}

impl Session {
    /// A fresh session.
    pub fn new() -> Result<Self> {
        let k = SecretBytes::random(32)?;
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, k.expose()),
            seen: HashMap::new(),
            next: HashMap::new(),
        })
    }

    fn number(&mut self, entity: &PiiEntity, value: &str) -> u32 {
        let canon: String = value
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        let mut id = [0u8; 32];
        id.copy_from_slice(hmac::sign(&self.key, canon.as_bytes()).as_ref());
        if let Some(&n) = self.seen.get(&(entity.clone(), id)) {
            return n;
        }
        let n = self.next.entry(entity.clone()).or_insert(0);
        *n += 1;
        let n = *n;
        self.seen.insert((entity.clone(), id), n);
        n
    }
}

/// The result of scrubbing one text.
#[derive(Serialize)]
pub struct Scrubbed {
    /// The scrubbed text.
    #[serde(skip)]
    pub text: String,
    /// Findings scrubbed, per entity type.
    pub counts: BTreeMap<PiiEntity, u32>,
    /// Risk of the original text.
    pub risk: RiskLevel,
}

/// Entity types whose leak is serious on its own.
fn is_high(e: &PiiEntity) -> bool {
    matches!(
        e,
        PiiEntity::UsSsn
            | PiiEntity::CreditCard
            | PiiEntity::Iban
            | PiiEntity::NlBsn
            | PiiEntity::NlRsin
            | PiiEntity::UkNino
            | PiiEntity::Crypto
    )
}

/// Risk from the counts per type: several high-risk identifiers together, or one with a name or
/// birth date, is critical.
pub fn risk_of(counts: &BTreeMap<PiiEntity, u32>) -> RiskLevel {
    let high = counts.keys().filter(|e| is_high(e)).count();
    let identity =
        counts.contains_key(&PiiEntity::Person) || counts.contains_key(&PiiEntity::DateOfBirth);
    let medium = counts.keys().any(|e| {
        matches!(
            e,
            PiiEntity::Email
                | PiiEntity::Phone
                | PiiEntity::Person
                | PiiEntity::DateOfBirth
                | PiiEntity::Custom(_)
        )
    });
    if high >= 2 || (high == 1 && identity) {
        RiskLevel::Critical
    } else if high == 1 {
        RiskLevel::High
    } else if medium {
        RiskLevel::Medium
    } else {
        RiskLevel::Low
    }
}

fn keeps_tail(e: &PiiEntity) -> bool {
    matches!(
        e,
        PiiEntity::Phone
            | PiiEntity::CreditCard
            | PiiEntity::Iban
            | PiiEntity::UsSsn
            | PiiEntity::NlBsn
            | PiiEntity::NlRsin
    )
}

/// What a streamed scrub did.
#[derive(Debug, Default, Serialize)]
pub struct StreamReport {
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Findings scrubbed, per entity type.
    pub counts: BTreeMap<PiiEntity, u32>,
    /// Risk of the whole input.
    pub risk: Option<RiskLevel>,
    /// Invalid UTF-8 sequences replaced.
    pub replaced_invalid_utf8: u64,
}

/// Chunk size for streaming: chunks end at a newline (or whitespace) at or after this size.
pub const STREAM_CHUNK: usize = 1 << 20;

/// The scrubber: detector, policies, hash key and (for `tokenize`) the vault.
pub struct Scrubber {
    detector: Arc<Detector>,
    config: PiiConfig,
    hash_key: hmac::Key,
    vault: Option<Arc<Mutex<Vault>>>,
    /// Also restores from this vault (tokens a matter made before it had its own vault).
    fallback: Option<Arc<Mutex<Vault>>>,
}

impl Scrubber {
    /// A scrubber. `hash_key` keys the `hash` policy (use the keyring's so hashes are stable);
    /// `vault` is required when any policy is `tokenize`.
    pub fn new(
        detector: Arc<Detector>,
        config: PiiConfig,
        hash_key: hmac::Key,
        vault: Option<Arc<Mutex<Vault>>>,
    ) -> Result<Self> {
        let tokenizes = config.default_policy == Policy::Tokenize
            || config.policies.values().any(|p| *p == Policy::Tokenize);
        if tokenizes && vault.is_none() {
            return Err(Error::Setting {
                key: "pii.policy".into(),
                expected: "a vault for the tokenize policy (open the keyring first)".into(),
            });
        }
        Ok(Self {
            detector,
            config,
            hash_key,
            vault,
            fallback: None,
        })
    }

    /// Also restores tokens found in `vault` (new tokens still go to this scrubber's own).
    pub fn restoring_also(mut self, vault: Option<Arc<Mutex<Vault>>>) -> Self {
        self.fallback = vault;
        self
    }

    /// A scrubber with `config`'s rules and the `replace` policy for every entity
    /// (`[PERSON_1]` placeholders): no keyring or vault needed, nothing reversible handed out.
    /// For plugins, workflow steps and API callers.
    pub fn replacing(config: &PiiConfig) -> Result<Self> {
        let mut config = config.clone();
        config.default_policy = Policy::Replace;
        config.policies.clear();
        let detector = Arc::new(Detector::new(&config)?);
        Self::new(detector, config, crate::crypto::ephemeral_hmac_key()?, None)
    }

    /// The detector.
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    fn replacement(&self, f: &Finding, value: &str, session: &mut Session) -> String {
        let name = f.entity.name();
        match self.config.policy_for(&f.entity) {
            Policy::Replace => format!("[{name}_{}]", session.number(&f.entity, value)),
            Policy::Redact => "[REDACTED]".into(),
            Policy::Hash => {
                let mut ctx = hmac::Context::with_key(&self.hash_key);
                ctx.update(name.as_bytes());
                ctx.update(&[0]);
                ctx.update(value.as_bytes());
                let letters = crate::vault::letters(ctx.sign().as_ref(), 20);
                format!("[{name}_hash_{letters}]")
            }
            Policy::Tokenize => match &self.vault {
                Some(v) => v
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .tokenize(&f.entity, value),
                None => "[REDACTED]".into(),
            },
            Policy::Mask => {
                let keep = if keeps_tail(&f.entity) {
                    self.config.mask_keep
                } else {
                    0
                };
                let total = value.chars().filter(|c| c.is_alphanumeric()).count();
                let mut seen = 0;
                value
                    .chars()
                    .map(|c| {
                        if c.is_alphanumeric() {
                            seen += 1;
                            if seen + keep > total { c } else { '*' }
                        } else {
                            c
                        }
                    })
                    .collect()
            }
        }
    }

    fn apply(&self, text: &str, findings: &[Finding], session: &mut Session) -> String {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for f in findings {
            out.push_str(&text[last..f.start]);
            out.push_str(&self.replacement(f, &text[f.start..f.end], session));
            last = f.end;
        }
        out.push_str(&text[last..]);
        out
    }

    /// Scrubs `text`, numbering within `session`.
    pub fn scrub_with(&self, text: &str, session: &mut Session) -> Result<Scrubbed> {
        let findings = self.detector.detect(text);
        let mut counts = BTreeMap::new();
        for f in &findings {
            *counts.entry(f.entity.clone()).or_insert(0) += 1;
        }
        let risk = risk_of(&counts);
        let mut out = self.apply(text, &findings, session);
        // Replacing can expose a neighbour (a digit run no longer glued to another); scrub
        // until a rescan is clean. Each round removes at least one finding, and replacements
        // are never findings, so this ends quickly.
        for _ in 0..16 {
            let again = self.detector.detect(&out);
            if again.is_empty() {
                return Ok(Scrubbed {
                    text: out,
                    counts,
                    risk,
                });
            }
            for f in &again {
                *counts.entry(f.entity.clone()).or_insert(0) += 1;
            }
            out = self.apply(&out, &again, session);
        }
        Err(Error::Crypto("scrubbing did not converge"))
    }

    /// Puts originals back in place of vault tokens.
    pub fn restore(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in self.vault.iter().chain(&self.fallback) {
            out = v
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .restore(&out);
        }
        out
    }

    /// Scrubs a stream chunk by chunk (see [`for_each_chunk`]), so inputs larger than memory
    /// work; numbering is consistent across chunks through `session`.
    pub fn scrub_stream(
        &self,
        input: impl Read,
        mut output: impl Write,
        invalid: InvalidUtf8,
        session: &mut Session,
    ) -> Result<StreamReport> {
        let mut report = StreamReport::default();
        let mut max_risk = RiskLevel::Low;
        let replaced = for_each_chunk(input, invalid, |text| {
            let s = self.scrub_with(text, session)?;
            output
                .write_all(s.text.as_bytes())
                .map_err(|e| Error::io("cannot write", "<output>", e))?;
            report.bytes_in += text.len() as u64;
            report.bytes_out += s.text.len() as u64;
            for (e, n) in s.counts {
                *report.counts.entry(e).or_insert(0) += n;
            }
            max_risk = max_risk.max(s.risk);
            Ok::<(), Error>(())
        })?;
        output
            .flush()
            .map_err(|e| Error::io("cannot write", "<output>", e))?;
        report.replaced_invalid_utf8 = replaced;
        report.risk = Some(risk_of(&report.counts).max(max_risk));
        Ok(report)
    }
}

/// Feeds `input` to `f` in UTF-8 chunks of about [`STREAM_CHUNK`] bytes that end at a newline
/// (or, on a huge line, at whitespace), so memory stays bounded whatever the input size. NUL
/// bytes make the input [`Error::Binary`]; invalid UTF-8 is refused ([`Error::InvalidUtf8`]
/// with its offset) or replaced with U+FFFD per `invalid`. Returns how many invalid sequences
/// were replaced. Nothing of a chunk reaches `f` before the chunk has been checked.
pub fn for_each_chunk<E: From<Error>>(
    mut input: impl Read,
    invalid: InvalidUtf8,
    mut f: impl FnMut(&str) -> std::result::Result<(), E>,
) -> std::result::Result<u64, E> {
    let mut buf: Vec<u8> = Vec::with_capacity(STREAM_CHUNK * 2);
    let mut eof = false;
    let mut offset = 0u64;
    let mut replaced = 0u64;
    while !eof || !buf.is_empty() {
        while !eof && buf.len() < STREAM_CHUNK {
            let start = buf.len();
            buf.resize(start + STREAM_CHUNK, 0);
            let n = loop {
                match input.read(&mut buf[start..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::io("cannot read", "<input>", e).into()),
                }
            };
            buf.truncate(start + n);
            eof = n == 0;
        }
        let cut = if eof { buf.len() } else { split_point(&buf) };
        let chunk = &buf[..cut];
        if let Some(p) = memchr_nul(chunk) {
            return Err(Error::Binary {
                offset: offset + p as u64,
            }
            .into());
        }
        match std::str::from_utf8(chunk) {
            Ok(t) => f(t)?,
            Err(e) => match invalid {
                InvalidUtf8::Refuse => {
                    return Err(Error::InvalidUtf8 {
                        offset: offset + e.valid_up_to() as u64,
                    }
                    .into());
                }
                InvalidUtf8::Replace => {
                    let lossy = String::from_utf8_lossy(chunk);
                    replaced +=
                        lossy.matches('\u{FFFD}').count() as u64 - count_fffd_in_valid(chunk);
                    f(&lossy)?;
                }
            },
        }
        offset += cut as u64;
        buf.drain(..cut);
    }
    Ok(replaced)
}

fn memchr_nul(b: &[u8]) -> Option<usize> {
    b.iter().position(|&x| x == 0)
}

/// U+FFFD characters that were already in the input (not replacements).
fn count_fffd_in_valid(b: &[u8]) -> u64 {
    b.windows(3).filter(|w| *w == [0xEF, 0xBF, 0xBD]).count() as u64
}

/// Where to end a chunk: after the last newline, else after the last ASCII whitespace, else
/// at a character boundary near the end.
fn split_point(buf: &[u8]) -> usize {
    if let Some(p) = buf.iter().rposition(|&b| b == b'\n') {
        return p + 1;
    }
    if let Some(p) = buf.iter().rposition(|b| b.is_ascii_whitespace()) {
        return p + 1;
    }
    let mut p = buf.len();
    // Back up over UTF-8 continuation bytes (at most 3) to a character start.
    while p > 0 && buf.len() - p < 4 && (buf[p - 1] & 0xC0) == 0x80 {
        p -= 1;
    }
    if p > 0 && buf[p - 1] >= 0xC0 {
        p -= 1;
    }
    if p == 0 { buf.len() } else { p }
}

impl PiiScrubber for Scrubber {
    fn scrub(&self, text: &str) -> bear_core::Result<ScrubOutcome> {
        let mut session = Session::new()?;
        let s = self.scrub_with(text, &mut session)?;
        Ok(ScrubOutcome {
            text: Redacted::new(s.text),
            counts: s.counts,
            risk: s.risk,
        })
    }

    fn restore(&self, text: &str) -> bear_core::Result<String> {
        Ok(Scrubber::restore(self, text))
    }
}

/// Scrubbers for collections that each chose a policy, sharing one detector and, when a
/// keyring is open, its hash key and the token vault. For long-running processes (the server)
/// that serve collections with different policies.
pub struct PolicyScrubbers {
    config: PiiConfig,
    detector: Arc<Detector>,
    hash_key: hmac::Key,
    keyring: Option<Mutex<crate::Keyring>>,
    vault: Option<(Arc<Mutex<Vault>>, std::path::PathBuf)>,
    built: Mutex<Vec<(Policy, Arc<Scrubber>)>>,
    /// Each matter's own vault (its file beside its tables) and tokenizing scrubber.
    matters: Mutex<HashMap<String, MatterVault>>,
}

/// A matter's vault, where it is kept, and the scrubber that tokenizes into it.
struct MatterVault {
    vault: Arc<Mutex<Vault>>,
    path: std::path::PathBuf,
    scrubber: Arc<Scrubber>,
}

impl std::fmt::Debug for PolicyScrubbers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyScrubbers")
            .field("keyring", &self.keyring.is_some())
            .finish_non_exhaustive()
    }
}

impl PolicyScrubbers {
    /// Scrubbers with `config`'s rules. With `keyring` (and the vault file at `vault_path`),
    /// `hash` is keyed by the keyring and `tokenize` is available; without, `hash` uses a
    /// key for this process only and `tokenize` is refused.
    pub fn new(
        config: &PiiConfig,
        keyring: Option<crate::Keyring>,
        vault_path: &std::path::Path,
    ) -> Result<Self> {
        let detector = Arc::new(Detector::new(config)?);
        let (hash_key, vault) = match &keyring {
            Some(k) => (
                k.hmac_key("bear-scrub-hash-v1"),
                Some((
                    Arc::new(Mutex::new(Vault::load(vault_path, k)?)),
                    vault_path.to_path_buf(),
                )),
            ),
            None => (crate::crypto::ephemeral_hmac_key()?, None),
        };
        Ok(Self {
            config: config.clone(),
            detector,
            hash_key,
            keyring: keyring.map(Mutex::new),
            vault,
            built: Mutex::new(Vec::new()),
            matters: Mutex::new(HashMap::new()),
        })
    }

    /// Whether a keyring keys these scrubbers (`tokenize` is available).
    pub fn has_keyring(&self) -> bool {
        self.keyring.is_some()
    }

    /// `collection`'s keys for sealed files from the keyring (made when `create` is set and
    /// it has none); [`Error::NoKeyring`]-like `Setting` error without a keyring.
    pub fn file_keys(&self, collection: &str, create: bool) -> Result<crate::FileKeys> {
        let Some(keyring) = &self.keyring else {
            return Err(Error::Setting {
                key: "keyring".into(),
                expected: "an open keyring to read and write sealed collections".into(),
            });
        };
        let mut k = keyring.lock().unwrap_or_else(|e| e.into_inner());
        if create {
            k.file_keys(collection)
        } else {
            k.existing_file_keys(collection)
        }
    }

    /// Destroys `collection`'s data keys (crypto-shredding), with them its vault, and forgets
    /// its vault here; nothing to do without a keyring.
    pub fn shred(&self, collection: &str) -> Result<bool> {
        self.matters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(collection);
        match &self.keyring {
            Some(k) => k
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .delete_collection(collection),
            None => Ok(false),
        }
    }

    /// The scrubber applying `policy` to every entity.
    pub fn get(&self, policy: Policy) -> Result<Arc<Scrubber>> {
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, s)) = built.iter().find(|(p, _)| *p == policy) {
            return Ok(s.clone());
        }
        if policy == Policy::Tokenize && self.vault.is_none() {
            return Err(Error::Setting {
                key: "pii policy tokenize".into(),
                expected: "an open keyring: start with BEAR_PASSPHRASE or security.key_file \
                           set, or use a collection with another policy"
                    .into(),
            });
        }
        let mut config = self.config.clone();
        config.default_policy = policy;
        config.policies.clear();
        let scrubber = Arc::new(Scrubber::new(
            self.detector.clone(),
            config,
            self.hash_key.clone(),
            self.vault.as_ref().map(|(v, _)| v.clone()),
        )?);
        built.push((policy, scrubber.clone()));
        Ok(scrubber)
    }

    /// The `tokenize` scrubber of matter `collection`: its tokens go to the matter's own vault,
    /// kept at `vault_path` and sealed under the matter's data key; tokens it made before it
    /// had one are still restored from the shared vault.
    pub fn tokenizer_for(
        &self,
        collection: &str,
        vault_path: &std::path::Path,
    ) -> Result<Arc<Scrubber>> {
        let mut matters = self.matters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = matters.get(collection) {
            return Ok(m.scrubber.clone());
        }
        let shared = self.get(Policy::Tokenize)?;
        let keyring = self.keyring.as_ref().ok_or(Error::Setting {
            key: "pii policy tokenize".into(),
            expected: "an open keyring".into(),
        })?;
        let vault = {
            let k = keyring.lock().unwrap_or_else(|e| e.into_inner());
            Arc::new(Mutex::new(Vault::load_in(vault_path, &k, collection)?))
        };
        let scrubber = Arc::new(
            Scrubber::new(
                self.detector.clone(),
                shared.config.clone(),
                self.hash_key.clone(),
                Some(vault.clone()),
            )?
            .restoring_also(shared.vault.clone()),
        );
        matters.insert(
            collection.to_string(),
            MatterVault {
                vault,
                path: vault_path.to_path_buf(),
                scrubber: scrubber.clone(),
            },
        );
        Ok(scrubber)
    }

    /// Moves into matter `collection`'s own vault (at `vault_path`) the shared vault's tokens
    /// found in `texts` (what the matter stores), saves it, then drops them from the shared
    /// vault and saves that: a matter from before per-matter vaults keeps its originals with
    /// it, and its deletion destroys them. A kill between the saves leaves the tokens in both;
    /// a re-run finishes. How many tokens moved.
    pub fn adopt_shared_tokens<'a>(
        &self,
        collection: &str,
        vault_path: &std::path::Path,
        texts: impl IntoIterator<Item = &'a str>,
    ) -> Result<usize> {
        let Some((shared, _)) = &self.vault else {
            return Ok(0);
        };
        self.tokenizer_for(collection, vault_path)?;
        let own = self
            .matters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(collection)
            .map(|m| m.vault.clone())
            .ok_or(Error::Crypto("matter vault"))?;
        let moved: Vec<String> = {
            let from = shared.lock().unwrap_or_else(|e| e.into_inner());
            let mut to = own.lock().unwrap_or_else(|e| e.into_inner());
            for t in texts {
                to.adopt(&from, t);
            }
            // Those adopted now, and by an earlier run cut short: in both vaults still.
            to.tokens()
                .filter(|t| from.contains(t))
                .map(str::to_string)
                .collect()
        };
        self.persist()?;
        shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .give_away(moved.iter().map(String::as_str));
        self.persist()?;
        Ok(moved.len())
    }

    /// Saves new vault tokens, the shared vault's and each matter's (sealed under the
    /// keyring, flushed to disk); nothing to do without a keyring.
    pub fn persist(&self) -> Result<()> {
        let Some(keyring) = &self.keyring else {
            return Ok(());
        };
        let save = |vault: &Mutex<Vault>, path: &std::path::Path| -> Result<()> {
            let mut v = vault.lock().unwrap_or_else(|e| e.into_inner());
            if v.is_dirty() {
                let mut k = keyring.lock().unwrap_or_else(|e| e.into_inner());
                v.save(path, &mut k)?;
            }
            Ok(())
        };
        if let Some((vault, path)) = &self.vault {
            save(vault, path)?;
        }
        let matters: Vec<(Arc<Mutex<Vault>>, std::path::PathBuf)> = self
            .matters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|m| (m.vault.clone(), m.path.clone()))
            .collect();
        for (vault, path) in matters {
            save(&vault, &path)?;
        }
        Ok(())
    }
}
