//! bear-app: BEAR's application layer. Every user-facing operation exists here once, as an
//! async method of [`App`] taking one request type and returning one response type; the CLI,
//! the REST API and the web app (through REST) are surfaces over it.
//!
//! Layer **L4**: it depends on the backends below (bear-models, bear-rag, bear-security,
//! bear-plugins, bear-hw) and on bear-core; bear-cli and bear-api sit above it and make no
//! domain decision of their own.
//!
//! Invariants:
//! - Limits, defaults, filters, chat-template rules and token restoration are decided here and
//!   nowhere else (`ONE_ANSWER`: a test runs each operation through `bear --json` and REST and
//!   compares the JSON).
//! - Wire types (`*Request`, `*Response`) are named structs with OpenAPI schemas; `bear --json`
//!   prints the same structs REST serialises.
//! - Errors carry no user text; [`ErrorBody`] is the one JSON shape of an error everywhere.
//! - bear-app opens no network connection and starts no server.

pub mod agents;
pub mod audit;
pub mod calls;
pub mod chats;
pub mod check;
pub mod config;
pub mod control;
pub mod docs;
pub mod embed;
mod error;
pub mod extract;
pub mod generate;
pub mod grid;
pub mod history;
pub mod hw;
pub mod ingest;
pub mod keyring;
pub mod keys;
pub mod migrate;
pub mod models;
pub mod pii;
pub mod plugins;
pub mod rag;
pub mod redact;
pub mod review;
pub mod runs;
mod sealed_list;
pub mod ui;
pub mod uploads;
pub mod watch;
pub mod workflows;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bear_core::{Embedder, ModelId, PiiPolicy, PiiScrubber};
use bear_models::{ManagerConfig, ModelManager};
use bear_rag::{Collection, Store};
use bear_security::{Keyring, PolicyScrubbers};

pub use bear_models::reexec_with_openmp_env;
pub use config::{LoadedConfig, load as load_config};
pub use error::{Error, ErrorBody, ErrorDetail, Result};

/// How an [`App`] reaches the keyring that `tokenize` and `hash` need.
pub enum Keys {
    /// Opened once by the caller, or absent (the server: no terminal to prompt at). Without
    /// one, `tokenize` collections are refused with a message saying what to set.
    Opened(Option<Box<Keyring>>),
    /// Opened the first time a policy needs it (the CLI, which may prompt for the passphrase).
    OnDemand(Box<dyn Fn() -> Result<Keyring> + Send + Sync>),
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Opened(Some(_)) => "Keys::Opened(keyring)",
            Self::Opened(None) => "Keys::Opened(none)",
            Self::OnDemand(_) => "Keys::OnDemand",
        })
    }
}

/// Who is asking: the local user sees every collection; an API key sees what it owns, and an
/// admin key everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// The user at this machine (the CLI).
    Local,
    /// A REST caller.
    Key {
        /// The key's id, recorded as the owner of what it creates.
        id: String,
        /// Admins see everything.
        admin: bool,
    },
}

impl Viewer {
    /// Whether this viewer may see something owned by `owner` (a local, unowned object only
    /// the local user and admins).
    pub fn may_see(&self, owner: Option<&str>) -> bool {
        match self {
            Self::Local => true,
            Self::Key { id, admin } => *admin || owner == Some(id.as_str()),
        }
    }
}

/// The keyring entry whose data key seals the on-disk result cache (not a collection name:
/// those start with a letter or digit).
pub const CACHE_KEYS: &str = "@cache";

/// A matter's token vault, in its collection directory.
pub const VAULT_FILE: &str = "vault.sealed";

/// The application: the configuration and the backends built from it, once.
pub struct App {
    loaded: LoadedConfig,
    models: Arc<ModelManager>,
    store: Store,
    scrubbers: Arc<Scrubbers>,
    detector: std::sync::OnceLock<Arc<bear_security::Detector>>,
    audit: std::sync::OnceLock<Arc<bear_security::audit::AuditLog>>,
    ocr: std::sync::OnceLock<Option<Arc<dyn bear_core::Ocr>>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

impl App {
    /// The application over `loaded`, with `models` and the keyring reached through `keys`.
    pub fn new(loaded: LoadedConfig, models: Arc<ModelManager>, keys: Keys) -> Result<Self> {
        let scrubbers = Arc::new(Scrubbers::new(&loaded, keys)?);
        let mut store = Store::from_config(&loaded.config.rag, &loaded.dirs);
        if scrubbers.seals() {
            let s = scrubbers.clone();
            store = store.sealed_with(Arc::new(move |c: &str, create: bool| {
                s.file_keys(c, create).map_err(|e| match e {
                    Error::Security(e) => bear_core::Error::from(e),
                    Error::Core(e) => e,
                    other => bear_core::Error::backend(other.kind(), other.to_string()),
                })
            }));
        }
        if let Some(s) = scrubbers.built().filter(|s| s.has_keyring()) {
            models.seal_cache(s.file_keys(CACHE_KEYS, true)?);
        }
        Ok(Self {
            loaded,
            models,
            store,
            scrubbers,
            detector: std::sync::OnceLock::new(),
            audit: std::sync::OnceLock::new(),
            ocr: std::sync::OnceLock::new(),
        })
    }

    /// The data keys of sealed collection `collection`.
    pub(crate) fn file_keys(&self, collection: &str) -> Result<bear_security::FileKeys> {
        self.scrubbers.file_keys(collection, false)
    }

    /// Whether data is sealed (a keyring is open or can be opened).
    pub(crate) fn scrubbers_seal(&self) -> bool {
        self.scrubbers.seals()
    }

    /// The data keys kept in the keyring under `name`, made if there are none.
    pub(crate) fn keys_for(&self, name: &str) -> Result<bear_security::FileKeys> {
        self.scrubbers.file_keys(name, true)
    }

    /// Destroys `collection`'s data keys when collections are sealed (crypto-shredding), and
    /// the result cache's with them: cached answers and vectors are not kept per matter, so
    /// the whole cache goes (it is only a cache) and a new key seals it from then on.
    pub(crate) fn shred(&self, collection: &str) -> Result<bool> {
        let shredded = self.scrubbers.shred(collection)?;
        if shredded {
            self.scrubbers.shred(CACHE_KEYS)?;
            self.models.seal_cache(self.keys_for(CACHE_KEYS)?);
            self.models.clear_cache();
        }
        Ok(shredded)
    }

    /// The configuration in force.
    pub fn config(&self) -> &LoadedConfig {
        &self.loaded
    }

    /// The model manager.
    pub fn models(&self) -> &Arc<ModelManager> {
        &self.models
    }

    /// The document collections.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The scrubber applying `policy`, with the keyring and vault it needs.
    pub fn scrubber_for(&self, policy: PiiPolicy) -> Result<Arc<dyn PiiScrubber>> {
        self.scrubbers.get(policy)
    }

    /// The scrubber of collection `c`: its policy's, and for a sealed matter that tokenizes,
    /// one whose tokens go to the matter's own vault ([`VAULT_FILE`] beside its tables, sealed
    /// under its key, destroyed with it).
    pub fn scrubber_of(&self, c: &bear_rag::Collection) -> Result<Arc<dyn PiiScrubber>> {
        let policy = c.meta().pii_policy;
        if policy != PiiPolicy::Tokenize || !c.meta().sealed {
            return self.scrubber_for(policy);
        }
        let vault = c.dir().join(VAULT_FILE);
        Ok(self
            .scrubbers
            .keyed()?
            .tokenizer_for(&c.meta().name, &vault)?)
    }

    /// The scrubbers with the keyring open (opening it if need be).
    pub(crate) fn keyed_scrubbers(&self) -> Result<Arc<PolicyScrubbers>> {
        self.scrubbers.keyed()
    }

    /// The scrubbers built so far (to save new vault tokens after writing).
    pub fn scrubbers(&self) -> Option<Arc<PolicyScrubbers>> {
        self.scrubbers.built()
    }

    /// The embedder `id`, loaded on the blocking pool if it is not resident.
    pub async fn embedder(&self, id: &str) -> Result<Arc<dyn Embedder>> {
        let id = ModelId::new(id)?;
        let models = self.models.clone();
        tokio::task::spawn_blocking(move || models.embedder(&id))
            .await
            .map_err(|_| internal("the model load stopped unexpectedly"))?
            .map_err(Error::from)
    }

    /// Collection `name` (the configured default when `None`), if `viewer` may see it;
    /// otherwise not found, as if it did not exist.
    pub async fn collection(&self, viewer: &Viewer, name: Option<&str>) -> Result<Collection> {
        let name = name.unwrap_or(&self.loaded.config.rag.default_collection);
        self.visible_meta(viewer, name)?;
        Ok(self.store.open(name).await?)
    }

    /// What collection `name` records about itself, if `viewer` may see it (else the same
    /// not-found error as for a collection that does not exist), without opening its tables.
    pub(crate) fn visible_meta(
        &self,
        viewer: &Viewer,
        name: &str,
    ) -> Result<bear_rag::CollectionMeta> {
        let missing = || {
            Error::Core(bear_core::Error::backend(
                bear_core::ErrorKind::NotFound,
                format!("no collection `{name}`; the collections list shows those there are"),
            ))
        };
        bear_rag::store::check_name(name).map_err(|_| missing())?;
        if !self.store.exists(name) {
            return Err(missing());
        }
        let meta = self.store.meta(name)?;
        if viewer.may_see(meta.owner.as_deref()) {
            Ok(meta)
        } else {
            Err(missing())
        }
    }
}

/// The model manager the configuration asks for. A `server` also caches deterministic results
/// on disk (if another BEAR process holds that file, the manager runs without it and says so
/// in the log, rather than not at all) and serves `models.parallel` requests per model at once;
/// a command serves one at a time unless `models.parallel` is set.
pub fn open_models(loaded: &LoadedConfig, server: bool) -> Result<ModelManager> {
    use bear_hw::Probe as _;
    let machine = bear_hw::SysProbe.probe(&loaded.dirs.data_dir);
    let config = ManagerConfig::from_config(&loaded.config, &loaded.dirs, &machine, server);
    match ModelManager::new(config.clone()) {
        Ok(m) => Ok(m),
        Err(e) if server => {
            tracing::warn!("{e}; running without the on-disk result cache");
            let mut config = config;
            config.cache.l2_path = None;
            Ok(ModelManager::new(config)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// The keyring for a process with no terminal to prompt at (the server): opened with its key
/// file, or with `BEAR_PASSPHRASE` (read through `lookup`) when it was made with a passphrase;
/// made under a new key file on a first run (see [`keyring::open_or_create`]).
pub fn unattended_keyring(
    loaded: &LoadedConfig,
    lookup: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<keyring::Unlocked> {
    keyring::open_or_create(loaded, || match lookup("BEAR_PASSPHRASE") {
        Some(p) if !p.is_empty() => Ok(bear_security::SecretBytes::from_slice(
            &p.into_encoded_bytes(),
        )),
        Some(_) => Err(Error::Security(bear_security::Error::Setting {
            key: "BEAR_PASSPHRASE".into(),
            expected: "a non-empty passphrase".into(),
        })),
        None => Err(Error::Security(bear_security::Error::Setting {
            key: "BEAR_PASSPHRASE".into(),
            expected: "the keyring's passphrase: this keyring is protected by one, and a \
                       server has no terminal to ask at"
                .into(),
        })),
    })
}

pub(crate) fn internal(message: &str) -> Error {
    Error::Core(bear_core::Error::backend(
        bear_core::ErrorKind::Internal,
        message,
    ))
}

/// The scrubbers per policy, built when first needed, with the keyring when a policy needs
/// one and the caller can open it.
struct Scrubbers {
    pii: bear_core::config::PiiConfig,
    vault: PathBuf,
    open: Option<Box<dyn Fn() -> Result<Keyring> + Send + Sync>>,
    built: Mutex<Option<Arc<PolicyScrubbers>>>,
}

impl Scrubbers {
    fn new(loaded: &LoadedConfig, keys: Keys) -> Result<Self> {
        let pii = loaded.config.pii.clone();
        let vault = loaded.config.security.vault_path(&loaded.dirs);
        let (open, built) = match keys {
            Keys::Opened(k) => (
                None,
                Some(Arc::new(PolicyScrubbers::new(&pii, k.map(|k| *k), &vault)?)),
            ),
            Keys::OnDemand(f) => (Some(f), None),
        };
        Ok(Self {
            pii,
            vault,
            open,
            built: Mutex::new(built),
        })
    }

    /// Whether collections are sealed: a keyring is open or can be opened.
    fn seals(&self) -> bool {
        self.open.is_some() || self.built().is_some_and(|s| s.has_keyring())
    }

    /// The scrubbers holding the keyring, opening it if need be.
    fn keyed(&self) -> Result<Arc<PolicyScrubbers>> {
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = built.as_ref().filter(|s| s.has_keyring()) {
            return Ok(s.clone());
        }
        let Some(open) = &self.open else {
            return Err(Error::Security(bear_security::Error::Setting {
                key: "keyring".into(),
                expected: "an open keyring".into(),
            }));
        };
        let s = Arc::new(PolicyScrubbers::new(&self.pii, Some(open()?), &self.vault)?);
        *built = Some(s.clone());
        Ok(s)
    }

    /// `collection`'s keys for its sealed tables (see [`bear_rag::Store::sealed_with`]).
    fn file_keys(&self, collection: &str, create: bool) -> Result<bear_security::FileKeys> {
        Ok(self.keyed()?.file_keys(collection, create)?)
    }

    /// Destroys `collection`'s data keys, when collections are sealed.
    fn shred(&self, collection: &str) -> Result<bool> {
        if !self.seals() {
            return Ok(false);
        }
        Ok(self.keyed()?.shred(collection)?)
    }

    fn built(&self) -> Option<Arc<PolicyScrubbers>> {
        self.built.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn get(&self, policy: PiiPolicy) -> Result<Arc<dyn PiiScrubber>> {
        let keyed = matches!(policy, PiiPolicy::Tokenize | PiiPolicy::Hash);
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        let usable = built
            .as_ref()
            .filter(|s| s.has_keyring() || !keyed || self.open.is_none())
            .cloned();
        let set = match usable {
            Some(s) => s,
            None => {
                let keyring = match (&self.open, keyed) {
                    (Some(open), true) => Some(open()?),
                    _ => None,
                };
                let s = Arc::new(PolicyScrubbers::new(&self.pii, keyring, &self.vault)?);
                *built = Some(s.clone());
                s
            }
        };
        match set.get(policy) {
            Ok(s) => Ok(s),
            Err(e @ bear_security::Error::Setting { .. }) => {
                Err(Error::invalid("pii_policy", e.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_see_what_they_own_and_admins_everything() {
        let key = Viewer::Key {
            id: "k1".into(),
            admin: false,
        };
        let admin = Viewer::Key {
            id: "k2".into(),
            admin: true,
        };
        assert!(key.may_see(Some("k1")));
        assert!(!key.may_see(Some("k2")));
        assert!(!key.may_see(None));
        assert!(admin.may_see(None) && admin.may_see(Some("k1")));
        assert!(Viewer::Local.may_see(Some("k1")) && Viewer::Local.may_see(None));
    }
}
