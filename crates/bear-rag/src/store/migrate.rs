//! Sealing a collection from before sealing, in place (`bear migrate`). The sealed copy is
//! built beside the collection in `.seal-NAME`, marked complete, then swapped in by two
//! renames (`NAME` → `.plain-NAME`, `.seal-NAME` → `NAME`) and the plain copy removed. Each
//! step leaves a state the next run recognises from the folders alone, so a kill at any
//! point loses nothing: a copy not marked complete is built again, a complete one is swapped
//! in, and a plain copy beside a sealed collection is removed.

use super::*;

/// The marker written in a staged sealed copy once every row and file is in it.
const READY: &str = ".ready";

/// Where a conversion of `name` stands, from its folders.
struct Folders {
    live: PathBuf,
    staging: PathBuf,
    old: PathBuf,
}

impl Store {
    fn folders(&self, name: &str) -> Folders {
        Folders {
            live: self.dir(name),
            staging: self.root.join(format!(".seal-{name}")),
            old: self.root.join(format!(".plain-{name}")),
        }
    }

    /// Collections still to seal: plain ones, and ones a killed conversion left part-way.
    pub fn unsealed(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .entry_names()?
            .into_iter()
            .filter_map(|n| {
                let bare = n
                    .strip_prefix(".seal-")
                    .or_else(|| n.strip_prefix(".plain-"))
                    .unwrap_or(&n)
                    .to_string();
                let staged = n.starts_with('.');
                let plain = self.meta(&bare).is_ok_and(|m| !m.sealed);
                (check_name(&bare).is_ok() && (staged || plain)).then_some(bare)
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Seals plain collection `name` in place, building its vector and full-text indexes
    /// anew (`ann_threshold` as for an ingest); `on_rows` hears each table's name and rows
    /// once copied. Resumes a conversion a kill cut short; a sealed collection is left alone.
    pub async fn seal_in_place(
        &self,
        name: &str,
        ann_threshold: usize,
        on_rows: &mut (dyn FnMut(&str, u64) + Send),
    ) -> Result<()> {
        check_name(name)?;
        if self.keys.is_none() {
            return Err(Error::InvalidRequest(
                "sealing a collection needs the keyring: open it first".into(),
            ));
        }
        let f = self.folders(name);
        if !f.staging.join(READY).is_file() {
            remove_if_there(&f.staging)?;
            if self.meta(name)?.sealed {
                let _ = std::fs::remove_file(f.live.join(READY));
                return remove_if_there(&f.old);
            }
            let lock = lock_dir(&f.live).await?;
            self.stage(name, &f, ann_threshold, on_rows).await?;
            drop(lock);
        }
        self.swap(name, &f)
    }

    /// Builds the sealed copy of `name` in `f.staging` and marks it complete.
    async fn stage(
        &self,
        name: &str,
        f: &Folders,
        ann_threshold: usize,
        on_rows: &mut (dyn FnMut(&str, u64) + Send),
    ) -> Result<()> {
        let plain_meta = self.meta(name)?;
        let plain = self.open_in(f.live.clone(), plain_meta.clone()).await?;
        // Rows copy into the current schemas: an older plain table gets the columns first.
        plain.add_ocr_column().await?;
        plain.add_mail_column().await?;
        std::fs::create_dir_all(&f.staging).map_err(|source| Error::Io {
            path: f.staging.clone(),
            source,
        })?;
        let meta = CollectionMeta {
            sealed: true,
            ..plain_meta
        };
        self.create_in(&f.staging, &meta).await?;
        let sealed = self.open_in(f.staging.clone(), meta).await?;
        for (table, from, to) in [
            (DOCUMENTS, &plain.documents, &sealed.documents),
            (CHUNKS, &plain.chunks, &sealed.chunks),
        ] {
            let count = |t: &Table| {
                let t = t.clone();
                async move {
                    t.count_rows(None)
                        .await
                        .map_err(|e| Error::storage("count", e))
                }
            };
            if count(from).await? == 0 {
                on_rows(table, 0);
                continue;
            }
            let rows = from
                .query()
                .execute()
                .await
                .map_err(|e| Error::storage("read for sealing", e))?;
            to.add(rows)
                .execute()
                .await
                .map_err(|e| Error::storage("write the sealed copy", e))?;
            on_rows(table, count(to).await? as u64);
        }
        sealed.optimize(ann_threshold).await?;
        copy_loose_files(&f.live, &f.staging)?;
        write_synced(&f.staging.join(READY))
    }

    /// Puts the complete sealed copy in place of the plain collection, then removes the plain
    /// copy; each rename is a step a later run can pick up from.
    fn swap(&self, name: &str, f: &Folders) -> Result<()> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        if f.live.exists() && !self.meta(name)?.sealed {
            std::fs::rename(&f.live, &f.old).map_err(io(&f.live))?;
        }
        if !f.live.exists() {
            std::fs::rename(&f.staging, &f.live).map_err(io(&f.staging))?;
            sync_dir(&self.root)?;
        }
        self.flat.forget(&f.live);
        let _ = std::fs::remove_file(f.live.join(READY));
        remove_if_there(&f.old)
    }
}

/// Copies the files (not folders) of a collection directory that are not its tables' or
/// BEAR's own bookkeeping into the sealed copy: what the application keeps beside the
/// tables (a history, a vault), which it seals itself.
fn copy_loose_files(from: &Path, to: &Path) -> Result<()> {
    let entries = std::fs::read_dir(from).map_err(|source| Error::Io {
        path: from.into(),
        source,
    })?;
    for e in entries.flatten() {
        let name = e.file_name();
        let skip = [META_FILE, WRITE_LOCK, READY]
            .iter()
            .any(|n| name.to_str() == Some(n));
        if skip || !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        std::fs::copy(e.path(), to.join(&name)).map_err(|source| Error::Io {
            path: e.path(),
            source,
        })?;
    }
    Ok(())
}

fn remove_if_there(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
            path: dir.into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Creates an empty file at `path` and flushes it and its directory.
fn write_synced(path: &Path) -> Result<()> {
    let io = |source| Error::Io {
        path: path.into(),
        source,
    };
    std::fs::File::create(path)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::Io {
            path: dir.into(),
            source,
        })
}

impl Collection {
    /// The text of every chunk, as stored (for moving a matter's vault tokens to its own
    /// vault when it is migrated).
    pub async fn chunk_texts(&self) -> Result<Vec<String>> {
        let q = self.chunks.query().select(Select::columns(&["text"]));
        let mut texts = Vec::new();
        for b in read_all(&q, "read the chunks' text").await? {
            let col = b
                .column_by_name("text")
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| Error::Storage {
                    op: "read the chunks' text",
                    reason: "no text column".into(),
                })?;
            texts.extend(col.iter().flatten().map(str::to_string));
        }
        Ok(texts)
    }
}
