//! `bear migrate`: a data directory written before sealing, converted in place. Each plain
//! collection is sealed (`bear_rag::Store::seal_in_place`, which a kill at any point leaves
//! resumable), its plain history moved into its sealed one, uploads sealed file by file,
//! workflow texts sealed row by row, and the on-disk result cache, whose values were plain,
//! removed. Every step is idempotent: running it again after a kill finishes the work and
//! loses nothing.

use serde::Serialize;

use crate::{App, Error, Result, Viewer};

/// One step of a migration, as it happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum MigrateStep {
    /// Sealing collection `name`, number `index` (from 1) of `total`.
    Collection {
        /// The collection.
        name: String,
        /// Its number.
        index: usize,
        /// Collections to seal.
        total: usize,
    },
    /// A table of the collection being sealed is copied.
    Rows {
        /// `documents` or `chunks`.
        table: String,
        /// Rows copied.
        rows: u64,
    },
}

/// What a migration did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MigrateReport {
    /// Collections sealed.
    pub collections: Vec<String>,
    /// Plain histories moved into sealed ones.
    pub histories: usize,
    /// Uploaded files sealed.
    pub uploads: usize,
    /// Workflow database values sealed.
    pub workflow_values: u64,
    /// PII tokens moved from the shared vault into their matters' own vaults.
    pub vault_tokens: usize,
    /// Whether the on-disk result cache was removed (it may hold values from before sealing;
    /// it is only a cache, and starts again empty).
    pub cache_removed: bool,
}

impl App {
    /// Converts this data directory in place (see the module documentation); `progress`
    /// hears each collection and table. Needs the keyring; refuses while a bear-server runs on
    /// this data directory (it holds the files).
    pub async fn migrate(
        &self,
        viewer: &Viewer,
        progress: &mut (dyn FnMut(&MigrateStep) + Send),
    ) -> Result<MigrateReport> {
        if !self.scrubbers_seal() {
            return Err(Error::invalid(
                "keyring",
                "migrating seals data: open the keyring (a key file or passphrase) first",
            ));
        }
        let client = crate::control::Client::new(&self.config().dirs.data_dir);
        let query = crate::models::ModelsQuery::default();
        if client
            .models(query, std::time::Duration::from_secs(5))?
            .is_some()
        {
            return Err(Error::Core(bear_core::Error::backend(
                bear_core::ErrorKind::Unavailable,
                "bear-server is running on this data directory: stop it, then run `bear migrate`",
            )));
        }
        self.audit_log()?;
        let mut report = MigrateReport::default();
        let todo = self.store().unsealed()?;
        let threshold = self.config().config.rag.ann_threshold;
        for (i, name) in todo.iter().enumerate() {
            progress(&MigrateStep::Collection {
                name: name.clone(),
                index: i + 1,
                total: todo.len(),
            });
            let mut on_rows = |table: &str, rows: u64| {
                progress(&MigrateStep::Rows {
                    table: table.to_string(),
                    rows,
                });
            };
            self.store()
                .seal_in_place(name, threshold, &mut on_rows)
                .await?;
            report.collections.push(name.clone());
        }
        for info in self.store().list().await? {
            let c = self.store().open(&info.meta.name).await?;
            report.histories += usize::from(self.seal_old_history(&c)?);
            report.uploads += self.seal_uploads(&c)?;
            report.vault_tokens += self.adopt_vault_tokens(&c).await?;
        }
        report.workflow_values = self.open_runs().await?.seal_plain_values().await?;
        report.cache_removed = self.remove_plain_cache()?;
        let sizes = (report.collections.len() as u64, report.uploads as u64);
        self.record(viewer, "migrate", "ok", sizes)?;
        Ok(report)
    }

    /// Moves the shared vault's tokens that tokenizing matter `c` stores into its own vault.
    async fn adopt_vault_tokens(&self, c: &bear_rag::Collection) -> Result<usize> {
        if c.meta().pii_policy != bear_core::PiiPolicy::Tokenize || !c.meta().sealed {
            return Ok(0);
        }
        let mut texts = c.chunk_texts().await?;
        texts.extend(self.history_texts(c)?);
        let vault = c.dir().join(crate::VAULT_FILE);
        Ok(self.keyed_scrubbers()?.adopt_shared_tokens(
            &c.meta().name,
            &vault,
            texts.iter().map(String::as_str),
        )?)
    }

    /// Seals the plain uploads of sealed collection `c`, and moves each upload kept under its
    /// own file name to its tag (`kept_copy`); how many it changed. The copy is written (or
    /// renamed) whole before the named file goes, so a kill between the two leaves both, and
    /// the next run finishes it.
    fn seal_uploads(&self, c: &bear_rag::Collection) -> Result<usize> {
        let Some(keys) = c.file_keys() else {
            return Ok(0);
        };
        let dir = self.uploads_of(&c.meta().name);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(0);
        };
        let mut sealed = 0;
        for e in entries.flatten() {
            let path = e.path();
            if !e.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            if is_tag(&path) {
                continue;
            }
            let Some(kept) = bear_rag::ingest::kept_copy(&path, keys) else {
                continue;
            };
            let name = bear_rag::ingest::upload_name(&path);
            let plain = std::fs::read(&path).map_err(|e| storage(&path, e))?;
            if bear_security::crypto::segment::is_sealed(&plain) {
                std::fs::rename(&path, &kept).map_err(|e| storage(&path, e))?;
            } else {
                bear_security::crypto::segment::write_whole(&kept, &name, Some(keys), &plain)?;
                std::fs::remove_file(&path).map_err(|e| storage(&path, e))?;
            }
            sealed += 1;
        }
        Ok(sealed)
    }

    /// Removes the on-disk result cache. Whether there was one.
    fn remove_plain_cache(&self) -> Result<bool> {
        let path = self.config().dirs.cache_dir.join("results.redb");
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(storage(&path, e)),
        }
    }
}

/// Whether `path` is named as a kept copy is: 32 hex digits of tag, and its extension.
fn is_tag(path: &std::path::Path) -> bool {
    path.file_stem()
        .and_then(|s| s.to_str())
        .is_some_and(|s| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn storage(path: &std::path::Path, e: std::io::Error) -> Error {
    Error::Core(bear_core::Error::backend(
        bear_core::ErrorKind::Storage,
        format!("cannot migrate {}: {e}", path.display()),
    ))
}
