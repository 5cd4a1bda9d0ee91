//! Column-level sealing of the run database's text columns.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bear_core::Error as CoreError;
use bear_security::FileKeys;
use bear_security::crypto::segment;

/// Column-level sealing: the text of a run's definition and inputs and of each step's output
/// and error is sealed (AES-256-GCM, a segmented sealed message as the matters' files are,
/// base64 in the column), named in its AAD by run, step and column, so a value moved to
/// another row or column fails to open. Ids, names, statuses and times stay clear: the engine
/// queries them. A value written before sealing (no prefix) is read as it is.
#[derive(Debug, Clone, Default)]
pub(crate) struct Columns(pub(crate) Option<FileKeys>);

/// The prefix of a sealed column value.
pub(crate) const SEALED: &str = "bearseg1:";

impl Columns {
    pub(crate) fn seal(&self, name: &str, plain: String) -> Result<String, CoreError> {
        let Some(keys) = &self.0 else {
            return Ok(plain);
        };
        let sealed = segment::seal_file(keys, name, plain.as_bytes())?;
        Ok(format!("{SEALED}{}", BASE64.encode(sealed)))
    }

    pub(crate) fn open(&self, name: &str, stored: String) -> Result<String, CoreError> {
        let Some(body) = stored.strip_prefix(SEALED) else {
            return Ok(stored);
        };
        let what = || format!("workflow database: {name}");
        let damaged = |reason: &str| bear_security::Error::Integrity {
            what: what(),
            reason: reason.into(),
        };
        let keys = self
            .0
            .as_ref()
            .ok_or_else(|| damaged("sealed, and the workflow key is not at hand"))?;
        let sealed = BASE64
            .decode(body)
            .map_err(|_| damaged("not a sealed value"))?;
        let plain = segment::open_file(keys, name, &sealed).map_err(|e| match e {
            bear_security::Error::Integrity { reason, .. } => damaged(&reason),
            other => other,
        })?;
        String::from_utf8(plain).map_err(|_| damaged("not UTF-8 text").into())
    }

    pub(crate) fn seal_opt(
        &self,
        name: &str,
        plain: Option<String>,
    ) -> Result<Option<String>, CoreError> {
        plain.map(|p| self.seal(name, p)).transpose()
    }

    pub(crate) fn open_opt(
        &self,
        name: &str,
        stored: Option<String>,
    ) -> Result<Option<String>, CoreError> {
        stored.map(|s| self.open(name, s)).transpose()
    }
}

/// A column's name in its sealed value's AAD.
pub(crate) fn column(run: &str, step: Option<&str>, column: &str) -> String {
    match step {
        Some(step) => format!("workflow/{run}/step/{step}/{column}"),
        None => format!("workflow/{run}/{column}"),
    }
}
