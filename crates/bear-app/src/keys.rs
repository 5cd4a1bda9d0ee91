//! API keys for bear-server, made, listed and revoked by the user at the machine (`bear keys
//! api-create|api-list|api-revoke`): the store holds hashes only, each change is recorded in
//! the audit log, and a running bear-server is told through the control socket so the change
//! takes effect at once.

use bear_security::access::{ApiKey, ApiKeyRecord, ApiKeyStore, Role};

use crate::{LoadedConfig, Result};

/// What telling a running bear-server came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerTold {
    /// No bear-server is running.
    NoServer,
    /// It reloaded the keys: this many are in force.
    Reloaded(usize),
    /// It could not be told, or could not reload (why); restarting it applies the change.
    Failed(String),
}

/// A key just made: shown once, never stored.
pub struct Created {
    /// The key as the user types it.
    pub key: ApiKey,
    /// What the store keeps about it.
    pub record: ApiKeyRecord,
    /// Whether a running server took it.
    pub server: ServerTold,
}

/// A key as listed: `bear keys api-list --json` and `GET /api/v1/keys` (no hash).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct KeyView {
    /// Its public id (for revocation).
    pub id: String,
    /// `admin`, `user` or `read_only`.
    #[schema(value_type = String)]
    pub role: Role,
    /// The label it was given.
    pub label: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
}

impl From<&ApiKeyRecord> for KeyView {
    fn from(r: &ApiKeyRecord) -> Self {
        Self {
            id: r.id.clone(),
            role: r.role,
            label: r.label.clone(),
            created_at: crate::workflows::rfc3339_ms(r.created_ms),
        }
    }
}

/// A new key as shown once: `bear keys api-create --json` and `POST /api/v1/keys`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Shown {
    /// The key as the user types it (`Authorization: Bearer ...`).
    pub key: String,
    /// What is kept about it.
    pub record: KeyView,
}

impl Created {
    /// What the user is shown, once.
    pub fn shown(&self) -> Shown {
        Shown {
            key: self.key.reveal(),
            record: KeyView::from(&self.record),
        }
    }
}

impl std::fmt::Debug for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Created")
            .field("record", &self.record.id)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

fn store(loaded: &LoadedConfig) -> Result<ApiKeyStore> {
    Ok(ApiKeyStore::open(
        &loaded.config.security.api_keys_path(&loaded.dirs),
    )?)
}

/// Has a running bear-server reload the keys.
fn tell_server(loaded: &LoadedConfig) -> ServerTold {
    let client = crate::control::Client::new(&loaded.dirs.data_dir);
    match client.keys_changed(std::time::Duration::from_secs(30)) {
        Ok(None) => ServerTold::NoServer,
        Ok(Some(n)) => ServerTold::Reloaded(n),
        Err(e) => ServerTold::Failed(e.to_string()),
    }
}

/// Makes a key with `role` (`admin`, `user`, `read-only`) and `label` in the key file, as
/// `viewer`; whoever serves keys must reload them.
pub fn create_by(
    loaded: &LoadedConfig,
    viewer: &crate::Viewer,
    role: &str,
    label: &str,
) -> Result<(ApiKey, ApiKeyRecord)> {
    let role: Role = role
        .parse()
        .map_err(|_| crate::Error::invalid("role", "admin, user or read-only"))?;
    let made = store(loaded)?.create(role, label)?;
    crate::audit::record_once(loaded, viewer, "keys.api_create")?;
    Ok(made)
}

/// Makes a key, as the user at this machine, and tells a running bear-server.
pub fn create(loaded: &LoadedConfig, role: &str, label: &str) -> Result<Created> {
    let (key, record) = create_by(loaded, &crate::Viewer::Local, role, label)?;
    Ok(Created {
        key,
        record,
        server: tell_server(loaded),
    })
}

/// The keys (no hashes).
pub fn list(loaded: &LoadedConfig) -> Result<Vec<KeyView>> {
    Ok(store(loaded)?.list().iter().map(KeyView::from).collect())
}

/// Revokes key `id` in the key file, as `viewer`; whoever serves keys must reload them.
pub fn revoke_by(loaded: &LoadedConfig, viewer: &crate::Viewer, id: &str) -> Result<()> {
    if !store(loaded)?.revoke(id)? {
        return Err(crate::Error::Core(bear_core::Error::backend(
            bear_core::ErrorKind::NotFound,
            format!("no API key with id {id}"),
        )));
    }
    crate::audit::record_once(loaded, viewer, "keys.api_revoke")
}

/// Revokes key `id` as `viewer` and destroys its saved chats (crypto-shredded: their data
/// key goes before their file). Whoever serves keys must reload them.
pub fn revoke_and_shred(app: &crate::App, viewer: &crate::Viewer, id: &str) -> Result<()> {
    revoke_by(app.config(), viewer, id)?;
    app.shred_chats_of_key(id)?;
    Ok(())
}

/// Revokes key `id`, as the user at this machine, destroys its saved chats, and tells a
/// running bear-server.
pub fn revoke(app: &crate::App, id: &str) -> Result<ServerTold> {
    revoke_and_shred(app, &crate::Viewer::Local, id)?;
    Ok(tell_server(app.config()))
}
