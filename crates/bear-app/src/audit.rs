//! The audit log: one per application, opened when first written (a read-only command never
//! needs it writable), shared by the operations and, in the server, by the gateway, so every
//! record chains to the one before it. Records hold metadata only: who, what, outcome, sizes.

use std::path::Path;
use std::sync::Arc;

use bear_security::audit::{AuditEvent, AuditLog};
use serde::Serialize;

use crate::{App, LoadedConfig, Result, Viewer};

/// Opens the configured audit log (failing closed as `security.audit_fail_closed` says).
pub fn open(loaded: &LoadedConfig) -> Result<AuditLog> {
    let sec = &loaded.config.security;
    Ok(AuditLog::open(
        &sec.audit_log_path(&loaded.dirs),
        sec.audit_fail_closed,
        None,
    )?)
}

/// What checking the audit chain found: `bear audit verify`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Verified {
    /// Records checked.
    pub records: u64,
    /// Hash of the last record (the chain head).
    pub head: String,
    /// Whether a head file was present and matched.
    pub head_checked: bool,
}

/// Checks the whole chain of the log at `path` (the configured one when `None`); an edited,
/// deleted, inserted or reordered record is an error naming the first bad line.
pub fn verify(loaded: &LoadedConfig, path: Option<&Path>) -> Result<Verified> {
    let configured = loaded.config.security.audit_log_path(&loaded.dirs);
    let r = bear_security::audit::verify(path.unwrap_or(&configured))?;
    Ok(Verified {
        records: r.records,
        head: r.head,
        head_checked: r.head_checked,
    })
}

/// Who a record names: `local` for the user at this machine, `key:<id>` for an API key.
pub fn actor(viewer: &Viewer) -> String {
    match viewer {
        Viewer::Local => "local".into(),
        Viewer::Key { id, .. } => format!("key:{id}"),
    }
}

/// One record without entity counts.
pub(crate) fn event(viewer: &Viewer, action: &str, outcome: &str, sizes: (u64, u64)) -> AuditEvent {
    AuditEvent {
        actor: actor(viewer),
        action: action.into(),
        outcome: outcome.into(),
        input_len: sizes.0,
        output_len: sizes.1,
        ..AuditEvent::default()
    }
}

/// Records `action` by `viewer` (no sizes) in the configured log, opened for this one record:
/// for operations that run outside an [`App`] (keys, the keyring).
pub(crate) fn record_once(loaded: &LoadedConfig, viewer: &Viewer, action: &str) -> Result<()> {
    open(loaded)?.record(event(viewer, action, "ok", (0, 0)))?;
    Ok(())
}

impl App {
    /// The audit log, opened on first use.
    pub fn audit_log(&self) -> Result<Arc<AuditLog>> {
        if let Some(log) = self.audit.get() {
            return Ok(log.clone());
        }
        let log = Arc::new(open(self.config())?);
        Ok(self.audit.get_or_init(|| log).clone())
    }

    /// Records `action` by `viewer` with its outcome and sizes (in, out).
    pub fn record(
        &self,
        viewer: &Viewer,
        action: &str,
        outcome: &str,
        sizes: (u64, u64),
    ) -> Result<()> {
        self.audit_log()?
            .record(event(viewer, action, outcome, sizes))?;
        Ok(())
    }
}
