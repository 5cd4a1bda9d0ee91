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

/// A new key as shown once: `bear keys api-create --json`.
#[derive(serde::Serialize)]
pub struct Shown {
    /// The key as the user types it (`Authorization: Bearer ...`).
    pub key: String,
    /// What the store keeps about it.
    pub record: ApiKeyRecord,
}

impl Created {
    /// What the user is shown, once.
    pub fn shown(&self) -> Shown {
        Shown {
            key: self.key.reveal(),
            record: self.record.clone(),
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

/// Records `action` by the local user in the audit log (no key material).
fn audit(loaded: &LoadedConfig, action: &str) -> Result<()> {
    crate::audit::open(loaded)?.record(crate::audit::event(
        &crate::Viewer::Local,
        action,
        "ok",
        (0, 0),
    ))?;
    Ok(())
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

/// Makes a key with `role` (`admin`, `user`, `read-only`) and `label`.
pub fn create(loaded: &LoadedConfig, role: &str, label: &str) -> Result<Created> {
    let role: Role = role.parse()?;
    let (key, record) = store(loaded)?.create(role, label)?;
    audit(loaded, "keys.api_create")?;
    Ok(Created {
        key,
        record,
        server: tell_server(loaded),
    })
}

/// The keys (hashes only).
pub fn list(loaded: &LoadedConfig) -> Result<Vec<ApiKeyRecord>> {
    Ok(store(loaded)?.list().to_vec())
}

/// Revokes key `id`.
pub fn revoke(loaded: &LoadedConfig, id: &str) -> Result<ServerTold> {
    if !store(loaded)?.revoke(id)? {
        return Err(bear_security::Error::Denied(format!("no API key with id {id}")).into());
    }
    audit(loaded, "keys.api_revoke")?;
    Ok(tell_server(loaded))
}
