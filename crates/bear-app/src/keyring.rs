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

/// The keyring, opened or made on a first run; see [`open_or_create`].
pub struct Unlocked {
    /// The open keyring.
    pub keyring: Keyring,
    /// The key file a first run generated for it (the front end says so once).
    pub created_key_file: Option<PathBuf>,
}

/// The one-line notice a front end prints when a first run made the keyring.
pub fn created_notice(key_file: &Path) -> String {
    format!(
        "note: BEAR encrypts your data with a key kept in {} (mode 0600); \
         run `bear keys passphrase` to protect it with a passphrase instead",
        key_file.display()
    )
}

/// Opens the configured keyring: with its key file (`security.key_file`, else `master.key`
/// beside the configuration) when it was made with one, else with the passphrase
/// `passphrase` gives (asked only then). A first run that finds no keyring makes one under a
/// newly generated key file without asking anything. A wrong key is
/// [`bear_security::Error::WrongKey`] before anything is read.
pub fn open_or_create(
    loaded: &LoadedConfig,
    passphrase: impl FnOnce() -> Result<bear_security::SecretBytes>,
) -> Result<Unlocked> {
    let sec = &loaded.config.security;
    let path = sec.keyring_path(&loaded.dirs);
    let key_file = sec.key_file_path(&loaded.dirs);
    if !path.exists() {
        // Two first runs at once (a server and a CLI command): the loser of each race opens
        // what the winner made.
        let created =
            (!key_file.exists() && create_key_file(&key_file).is_ok()).then(|| key_file.clone());
        match create(loaded, KeySource::KeyFile(key_file.clone())) {
            Ok(keyring) => {
                return Ok(Unlocked {
                    keyring,
                    created_key_file: created,
                });
            }
            Err(e) if !path.exists() => return Err(e),
            Err(_) => {}
        }
    }
    let source = match Keyring::kind(&path)? {
        bear_security::MasterKind::KeyFile => KeySource::KeyFile(key_file),
        bear_security::MasterKind::Passphrase => KeySource::Passphrase(passphrase()?),
    };
    Ok(Unlocked {
        keyring: Keyring::open(&path, source)?,
        created_key_file: None,
    })
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
    let (source, created_key_file) = source_of(master)?;
    let ring = create(loaded, source)?;
    Ok(KeysChanged {
        keyring: KeyringView::of(&ring),
        created_key_file,
    })
}

/// Creates the configured keyring under `source`, audited.
fn create(loaded: &LoadedConfig, source: KeySource) -> Result<Keyring> {
    let path = loaded.config.security.keyring_path(&loaded.dirs);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, e))?;
    }
    let ring = Keyring::create(&path, source)?;
    audit(loaded, "keys.init")?;
    Ok(ring)
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

/// Re-wraps every data key under a master key from `passphrase`; the generated key file (the
/// default one, when `security.key_file` names none) is then overwritten and removed, as it
/// no longer opens anything.
pub fn protect_with_passphrase(
    loaded: &LoadedConfig,
    ring: &mut Keyring,
    passphrase: bear_security::SecretBytes,
) -> Result<KeysChanged> {
    let changed = rotate_master(loaded, ring, NewMaster::Passphrase(passphrase))?;
    let sec = &loaded.config.security;
    if sec.key_file.is_none() {
        let generated = sec.key_file_path(&loaded.dirs);
        if generated.exists() {
            shred_file(&generated)?;
        }
    }
    Ok(changed)
}

/// Overwrites a small file with zeros, flushes it to disk and removes it.
fn shred_file(path: &Path) -> Result<()> {
    use std::io::Write;
    let len = std::fs::metadata(path)
        .map_err(|e| io_error("cannot read", path, e))?
        .len();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io_error("cannot overwrite", path, e))?;
    f.write_all(&vec![0u8; len as usize])
        .and_then(|()| f.sync_all())
        .map_err(|e| io_error("cannot overwrite", path, e))?;
    std::fs::remove_file(path).map_err(|e| io_error("cannot remove", path, e))
}
