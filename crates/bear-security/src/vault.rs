//! The token vault behind the reversible `tokenize` policy.
//!
//! A token is `[ENTITY_xxxxxxxxxxxx]`: the entity name and twelve letters `a`-`p` taken from
//! HMAC-SHA256(vault key, entity, value). Tokens are deterministic (the same value gets the
//! same token in every document under one keyring) and hold no digits, so no recognizer ever
//! matches one. Originals live in one mlock'ed, zeroized arena; the map holds only tokens and
//! offsets. On disk a vault is a sealed file (see [`crate::crypto`]) encrypted with one
//! keyring collection's data key: each matter keeps its own vault, sealed with the matter's
//! key (so destroying that key destroys its originals); tokens made outside any matter live
//! in the `vault` collection's.

use std::collections::HashMap;
use std::path::Path;
use std::sync::LazyLock;

use bear_core::PiiEntity;
use regex_automata::meta::Regex;
use ring::hmac;

use crate::crypto::{self, Keyring};
use crate::secret::SecretBytes;
use crate::{Error, Result};

/// The keyring collection that holds vault data keys.
pub const VAULT_COLLECTION: &str = "vault";

static TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\[[A-Z][A-Z0-9_]*_[a-p]{12,64}\]").expect("the token pattern compiles")
});

/// Maps tokens to originals. No `Debug`, no `Display`.
pub struct Vault {
    key: hmac::Key,
    collection: String,
    entries: HashMap<String, (usize, usize)>,
    arena: SecretBytes,
    dirty: bool,
    /// Tokens handed to another vault: not taken back from the file when saving merges.
    given_away: std::collections::HashSet<String>,
}

/// The first `n` nibbles of `bytes` as letters `a`-`p`: no digits, so no recognizer fires.
pub(crate) fn letters(bytes: &[u8], n: usize) -> String {
    bytes
        .iter()
        .flat_map(|b| [b >> 4, b & 0xF])
        .take(n)
        .map(|x| char::from(b'a' + x))
        .collect()
}

impl Vault {
    /// An empty vault whose tokens are keyed by `key`.
    pub fn new(key: hmac::Key) -> Self {
        Self {
            key,
            collection: VAULT_COLLECTION.into(),
            entries: HashMap::new(),
            arena: SecretBytes::with_capacity(4096),
            dirty: false,
            given_away: std::collections::HashSet::new(),
        }
    }

    /// An empty vault with a random key (tokens valid for this process only).
    pub fn ephemeral() -> Result<Self> {
        let k = SecretBytes::random(32)?;
        Ok(Self::new(hmac::Key::new(hmac::HMAC_SHA256, k.expose())))
    }

    /// Number of stored originals.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the vault is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether entries were added since the last load or save.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    fn value(&self, (off, len): (usize, usize)) -> &[u8] {
        &self.arena.expose()[off..off + len]
    }

    /// The token for `value`, storing it if new.
    pub fn tokenize(&mut self, entity: &PiiEntity, value: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(entity.name().as_bytes());
        ctx.update(&[0]);
        ctx.update(value.as_bytes());
        let tag = ctx.sign();
        let name = entity.name();
        // Twelve letters are 48 bits; on a collision with another value, use more.
        for n in [12, 20, 32, 64] {
            let token = format!("[{name}_{}]", letters(tag.as_ref(), n));
            match self.entries.get(&token) {
                Some(&span) if self.value(span) == value.as_bytes() => return token,
                Some(_) => continue,
                None => {
                    self.insert(token.clone(), value.as_bytes());
                    return token;
                }
            }
        }
        // 256 bits collided: cannot happen; fall back to a unique counter-derived token.
        let token = format!(
            "[{name}_{}]",
            letters(&(self.entries.len() as u64).to_be_bytes(), 16)
        );
        self.insert(token.clone(), value.as_bytes());
        token
    }

    fn insert(&mut self, token: String, value: &[u8]) {
        let off = self.arena.len();
        self.arena.extend_from_slice(value);
        self.entries.insert(token, (off, value.len()));
        self.dirty = true;
    }

    /// Copies into this vault the originals of the tokens in `text` that `from` holds and
    /// this vault lacks; how many.
    pub fn adopt(&mut self, from: &Vault, text: &str) -> usize {
        let mut adopted = 0;
        for m in TOKEN.find_iter(text) {
            let token = &text[m.start()..m.end()];
            if self.entries.contains_key(token) {
                continue;
            }
            if let Some(&span) = from.entries.get(token) {
                let value = from.value(span).to_vec();
                self.insert(token.to_string(), &value);
                adopted += 1;
            }
        }
        adopted
    }

    /// Drops `tokens` from this vault (they were adopted by a matter's own); a later save
    /// leaves them out even if the file still has them.
    pub fn give_away<'a>(&mut self, tokens: impl IntoIterator<Item = &'a str>) {
        for t in tokens {
            if self.entries.remove(t).is_some() {
                self.dirty = true;
            }
            self.given_away.insert(t.to_string());
        }
    }

    /// Whether this vault holds `token`.
    pub fn contains(&self, token: &str) -> bool {
        self.entries.contains_key(token)
    }

    /// The tokens this vault holds.
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Replaces every known token in `text` by its original; unknown tokens stay.
    pub fn restore(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for m in TOKEN.find_iter(text) {
            if let Some(&span) = self.entries.get(&text[m.start()..m.end()]) {
                out.push_str(&text[last..m.start()]);
                out.push_str(std::str::from_utf8(self.value(span)).unwrap_or_default());
                last = m.end();
            }
        }
        out.push_str(&text[last..]);
        out
    }

    /// Loads the vault file at `path` (an absent file is an empty vault), sealed under the
    /// `vault` collection's key.
    pub fn load(path: &Path, keyring: &Keyring) -> Result<Self> {
        Self::load_in(path, keyring, VAULT_COLLECTION)
    }

    /// Loads the vault file at `path` sealed under `collection`'s data key (an absent file is
    /// an empty vault); [`Self::save`] seals it under the same key.
    pub fn load_in(path: &Path, keyring: &Keyring, collection: &str) -> Result<Self> {
        let mut v = Self::new(keyring.hmac_key("bear-vault-token-v1"));
        v.collection = collection.into();
        v.merge_file(path, keyring)?;
        v.dirty = false;
        Ok(v)
    }

    /// Adds the entries of the vault file at `path` that this vault lacks.
    fn merge_file(&mut self, path: &Path, keyring: &Keyring) -> Result<()> {
        if !path.exists() {
            return Ok(());
        }
        for (token, value) in crypto::read_sealed(path, keyring, &self.collection)? {
            if !TOKEN.is_match(&token) || std::str::from_utf8(value.expose()).is_err() {
                return Err(Error::Integrity {
                    what: path.display().to_string(),
                    reason: "a vault entry is malformed".into(),
                });
            }
            if !self.entries.contains_key(&token) && !self.given_away.contains(&token) {
                self.insert(token, value.expose());
            }
        }
        Ok(())
    }

    /// Writes the vault to `path`, sealed, atomically. bear-server and CLI commands share one
    /// vault file: under an exclusive lock on `<path>.lock`, the entries another process saved
    /// since this vault was loaded are merged in first (tokens are deterministic, so the
    /// union never conflicts), and none is lost.
    pub fn save(&mut self, path: &Path, keyring: &mut Keyring) -> Result<()> {
        let _lock = crypto::lock_file(&crypto::lock_path(path))?;
        if path.exists() {
            keyring.reload()?;
            self.merge_file(path, keyring)?;
        }
        let mut entries: Vec<(&String, &(usize, usize))> = self.entries.iter().collect();
        entries.sort_by_key(|(_, span)| span.0);
        let records: Vec<(&str, &[u8])> = entries
            .into_iter()
            .map(|(t, &span)| (t.as_str(), self.value(span)))
            .collect();
        crypto::write_sealed(path, keyring, &self.collection, records)?;
        self.dirty = false;
        Ok(())
    }
}
