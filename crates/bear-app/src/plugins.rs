//! Plugins as the configuration asks for them: one sandbox host with the trust policy and the
//! `bear.scrub` host function, and the plugins found in the plugin directories.

use std::sync::Arc;

use bear_plugins::{HostConfig, PluginHost, Registry, TrustPolicy};

use crate::{LoadedConfig, Result};

/// The sandbox host for `[plugins]`: fuel metering, the trust policy, and `bear.scrub` with the
/// configured PII rules under the `replace` policy (no keyring: a plugin never receives
/// reversible tokens).
pub fn host(loaded: &LoadedConfig) -> Result<Arc<PluginHost>> {
    let p = &loaded.config.plugins;
    let host = PluginHost::new(HostConfig {
        fuel: true,
        trust: TrustPolicy {
            require_signature: p.require_signature,
            trusted_keys: p.trusted_keys.clone(),
        },
    })?;
    let scrubber = bear_security::Scrubber::replacing(&loaded.config.pii)?;
    Ok(Arc::new(host.with_scrubber(Arc::new(scrubber))))
}

/// Every plugin found in the plugin directories, each loaded after its dependencies, and one
/// warning per plugin left out.
pub fn load_all(loaded: &LoadedConfig) -> Result<(Registry, Vec<String>)> {
    let mut reg = Registry::new(host(loaded)?);
    let warnings = reg.load_all(&loaded.config.plugins.search_dirs(&loaded.dirs));
    Ok((reg, warnings))
}
