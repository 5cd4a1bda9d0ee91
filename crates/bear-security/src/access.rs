//! Access control primitives: API keys and roles.
//!
//! A key is 256 random bits shown once as `bear_<64 hex>`; the store keeps only its SHA-256
//! (a 256-bit random secret needs no salt or stretching). Presented keys are hashed and compared
//! against every stored hash in constant time, without early exit.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ring::digest;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::crypto::write_atomic;
use crate::secret::SecretBytes;
use crate::{Error, Result};

const PREFIX: &str = "bear_";

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including keys, configuration and the audit log.
    Admin,
    /// Read and write data: ingest, query, generate, scrub.
    User,
    /// Read only: query and list.
    ReadOnly,
}

/// A permission checked at the API boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Query, list, read results.
    Read,
    /// Ingest documents, run models and workflows, scrub.
    Write,
    /// Manage keys, configuration, plugins and the audit log.
    Admin,
}

impl Role {
    /// Whether this role has `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        match self {
            Self::Admin => true,
            Self::User => matches!(permission, Permission::Read | Permission::Write),
            Self::ReadOnly => permission == Permission::Read,
        }
    }
}

impl std::str::FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "admin" => Ok(Self::Admin),
            "user" => Ok(Self::User),
            "read-only" | "read_only" | "readonly" => Ok(Self::ReadOnly),
            _ => Err(Error::Setting {
                key: "role".into(),
                expected: "admin, user or read-only".into(),
            }),
        }
    }
}

/// A freshly made API key, to be shown once. No `Debug`, no `Display`.
pub struct ApiKey(SecretBytes);

impl ApiKey {
    /// The key as the user types it: `bear_` and 64 hex digits.
    pub fn reveal(&self) -> String {
        format!("{PREFIX}{}", hex::encode(self.0.expose()))
    }
}

/// What the store keeps about a key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRecord {
    /// Public identifier (the first 12 hex digits of the hash), for logs and revocation.
    pub id: String,
    /// The role.
    pub role: Role,
    /// A label chosen by the admin.
    pub label: String,
    /// Hex SHA-256 of the key bytes.
    pub hash: String,
    /// Unix time of creation, milliseconds.
    pub created_ms: u64,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    keys: Vec<ApiKeyRecord>,
}

/// The API key store, a JSON file of hashes.
pub struct ApiKeyStore {
    path: PathBuf,
    file: StoreFile,
    /// `file.keys[i].hash`, decoded once (`None` for a malformed entry, which never matches).
    decoded: Vec<Option<[u8; 32]>>,
}

fn decode_all(keys: &[ApiKeyRecord]) -> Vec<Option<[u8; 32]>> {
    keys.iter()
        .map(|k| {
            let mut h = [0u8; 32];
            hex::decode_to_slice(&k.hash, &mut h).ok().map(|()| h)
        })
        .collect()
}

fn hash_of(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

impl ApiKeyStore {
    /// Opens the store at `path` (absent means empty).
    pub fn open(path: &Path) -> Result<Self> {
        let file = match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|_| Error::format(path, "not a BEAR API key store"))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StoreFile::default(),
            Err(e) => return Err(Error::io("cannot read", path, e)),
        };
        Ok(Self {
            path: path.into(),
            decoded: decode_all(&file.keys),
            file,
        })
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key with public id `id`, if it is in force.
    pub fn get(&self, id: &str) -> Option<&ApiKeyRecord> {
        self.file.keys.iter().find(|r| r.id == id)
    }

    /// The stored keys (hashes only).
    pub fn list(&self) -> &[ApiKeyRecord] {
        &self.file.keys
    }

    /// Makes a key with `role`, stores its hash, and returns it for showing once.
    pub fn create(&mut self, role: Role, label: &str) -> Result<(ApiKey, ApiKeyRecord)> {
        let key = SecretBytes::random(32)?;
        let hash = hash_of(key.expose());
        let record = ApiKeyRecord {
            id: hex::encode(&hash[..6]),
            role,
            label: label.into(),
            hash: hex::encode(hash),
            created_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        };
        self.update(|file| {
            file.keys.push(record.clone());
            true
        })?;
        Ok((ApiKey(key), record))
    }

    /// Removes the key with `id`. Returns whether it existed.
    pub fn revoke(&mut self, id: &str) -> Result<bool> {
        self.update(|file| {
            let before = file.keys.len();
            file.keys.retain(|k| k.id != id);
            file.keys.len() != before
        })
    }

    /// Applies `change` to the store as it is on disk now, under an exclusive lock on
    /// `<path>.lock`, and saves it when `change` says it changed something: two `bear keys`
    /// commands at once both keep their change.
    fn update(&mut self, change: impl FnOnce(&mut StoreFile) -> bool) -> Result<bool> {
        let _lock = crate::crypto::lock_file(&crate::crypto::lock_path(&self.path))?;
        *self = Self::open(&self.path)?;
        let changed = change(&mut self.file);
        self.decoded = decode_all(&self.file.keys);
        if changed {
            self.save()?;
        }
        Ok(changed)
    }

    fn save(&self) -> Result<()> {
        let json = serde_json::to_vec_pretty(&self.file).map_err(|_| Error::Crypto("key store"))?;
        write_atomic(&self.path, &json, true)
    }

    /// The record of the presented key, compared in constant time against every stored hash.
    pub fn verify(&self, presented: &str) -> Result<&ApiKeyRecord> {
        let denied = || Error::Denied("missing or unknown API key".into());
        let hex_part = presented.strip_prefix(PREFIX).ok_or_else(denied)?;
        let mut raw = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut raw).map_err(|_| denied())?;
        let h = hash_of(&raw);
        zeroize::Zeroize::zeroize(&mut raw);
        let mut found = None;
        for (k, stored) in self.file.keys.iter().zip(&self.decoded) {
            if let Some(stored) = stored
                && bool::from(stored.ct_eq(&h))
                && found.is_none()
            {
                found = Some(k);
            }
        }
        found.ok_or_else(denied)
    }

    /// [`ApiKeyStore::verify`] plus a permission check.
    pub fn authorize(&self, presented: &str, permission: Permission) -> Result<&ApiKeyRecord> {
        let k = self.verify(presented)?;
        if k.role.allows(permission) {
            Ok(k)
        } else {
            Err(Error::Denied(format!(
                "API key {} ({:?}) lacks the {permission:?} permission",
                k.id, k.role
            )))
        }
    }
}
