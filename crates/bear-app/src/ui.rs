//! `bear ui`: a one-time sign-in link to the web app of the running bear-server, for the user
//! at this machine, who then never copies an API key by hand. The link stands for a local
//! admin key made for it once (labelled [`LOCAL_KEY_LABEL`]; its secret is never shown or
//! kept: the link is the only way to use it, and `bear keys api-revoke` ends it).

use std::time::Duration;

use bear_security::access::{ApiKeyRecord, ApiKeyStore, Role};

use crate::control::{Client, LoginLink};
use crate::{LoadedConfig, Result};

/// The label of the key `bear ui` links stand for.
pub const LOCAL_KEY_LABEL: &str = "bear ui (the user at this machine)";

/// The local user's key, made (admin) the first time.
pub fn local_key(loaded: &LoadedConfig) -> Result<ApiKeyRecord> {
    let mut store = ApiKeyStore::open(&loaded.config.security.api_keys_path(&loaded.dirs))?;
    if let Some(r) = store.list().iter().find(|r| r.label == LOCAL_KEY_LABEL) {
        return Ok(r.clone());
    }
    let (_secret, record) = store.create(Role::Admin, LOCAL_KEY_LABEL)?;
    crate::audit::record_once(loaded, &crate::Viewer::Local, "keys.api_create")?;
    Ok(record)
}

/// A sign-in link from the running bear-server, within `wait`; `None` when none runs.
pub fn login_link(loaded: &LoadedConfig, wait: Duration) -> Result<Option<LoginLink>> {
    let key = local_key(loaded)?;
    Client::new(&loaded.dirs.data_dir).login(&key.id, wait)
}
