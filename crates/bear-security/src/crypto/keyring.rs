//! The keyring: the master key (from a passphrase or a key file), per-collection data keys
//! wrapped by it, message counters reserved on disk, rotation and crypto-shredding.

use super::*;

/// The 256-bit master key. No `Debug`, no `Display`; zeroized on drop.
pub struct MasterKey(SecretBytes);

impl MasterKey {
    /// Derives the master key from a passphrase with PBKDF2-HMAC-SHA256.
    pub fn from_passphrase(passphrase: &SecretBytes, salt: &[u8], iterations: u32) -> Result<Self> {
        let iterations = NonZeroU32::new(iterations.max(PBKDF2_ITERATIONS))
            .ok_or(Error::Crypto("PBKDF2 iterations"))?;
        let mut key = SecretBytes::with_capacity(32);
        key.extend_from_slice(&[0u8; 32]);
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            salt,
            passphrase.expose(),
            key.expose_mut(),
        );
        Ok(Self(key))
    }

    /// Reads a key file: exactly 32 bytes, mode 0600 or stricter.
    pub fn from_key_file(path: &Path) -> Result<Self> {
        let meta =
            std::fs::metadata(path).map_err(|e| Error::io("cannot read key file", path, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(Error::KeyFilePermissions {
                    path: path.into(),
                    mode,
                });
            }
        }
        if meta.len() != 32 {
            return Err(Error::format(path, "a key file must hold exactly 32 bytes"));
        }
        let mut raw =
            std::fs::read(path).map_err(|e| Error::io("cannot read key file", path, e))?;
        let key = SecretBytes::from_slice(&raw);
        raw.zeroize();
        Ok(Self(key))
    }

    /// Writes a new random key file with mode 0600; refuses to overwrite one.
    pub fn generate_key_file(path: &Path) -> Result<()> {
        let key = SecretBytes::random(32)?;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(path)
            .map_err(|e| Error::io("cannot create key file", path, e))?;
        f.write_all(key.expose())
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io("cannot write key file", path, e))
    }

    fn aead(&self) -> Result<LessSafeKey> {
        aead_key(self.0.expose())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringFile {
    version: u32,
    kdf: Kdf,
    /// `nonce || sealed(CHECK_PLAINTEXT)` under the master key.
    check: String,
    /// The keyed-hash key, wrapped.
    hash_key: String,
    collections: BTreeMap<String, CollectionKeys>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "alg", rename_all = "kebab-case", deny_unknown_fields)]
enum Kdf {
    Pbkdf2HmacSha256 { iterations: u32, salt: String },
    KeyFile,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CollectionKeys {
    keys: Vec<WrappedKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WrappedKey {
    id: u32,
    wrapped: String,
    /// Messages reserved on disk (an upper bound of those sealed).
    reserved: u64,
    retired: bool,
}

/// What a keyring's master key comes from, read without unlocking it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MasterKind {
    /// A passphrase.
    Passphrase,
    /// A key file.
    KeyFile,
}

/// Status of one collection's keys, for `bear keys status`.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionStatus {
    /// The collection.
    pub name: String,
    /// The key new messages are sealed with.
    pub current_key: u32,
    /// Keys kept only to decrypt older data.
    pub retired_keys: usize,
    /// Messages the current key may have sealed (reserved upper bound).
    pub messages: u64,
}

/// Status of the keyring, for `bear keys status`.
#[derive(Debug, Clone, Serialize)]
pub struct KeyringStatus {
    /// The keyring file.
    pub path: PathBuf,
    /// `passphrase` or `key-file`.
    pub master_key_source: &'static str,
    /// PBKDF2 iterations, for passphrase keyrings.
    pub pbkdf2_iterations: Option<u32>,
    /// Collections and their keys.
    pub collections: Vec<CollectionStatus>,
}

struct LiveKey {
    key: LessSafeKey,
    /// The next message number of this process's reserved block.
    used: u64,
    /// The end of the block (exclusive): reserved on disk for this process alone.
    end: u64,
}

/// The unlocked keyring.
pub struct Keyring {
    path: PathBuf,
    master: MasterKey,
    file: KeyringFile,
    hash_key: SecretBytes,
    live: BTreeMap<(String, u32), LiveKey>,
    rotate_after: u64,
}

fn wrap_aad(collection: &str, id: u32) -> Vec<u8> {
    format!("bear-dek-v1\0{collection}\0{id}").into_bytes()
}

fn decode_hex(s: &str, what: &str, path: &Path) -> Result<Vec<u8>> {
    hex::decode(s).map_err(|_| Error::format(path, format!("{what} is not hex")))
}

impl Keyring {
    /// Creates a new keyring at `path`; refuses to overwrite an existing one.
    pub fn create(path: &Path, source: KeySource) -> Result<Self> {
        if path.exists() {
            return Err(Error::Setting {
                key: "keyring".into(),
                expected: format!(
                    "no existing keyring at {} (one was made on the first run: `bear keys passphrase` or `bear keys rotate --master` changes its master key)",
                    path.display()
                ),
            });
        }
        let ring = Self::create_in_memory(path, source, SecretBytes::random(32)?)?;
        let _lock = lock_file(&lock_path(path))?;
        if path.exists() {
            return Err(Error::Setting {
                key: "keyring".into(),
                expected: format!("no existing keyring at {}", path.display()),
            });
        }
        ring.save()?;
        Ok(ring)
    }

    /// Opens the keyring at `path`. A wrong passphrase or key file gives [`Error::WrongKey`];
    /// a damaged file gives [`Error::Format`] or [`Error::Integrity`].
    pub fn open(path: &Path, source: KeySource) -> Result<Self> {
        let file = read_keyring(path)?;
        let master = match (&file.kdf, source) {
            (Kdf::Pbkdf2HmacSha256 { iterations, salt }, KeySource::Passphrase(p)) => {
                if *iterations < PBKDF2_ITERATIONS {
                    return Err(Error::format(
                        path,
                        "PBKDF2 iteration count below the minimum",
                    ));
                }
                let salt = decode_hex(salt, "salt", path)?;
                MasterKey::from_passphrase(&p, &salt, *iterations)?
            }
            (Kdf::KeyFile, KeySource::KeyFile(f)) => MasterKey::from_key_file(&f)?,
            (Kdf::KeyFile, KeySource::Passphrase(_)) => {
                return Err(Error::Setting {
                    key: "keyring".into(),
                    expected: "a key file (this keyring was created with one; pass --key-file)"
                        .into(),
                });
            }
            (Kdf::Pbkdf2HmacSha256 { .. }, KeySource::KeyFile(_)) => {
                return Err(Error::Setting {
                    key: "keyring".into(),
                    expected: "a passphrase (this keyring was created with one)".into(),
                });
            }
        };
        let aead = master.aead()?;
        let check = decode_hex(&file.check, "check", path)?;
        match open_raw(&aead, b"bear-keyring-check", &check) {
            Some(p) if p.expose() == CHECK_PLAINTEXT => {}
            _ => return Err(Error::WrongKey { path: path.into() }),
        }
        let hk = decode_hex(&file.hash_key, "hash key", path)?;
        let hash_key = open_raw(&aead, b"bear-hash-key", &hk).ok_or_else(|| Error::Integrity {
            what: path.display().to_string(),
            reason: "the wrapped hash key does not authenticate".into(),
        })?;
        Ok(Self {
            path: path.into(),
            master,
            file,
            hash_key,
            live: BTreeMap::new(),
            rotate_after: ROTATE_AFTER,
        })
    }

    /// Whether the keyring at `path` opens with a passphrase or a key file.
    pub fn kind(path: &Path) -> Result<MasterKind> {
        Ok(match read_keyring(path)?.kdf {
            Kdf::Pbkdf2HmacSha256 { .. } => MasterKind::Passphrase,
            Kdf::KeyFile => MasterKind::KeyFile,
        })
    }

    /// Rotates data keys after `messages` messages instead of [`ROTATE_AFTER`] (a stricter
    /// policy; larger values are clamped to [`ROTATE_AFTER`]).
    pub fn with_rotation_limit(mut self, messages: u64) -> Self {
        self.rotate_after = messages.clamp(1, ROTATE_AFTER);
        self
    }

    /// The keyring's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An HMAC-SHA256 key derived for `purpose` from the keyring's hash key (stable across
    /// runs, so keyed hashes and vault tokens are consistent).
    pub fn hmac_key(&self, purpose: &str) -> hmac::Key {
        let base = hmac::Key::new(hmac::HMAC_SHA256, self.hash_key.expose());
        let derived = hmac::sign(&base, purpose.as_bytes());
        hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
    }

    /// Runs `change` on the keyring as it is on disk now, under an exclusive lock on
    /// `<keyring>.lock`, and saves the result. bear-server and CLI commands share one keyring:
    /// each change starts from the others' latest (a data key another process made is kept,
    /// a collection it shredded stays shredded, counters are reserved in separate blocks).
    fn update<T>(&mut self, change: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let _lock = lock_file(&lock_path(&self.path))?;
        self.refresh()?;
        let out = change(self)?;
        self.save()?;
        Ok(out)
    }

    /// Re-reads the keyring file under its lock (data keys another process made since this
    /// handle last read it become usable here).
    pub(crate) fn reload(&mut self) -> Result<()> {
        let _lock = lock_file(&lock_path(&self.path))?;
        self.refresh()
    }

    /// Re-reads the keyring file, keeping this handle's master key and live data keys (those
    /// still in the file). A keyring whose master key another process changed no longer opens
    /// with this one: [`Error::WrongKey`].
    fn refresh(&mut self) -> Result<()> {
        let path = &self.path;
        let file = read_keyring(path)?;
        if file.check != self.file.check || file.hash_key != self.file.hash_key {
            return Err(Error::WrongKey { path: path.clone() });
        }
        self.live.retain(|(c, id), _| {
            file.collections
                .get(c)
                .is_some_and(|k| k.keys.iter().any(|w| w.id == *id))
        });
        self.file = file;
        Ok(())
    }

    /// Writes the keyring atomically, overwriting the old copy's bytes (a shredded data key
    /// does not stay readable in it).
    fn save(&self) -> Result<()> {
        let json = serde_json::to_vec_pretty(&self.file)
            .map_err(|_| Error::Crypto("keyring serialisation"))?;
        write_atomic_overwriting(&self.path, &json, true)
    }

    fn unwrap_key(&self, collection: &str, w: &WrappedKey) -> Result<LessSafeKey> {
        aead_key(self.unwrap_raw(collection, w)?.expose())
    }

    fn unwrap_raw(&self, collection: &str, w: &WrappedKey) -> Result<SecretBytes> {
        let sealed = decode_hex(&w.wrapped, "wrapped key", &self.path)?;
        let raw = open_raw(&self.master.aead()?, &wrap_aad(collection, w.id), &sealed).ok_or_else(
            || Error::Integrity {
                what: self.path.display().to_string(),
                reason: format!(
                    "data key {} of collection `{collection}` does not authenticate",
                    w.id
                ),
            },
        )?;
        Ok(raw)
    }

    /// `collection`'s data keys for segmented files ([`FileKeys`]): the current key seals new
    /// files (made now if the collection has none), retired ones still open older files.
    pub fn file_keys(&mut self, collection: &str) -> Result<FileKeys> {
        let has_current = |ring: &Self| {
            ring.file
                .collections
                .get(collection)
                .is_some_and(|c| c.keys.iter().any(|k| !k.retired))
        };
        if !has_current(self) {
            self.update(|ring| {
                if has_current(ring) {
                    Ok(())
                } else {
                    ring.new_data_key(collection)
                }
            })?;
        }
        self.existing_file_keys(collection)
    }

    /// [`Self::file_keys`] without making a key: a collection without one is gone
    /// ([`Error::NoDataKey`]). A key another process made since this handle read the keyring
    /// (a collection it created) is found by reading the file again.
    pub fn existing_file_keys(&mut self, collection: &str) -> Result<FileKeys> {
        if !self.file.collections.contains_key(collection) {
            self.reload()?;
        }
        let keys = self
            .file
            .collections
            .get(collection)
            .ok_or_else(|| Error::NoDataKey {
                collection: collection.into(),
            })?;
        let current = keys
            .keys
            .iter()
            .find(|k| !k.retired)
            .ok_or_else(|| Error::NoDataKey {
                collection: collection.into(),
            })?
            .id;
        let mut raw = BTreeMap::new();
        for w in &keys.keys {
            raw.insert(w.id, self.unwrap_raw(collection, w)?);
        }
        Ok(FileKeys::new(collection, current, raw))
    }

    fn new_data_key(&mut self, collection: &str) -> Result<()> {
        let keys = self.file.collections.entry(collection.into()).or_default();
        let id = keys.keys.iter().map(|k| k.id + 1).max().unwrap_or(1);
        for k in &mut keys.keys {
            k.retired = true;
        }
        let raw = SecretBytes::random(32)?;
        let wrapped = seal_raw(
            &self.master.aead()?,
            &wrap_aad(collection, id),
            raw.expose(),
        )?;
        let keys = self.file.collections.entry(collection.into()).or_default();
        keys.keys.push(WrappedKey {
            id,
            wrapped: hex::encode(wrapped),
            reserved: 0,
            retired: false,
        });
        Ok(())
    }

    /// Makes a new data key for `collection`; older keys stay for decryption only.
    pub fn rotate(&mut self, collection: &str) -> Result<()> {
        self.update(|ring| ring.new_data_key(collection))
    }

    /// Re-wraps every data key and the hash key under a new master key.
    pub fn rotate_master(&mut self, source: KeySource) -> Result<()> {
        let _lock = lock_file(&lock_path(&self.path))?;
        self.refresh()?;
        let mut next = Self::create_in_memory(&self.path, source, self.hash_key.clone())?;
        let aead = next.master.aead()?;
        for (name, keys) in &self.file.collections {
            let mut out = CollectionKeys::default();
            for w in &keys.keys {
                let sealed = decode_hex(&w.wrapped, "wrapped key", &self.path)?;
                let raw = open_raw(&self.master.aead()?, &wrap_aad(name, w.id), &sealed)
                    .ok_or_else(|| Error::Integrity {
                        what: self.path.display().to_string(),
                        reason: format!("data key {} of `{name}` does not authenticate", w.id),
                    })?;
                out.keys.push(WrappedKey {
                    id: w.id,
                    wrapped: hex::encode(seal_raw(&aead, &wrap_aad(name, w.id), raw.expose())?),
                    reserved: w.reserved,
                    retired: w.retired,
                });
            }
            next.file.collections.insert(name.clone(), out);
        }
        next.rotate_after = self.rotate_after;
        next.save()?;
        *self = next;
        Ok(())
    }

    /// A keyring for `source` holding `hash_key`, not yet saved.
    fn create_in_memory(path: &Path, source: KeySource, hash_key: SecretBytes) -> Result<Self> {
        let (master, kdf) = match source {
            KeySource::Passphrase(p) => {
                let mut salt = [0u8; 16];
                rng_fill(&mut salt)?;
                (
                    MasterKey::from_passphrase(&p, &salt, PBKDF2_ITERATIONS)?,
                    Kdf::Pbkdf2HmacSha256 {
                        iterations: PBKDF2_ITERATIONS,
                        salt: hex::encode(salt),
                    },
                )
            }
            KeySource::KeyFile(f) => (MasterKey::from_key_file(&f)?, Kdf::KeyFile),
        };
        let aead = master.aead()?;
        Ok(Self {
            path: path.into(),
            file: KeyringFile {
                version: KEYRING_VERSION,
                kdf,
                check: hex::encode(seal_raw(&aead, b"bear-keyring-check", CHECK_PLAINTEXT)?),
                hash_key: hex::encode(seal_raw(&aead, b"bear-hash-key", hash_key.expose())?),
                collections: BTreeMap::new(),
            },
            master,
            hash_key,
            live: BTreeMap::new(),
            rotate_after: ROTATE_AFTER,
        })
    }

    /// Destroys `collection`'s data keys (crypto-shredding). Returns whether it had any.
    pub fn delete_collection(&mut self, collection: &str) -> Result<bool> {
        let had = self.update(|ring| Ok(ring.file.collections.remove(collection).is_some()))?;
        self.live.retain(|(c, _), _| c != collection);
        Ok(had)
    }

    /// Status for display; holds no key material.
    pub fn status(&self) -> KeyringStatus {
        let (source, iterations) = match &self.file.kdf {
            Kdf::Pbkdf2HmacSha256 { iterations, .. } => ("passphrase", Some(*iterations)),
            Kdf::KeyFile => ("key-file", None),
        };
        KeyringStatus {
            path: self.path.clone(),
            master_key_source: source,
            pbkdf2_iterations: iterations,
            collections: self
                .file
                .collections
                .iter()
                .map(|(name, k)| {
                    let current = k.keys.iter().find(|k| !k.retired);
                    CollectionStatus {
                        name: name.clone(),
                        current_key: current.map_or(0, |k| k.id),
                        retired_keys: k.keys.iter().filter(|k| k.retired).count(),
                        messages: current.map_or(0, |k| k.reserved),
                    }
                })
                .collect(),
        }
    }

    /// Seals one message for `collection` with its current data key (made on first use,
    /// rotated when worn). Returns the key id and `nonce || ciphertext || tag`.
    pub fn seal(&mut self, collection: &str, aad: &[u8], plain: &[u8]) -> Result<(u32, Vec<u8>)> {
        // This process's block of the current key, while it lasts and the key is current here.
        let current = self
            .file
            .collections
            .get(collection)
            .and_then(|c| c.keys.iter().find(|k| !k.retired))
            .map(|k| k.id);
        let room = current.filter(|&id| {
            self.live
                .get(&(collection.to_string(), id))
                .is_some_and(|l| l.used < l.end && l.used < self.rotate_after)
        });
        let id = match room {
            Some(id) => id,
            None => self.reserve(collection)?,
        };
        let live = self
            .live
            .get_mut(&(collection.to_string(), id))
            .ok_or(Error::Crypto("live key"))?;
        live.used += 1;
        Ok((id, seal_raw(&live.key, aad, plain)?))
    }

    /// Reserves a block of messages on disk for this process (under the keyring's lock, from
    /// the file as it is now), on the current key of `collection`, made or rotated when
    /// missing or worn. Returns the key's id; its live entry starts at the block.
    fn reserve(&mut self, collection: &str) -> Result<u32> {
        let rotate_after = self.rotate_after;
        let (id, start, end) = self.update(|ring| {
            let current = ring
                .file
                .collections
                .get(collection)
                .and_then(|c| c.keys.iter().find(|k| !k.retired))
                .filter(|k| k.reserved < rotate_after)
                .map(|k| k.id);
            let id = match current {
                Some(id) => id,
                None => {
                    ring.new_data_key(collection)?;
                    ring.file.collections[collection]
                        .keys
                        .iter()
                        .find(|k| !k.retired)
                        .ok_or(Error::Crypto("new data key"))?
                        .id
                }
            };
            let k = ring
                .file
                .collections
                .get_mut(collection)
                .and_then(|c| c.keys.iter_mut().find(|k| k.id == id))
                .ok_or(Error::Crypto("data key"))?;
            let start = k.reserved;
            k.reserved = start + RESERVE_BLOCK.min(rotate_after);
            Ok((id, start, k.reserved))
        })?;
        let live_key = (collection.to_string(), id);
        let key = match self.live.remove(&live_key) {
            Some(l) => l.key,
            None => {
                let w = self.file.collections[collection]
                    .keys
                    .iter()
                    .find(|k| k.id == id)
                    .ok_or(Error::Crypto("data key"))?;
                self.unwrap_key(collection, w)?
            }
        };
        self.live.insert(
            live_key,
            LiveKey {
                key,
                used: start,
                end,
            },
        );
        Ok(id)
    }

    /// Opens a message sealed by [`Keyring::seal`].
    pub fn open_sealed(
        &self,
        collection: &str,
        key_id: u32,
        aad: &[u8],
        sealed: &[u8],
        what: &str,
    ) -> Result<SecretBytes> {
        let keys = self
            .file
            .collections
            .get(collection)
            .ok_or_else(|| Error::NoDataKey {
                collection: collection.into(),
            })?;
        let w = keys
            .keys
            .iter()
            .find(|k| k.id == key_id)
            .ok_or_else(|| Error::NoDataKey {
                collection: collection.into(),
            })?;
        let key = match self.live.get(&(collection.to_string(), key_id)) {
            Some(l) => open_raw(&l.key, aad, sealed),
            None => open_raw(&self.unwrap_key(collection, w)?, aad, sealed),
        };
        key.ok_or_else(|| Error::Integrity {
            what: what.into(),
            reason: "a record does not authenticate".into(),
        })
    }
}

/// Reads and parses the keyring file at `path`.
fn read_keyring(path: &Path) -> Result<KeyringFile> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NoKeyring { path: path.into() });
        }
        Err(e) => return Err(Error::io("cannot read keyring", path, e)),
    };
    let file: KeyringFile = serde_json::from_str(&text).map_err(|e| {
        Error::format(
            path,
            format!(
                "not a BEAR keyring (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    if file.version != KEYRING_VERSION {
        return Err(Error::format(
            path,
            format!("keyring version {} is not supported", file.version),
        ));
    }
    Ok(file)
}
