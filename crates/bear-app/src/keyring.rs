//! The keyring as the user manages it (`bear keys init|rotate|status`): where it lives, which
//! key file the configuration names, creating a new key file, and an audit record for every
//! change. Reading a passphrase at a terminal is the front end's part; it hands over a
//! [`KeySource`].

use std::path::{Path, PathBuf};

use bear_security::{KeySource, Keyring, KeyringStatus, MasterKey};
use serde::Serialize;

use crate::{LoadedConfig, Result, Viewer};

/// The keyring and how its memory is held: `bear keys status`.
#[derive(Debug, Clone, Serialize)]
pub struct KeyringView {
    /// The keyring file, its master key source and each collection's keys.
    #[serde(flatten)]
    pub status: KeyringStatus,
    /// Whether key material is locked in memory (`RLIMIT_MEMLOCK` may refuse it).
    pub mlock: bool,
}

impl KeyringView {
    /// The view of `ring`.
    pub fn of(ring: &Keyring) -> Self {
        Self {
            status: ring.status(),
            mlock: !bear_security::secret::mlock_refused(),
        }
    }
}

/// The key file to use: the one given, else `security.key_file`; `None` means a passphrase.
pub fn key_file(loaded: &LoadedConfig, given: Option<PathBuf>) -> Option<PathBuf> {
    given.or_else(|| loaded.config.security.key_file.clone())
}

/// Opens the configured keyring with the key `source` gives (asked only when the keyring
/// exists); a missing keyring says how to make one.
pub fn open(loaded: &LoadedConfig, source: impl FnOnce() -> Result<KeySource>) -> Result<Keyring> {
    let path = loaded.config.security.keyring_path(&loaded.dirs);
    if !path.exists() {
        return Err(bear_security::Error::NoKeyring { path }.into());
    }
    Ok(Keyring::open(&path, source()?)?)
}

/// Where a new master key comes from.
pub enum NewMaster {
    /// A key file, created (mode 0600) when it does not exist.
    KeyFile(PathBuf),
    /// A passphrase (the front end asked for it twice).
    Passphrase(bear_security::SecretBytes),
}

impl std::fmt::Debug for NewMaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::KeyFile(p) => f.debug_tuple("KeyFile").field(p).finish(),
            Self::Passphrase(_) => f.write_str("Passphrase(..)"),
        }
    }
}

/// A key change done: the keyring after it, and the key file made for it, if one was.
#[derive(Debug, Clone, Serialize)]
pub struct KeysChanged {
    /// The keyring now.
    #[serde(flatten)]
    pub keyring: KeyringView,
    /// A key file created for the new master key: back it up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_key_file: Option<PathBuf>,
}

fn source_of(new: NewMaster) -> Result<(KeySource, Option<PathBuf>)> {
    match new {
        NewMaster::Passphrase(p) => Ok((KeySource::Passphrase(p), None)),
        NewMaster::KeyFile(f) => {
            let created = (!f.exists()).then(|| f.clone());
            if created.is_some() {
                create_key_file(&f)?;
            }
            Ok((KeySource::KeyFile(f), created))
        }
    }
}

fn create_key_file(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, e))?;
    }
    Ok(MasterKey::generate_key_file(path)?)
}

fn io_error(action: &'static str, path: &Path, e: std::io::Error) -> crate::Error {
    bear_security::Error::Io {
        action,
        path: path.into(),
        source: e,
    }
    .into()
}

fn audit(loaded: &LoadedConfig, action: &str) -> Result<()> {
    crate::audit::record_once(loaded, &Viewer::Local, action)
}

/// Creates the keyring under a new master key.
pub fn init(loaded: &LoadedConfig, master: NewMaster) -> Result<KeysChanged> {
    let path = loaded.config.security.keyring_path(&loaded.dirs);
    let (source, created_key_file) = source_of(master)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, e))?;
    }
    let ring = Keyring::create(&path, source)?;
    audit(loaded, "keys.init")?;
    Ok(KeysChanged {
        keyring: KeyringView::of(&ring),
        created_key_file,
    })
}

/// Gives `collection` a new data key; older ones are kept to read older data.
pub fn rotate(loaded: &LoadedConfig, ring: &mut Keyring, collection: &str) -> Result<KeysChanged> {
    ring.rotate(collection)?;
    audit(loaded, "keys.rotate")?;
    Ok(KeysChanged {
        keyring: KeyringView::of(ring),
        created_key_file: None,
    })
}

/// Re-wraps every data key under a new master key.
pub fn rotate_master(
    loaded: &LoadedConfig,
    ring: &mut Keyring,
    master: NewMaster,
) -> Result<KeysChanged> {
    let (source, created_key_file) = source_of(master)?;
    ring.rotate_master(source)?;
    audit(loaded, "keys.rotate_master")?;
    Ok(KeysChanged {
        keyring: KeyringView::of(ring),
        created_key_file,
    })
}
