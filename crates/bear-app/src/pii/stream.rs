//! PII over files and streams larger than memory (`bear pii detect FILE`, `bear scrub`,
//! `bear restore`). A file input is checked whole first (NUL bytes; invalid UTF-8 when it is
//! refused), so a refused file leaves no partial output; scrub and restore write their audit
//! record before they return, so the front end commits the output only once it is recorded.

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bear_core::{InvalidUtf8, PiiPolicy};
use bear_security::{Detector, Keyring, Scrubber, Session, StreamReport, Vault};
use serde::Serialize;

use super::{DetectResponse, Detection};
use crate::{LoadedConfig, Result, Viewer};

/// Where text comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Standard input (cannot be checked before it is read).
    Stdin,
    /// A file.
    File(PathBuf),
}

impl Input {
    fn open(&self) -> Result<Box<dyn Read>> {
        match self {
            Self::Stdin => Ok(Box::new(std::io::stdin().lock())),
            Self::File(path) => {
                let f = File::open(path).map_err(|e| bear_security::Error::Io {
                    action: "cannot read",
                    path: path.clone(),
                    source: e,
                })?;
                Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, f)))
            }
        }
    }

    /// Reads a file whole once, refusing what the stream would refuse part-way.
    fn check(&self, invalid: InvalidUtf8) -> Result<()> {
        if *self == Self::Stdin {
            return Ok(());
        }
        bear_security::scrub::for_each_chunk(self.open()?, invalid, |_: &str| {
            Ok::<(), crate::Error>(())
        })?;
        Ok(())
    }
}

/// How a stream is scrubbed; unset fields take the configuration's `[pii]` values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// One policy for every entity, instead of the configured policies.
    pub policy: Option<PiiPolicy>,
    /// What to do with invalid UTF-8.
    pub invalid_utf8: Option<InvalidUtf8>,
}

/// Finds the PII in `input`, with positions across the whole stream.
pub fn detect(
    loaded: &LoadedConfig,
    input: &Input,
    show_values: bool,
    invalid_utf8: Option<InvalidUtf8>,
) -> Result<DetectResponse> {
    let invalid = invalid_utf8.unwrap_or(loaded.config.pii.invalid_utf8);
    input.check(invalid)?;
    let detector = Detector::new(&loaded.config.pii)?;
    let mut detection = Detection::new(&detector, show_values);
    bear_security::scrub::for_each_chunk(input.open()?, invalid, |text: &str| {
        detection.feed(text);
        Ok::<(), crate::Error>(())
    })?;
    Ok(detection.finish())
}

/// Whether `config`'s policies need the keyring (tokenize keeps tokens in the vault; hash
/// keys its digests).
fn needs_keys(config: &bear_core::PiiConfig) -> bool {
    let keyed = |p: &PiiPolicy| matches!(p, PiiPolicy::Tokenize | PiiPolicy::Hash);
    keyed(&config.default_policy) || config.policies.values().any(keyed)
}

/// Scrubs `input` into `output`; `keys` is asked for the keyring only when a policy needs it.
/// New vault tokens are saved and the run audited before this returns.
pub fn scrub(
    loaded: &LoadedConfig,
    input: &Input,
    options: StreamOptions,
    keys: impl FnOnce() -> Result<Keyring>,
    output: &mut dyn Write,
) -> Result<StreamReport> {
    let mut config = loaded.config.pii.clone();
    if let Some(p) = options.policy {
        config.default_policy = p;
        config.policies.clear();
    }
    let invalid = options.invalid_utf8.unwrap_or(config.invalid_utf8);
    let mut keyring = needs_keys(&config).then(keys).transpose()?;
    let audit = crate::audit::open(loaded)?;
    input.check(invalid)?;
    let vault_path = loaded.config.security.vault_path(&loaded.dirs);
    let vault = match &keyring {
        Some(k) => Some(Arc::new(Mutex::new(Vault::load(&vault_path, k)?))),
        None => None,
    };
    let hash_key = match &keyring {
        Some(k) => k.hmac_key("bear-scrub-hash-v1"),
        None => bear_security::crypto::ephemeral_hmac_key()?,
    };
    let detector = Arc::new(Detector::new(&config)?);
    let scrubber = Scrubber::new(detector, config, hash_key, vault.clone())?;
    let mut session = Session::new()?;
    let report = scrubber.scrub_stream(&mut input.open()?, output, invalid, &mut session)?;
    if let (Some(v), Some(k)) = (&vault, keyring.as_mut()) {
        let mut v = v.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if v.is_dirty() {
            v.save(&vault_path, k)?;
        }
    }
    let mut event = crate::audit::event(
        &Viewer::Local,
        "pii.scrub",
        "ok",
        (report.bytes_in, report.bytes_out),
    );
    event.entities = report.counts.clone();
    audit.record(event)?;
    Ok(report)
}

/// What restoring found: `bear restore --json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Restored {
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
}

/// Puts the values back for the vault's tokens in `input`, into `output`; audited before this
/// returns.
pub fn restore(
    loaded: &LoadedConfig,
    input: &Input,
    keyring: &Keyring,
    output: &mut dyn Write,
) -> Result<Restored> {
    let audit = crate::audit::open(loaded)?;
    input.check(InvalidUtf8::Refuse)?;
    let vault = Vault::load(&loaded.config.security.vault_path(&loaded.dirs), keyring)?;
    let mut done = Restored {
        bytes_in: 0,
        bytes_out: 0,
    };
    bear_security::scrub::for_each_chunk(input.open()?, InvalidUtf8::Refuse, |text: &str| {
        let restored = vault.restore(text);
        done.bytes_in += text.len() as u64;
        done.bytes_out += restored.len() as u64;
        output
            .write_all(restored.as_bytes())
            .map_err(|e| crate::Error::from(write_error(e)))
    })?;
    audit.record(crate::audit::event(
        &Viewer::Local,
        "vault.restore",
        "ok",
        (done.bytes_in, done.bytes_out),
    ))?;
    Ok(done)
}

fn write_error(e: std::io::Error) -> bear_security::Error {
    bear_security::Error::Io {
        action: "cannot write",
        path: "<output>".into(),
        source: e,
    }
}
