//! Uploaded originals (`POST /api/v1/collections/{name}/documents`): kept under
//! `<data>/uploads/<collection>/`, sealed under the matter's data key (as its tables are) and
//! stored under a tag of their file name (`bear_rag::ingest::kept_copy`), so the folder shows
//! no file name; the document's path is still the folder and the name it was uploaded as.
//! Written whole before they appear, and removed with their document or collection whichever
//! front end removes it.

use std::path::{Path, PathBuf};

use bear_security::crypto::segment::write_whole;

use crate::{App, Error, Result, Viewer};

/// An upload kept and ready to ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// Where it is kept (canonical).
    pub path: PathBuf,
    /// The id its document will have.
    pub document_id: String,
}

/// A file name for an upload: one plain path component, a format BEAR reads.
pub fn check_filename(name: &str) -> Result<()> {
    let plain = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && !name.chars().any(char::is_control);
    if !plain {
        return Err(Error::invalid(
            "filename",
            "one plain file name (no folders, no leading dot, at most 255 bytes)",
        ));
    }
    if bear_rag::extract::Format::from_path(Path::new(name)).is_none() {
        return Err(Error::invalid(
            "filename",
            format!("BEAR reads {} files", bear_rag::extract::Format::names()),
        ));
    }
    Ok(())
}

fn storage(e: std::io::Error) -> Error {
    Error::Core(bear_core::Error::backend(
        bear_core::ErrorKind::Storage,
        format!("cannot store the upload: {e}"),
    ))
}

impl App {
    /// The uploads folder of `collection`.
    pub(crate) fn uploads_of(&self, collection: &str) -> PathBuf {
        self.config().dirs.data_dir.join("uploads").join(collection)
    }

    /// Keeps `bytes` as `filename` in `collection` (created for `viewer` if absent, so a
    /// refusal comes before anything is written); the same name again replaces it.
    pub async fn store_upload(
        &self,
        viewer: &Viewer,
        collection: &str,
        filename: &str,
        bytes: &[u8],
    ) -> Result<Upload> {
        check_filename(filename)?;
        if bytes.is_empty() {
            return Err(Error::invalid(
                "body",
                "the body is empty: send the file's bytes",
            ));
        }
        let c = self.open_or_create(viewer, collection, None).await?;
        let dir = self.uploads_of(collection);
        let path = dir.join(filename);
        let keys = c.file_keys().cloned();
        let (at, plain) = (path.clone(), bytes.to_vec());
        tokio::task::spawn_blocking(move || {
            let name = bear_rag::ingest::upload_name(&at);
            // Sealed under its tag, so the folder shows no file name.
            let file = match &keys {
                Some(k) => bear_rag::ingest::kept_copy(&at, k).ok_or_else(|| {
                    Error::invalid("filename", "a file name BEAR can keep (UTF-8)")
                })?,
                None => at,
            };
            write_whole(&file, &name, keys.as_ref(), &plain).map_err(Error::from)
        })
        .await
        .map_err(|_| storage(std::io::Error::other("the writer stopped")))??;
        let path = bear_rag::ingest::canonical_path(&path, c.file_keys()).map_err(storage)?;
        let document_id = bear_rag::ingest::document_id(&path);
        Ok(Upload { path, document_id })
    }

    /// Removes the uploads folder of a removed collection.
    pub(crate) fn remove_uploads(&self, collection: &str) -> Result<()> {
        let dir = self.uploads_of(collection);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| {
                Error::Core(bear_core::Error::backend(
                    bear_core::ErrorKind::Storage,
                    format!("the collection is removed but its uploads folder is not: {e}"),
                ))
            })?;
        }
        Ok(())
    }

    /// Removes `file` (the copy kept of it) if it is an upload of `collection` (a document
    /// ingested from elsewhere keeps its file).
    pub(crate) fn remove_upload(
        &self,
        collection: &str,
        file: &Path,
        keys: Option<&bear_security::FileKeys>,
    ) {
        if let Ok(uploads) = self.uploads_of(collection).canonicalize()
            && file.parent() == Some(uploads.as_path())
        {
            let _ = std::fs::remove_file(bear_rag::ingest::stored_file(file, keys));
        }
    }
}
