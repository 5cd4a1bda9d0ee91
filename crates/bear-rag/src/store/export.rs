//! Export: a plaintext LanceDB copy of a collection, for other LanceDB clients (Python
//! `lancedb`, for example). A sealed collection is readable only through BEAR; an export is
//! the deliberate way out. Rows are copied as stored: text the collection's PII policy
//! scrubbed stays scrubbed (vault tokens are not restored), vectors are unchanged, so an
//! exact vector search in the copy returns BEAR's exact top-k. The copy has no indexes (a
//! client builds its own) and no BEAR metadata.

use super::*;

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exported {
    /// The collection exported.
    pub collection: String,
    /// The LanceDB database folder written (tables `documents` and `chunks`).
    pub path: PathBuf,
    /// Rows of `documents`.
    pub documents: u64,
    /// Rows of `chunks`.
    pub chunks: u64,
}

impl Collection {
    /// Writes both tables, unsealed, as a new LanceDB database in `dest` (which must not
    /// exist, or be an empty folder). `on_table` hears each table's name and rows as it is
    /// done. A failed export removes what it wrote.
    pub async fn export_to(
        &self,
        dest: &Path,
        on_table: &mut (dyn FnMut(&str, u64) + Send),
    ) -> Result<Exported> {
        prepare_dest(dest)?;
        let written = self.copy_tables(dest, on_table).await;
        if written.is_err() {
            let _ = std::fs::remove_dir_all(dest);
        }
        let (documents, chunks) = written?;
        Ok(Exported {
            collection: self.meta.name.clone(),
            path: dest.to_path_buf(),
            documents,
            chunks,
        })
    }

    async fn copy_tables(
        &self,
        dest: &Path,
        on_table: &mut (dyn FnMut(&str, u64) + Send),
    ) -> Result<(u64, u64)> {
        let db = connect(dest, false, false).await?;
        let mut rows = [0u64; 2];
        for (i, (name, table)) in [(DOCUMENTS, &self.documents), (CHUNKS, &self.chunks)]
            .into_iter()
            .enumerate()
        {
            let stream = table
                .query()
                .execute()
                .await
                .map_err(|e| Error::storage("read for export", e))?;
            let copy = db
                .create_table(name, stream)
                .execute()
                .await
                .map_err(|e| Error::storage("write the export", e))?;
            rows[i] = copy
                .count_rows(None)
                .await
                .map_err(|e| Error::storage("count the export", e))? as u64;
            on_table(name, rows[i]);
        }
        Ok((rows[0], rows[1]))
    }
}

/// Checks that `dest` is new or an empty folder, and creates it.
fn prepare_dest(dest: &Path) -> Result<()> {
    let taken = match std::fs::read_dir(dest) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => true,
        Err(source) => {
            return Err(Error::Io {
                path: dest.into(),
                source,
            });
        }
    };
    if taken {
        return Err(Error::InvalidRequest(format!(
            "{} already exists and is not an empty folder: export into a new folder",
            dest.display()
        )));
    }
    std::fs::create_dir_all(dest).map_err(|source| Error::Io {
        path: dest.into(),
        source,
    })
}
