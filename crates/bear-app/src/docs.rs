//! Collections and their documents: listing, creating and removing, with one shape for
//! `bear --json collections|docs` and the REST collection routes. A viewer sees what it may
//! ([`Viewer::may_see`]); anything else does not exist for it.

use bear_core::PiiPolicy;
use serde::{Deserialize, Serialize};

use crate::{App, Error, Result, Viewer};

/// A collection (one per matter) with its counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CollectionView {
    /// Its name.
    pub name: String,
    /// How PII is scrubbed before its text is embedded or stored: `tokenize`, `replace`,
    /// `mask`, `hash` or `redact`.
    #[schema(value_type = String)]
    pub pii_policy: PiiPolicy,
    /// The embedding model its vectors come from.
    pub embedder: String,
    /// Vector dimension.
    pub dimension: usize,
    /// When it was created, Unix seconds.
    pub created_at: i64,
    /// Documents stored.
    pub documents: usize,
    /// Chunks stored.
    pub chunks: usize,
    /// Whether its files are sealed under its own data key (encrypted at rest).
    pub sealed: bool,
    /// The code its vectors came from, such as `onnxruntime 1.22.0
    /// (all-MiniLM-L6-v2-fused/model.onnx)`; none before its first ingest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedder_runtime: Option<String>,
}

impl CollectionView {
    fn of(m: &bear_rag::CollectionMeta, documents: usize, chunks: usize) -> Self {
        Self {
            name: m.name.clone(),
            pii_policy: m.pii_policy,
            embedder: m.embedder.clone(),
            dimension: m.dimension,
            created_at: m.created_at,
            documents,
            chunks,
            sealed: m.sealed,
            embedder_runtime: m.embedder_runtime.as_ref().map(ToString::to_string),
        }
    }
}

/// A new collection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCollection {
    /// 1 to 64 of `a-z`, `0-9`, `-` and `_`, starting with a letter or digit.
    pub name: String,
    /// `tokenize`, `replace`, `mask`, `hash` or `redact` [default: `rag.pii_policy`].
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "replace")]
    pub pii_policy: Option<PiiPolicy>,
}

/// A stored document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DocumentView {
    /// Stable id (32 hex digits), from the file's canonical path.
    pub id: String,
    /// The file's canonical path.
    pub path: String,
    /// Title from the document, else the file name.
    pub title: String,
    /// Author, if the document names one (scrubbed like the text).
    pub author: Option<String>,
    /// Creation date as the document states it.
    pub created: Option<String>,
    /// Modification date as the document states it.
    pub modified: Option<String>,
    /// The file's modification time, Unix seconds.
    pub file_modified: i64,
    /// Pages, for paged formats.
    pub page_count: Option<u32>,
    /// MIME type.
    pub mime: String,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    /// Chunks stored.
    pub chunks: u32,
    /// When it was ingested, Unix seconds.
    pub ingested_at: i64,
    /// An e-mail message's header fields and its place in a thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail: Option<MailView>,
}

/// An e-mail message's header fields (scrubbed like the text, as stored) and the message of
/// the collection it answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MailView {
    /// Sender.
    pub from: Option<String>,
    /// Recipients.
    pub to: Option<String>,
    /// Copied recipients.
    pub cc: Option<String>,
    /// The Date header as the message states it.
    pub date: Option<String>,
    /// When it was sent, Unix seconds.
    pub sent: Option<i64>,
    /// Subject.
    pub subject: Option<String>,
    /// Message-ID.
    pub message_id: Option<String>,
    /// In-Reply-To.
    pub in_reply_to: Option<String>,
    /// The document id of the message this one answers, when the collection holds it.
    pub replies_to: Option<String>,
}

/// Document views of `docs`, each message linked to the message it answers.
fn views(docs: Vec<bear_rag::DocumentRecord>) -> Vec<DocumentView> {
    let links = bear_rag::store::reply_links(&docs);
    docs.into_iter()
        .map(|d| {
            let replies_to = links.get(&d.id).cloned();
            let mut v = DocumentView::from(d);
            if let Some(m) = v.mail.as_mut() {
                m.replies_to = replies_to;
            }
            v
        })
        .collect()
}

impl From<bear_rag::DocumentRecord> for DocumentView {
    fn from(d: bear_rag::DocumentRecord) -> Self {
        let mail = d.mail.map(|m| MailView {
            from: m.from,
            to: m.to,
            cc: m.cc,
            date: m.date,
            sent: m.sent,
            subject: m.subject,
            message_id: m.message_id,
            in_reply_to: m.in_reply_to,
            replies_to: None,
        });
        Self {
            mail,
            id: d.id,
            path: d.path,
            title: d.title,
            author: d.author,
            created: d.created,
            modified: d.modified,
            file_modified: d.file_modified,
            page_count: d.page_count,
            mime: d.mime,
            sha256: d.sha256,
            size: d.size,
            chunks: d.chunks,
            ingested_at: d.ingested_at,
        }
    }
}

/// What a removal removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Removed {
    /// The collection or document id.
    pub id: String,
    /// The document's path, for documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `removed` (`revoked` for an API key).
    pub status: String,
}

fn not_found(message: String) -> Error {
    Error::Core(bear_core::Error::backend(
        bear_core::ErrorKind::NotFound,
        message,
    ))
}

/// Document `which` of `c`: by id, by stored path, or by the canonical form of a given path.
pub(crate) async fn find_document(
    c: &bear_rag::Collection,
    which: &str,
) -> Result<bear_rag::DocumentRecord> {
    let canonical = std::fs::canonicalize(which)
        .ok()
        .map(|p| p.display().to_string());
    c.documents()
        .await?
        .into_iter()
        .find(|d| d.id == which || d.path == which || Some(&d.path) == canonical.as_ref())
        .ok_or_else(|| {
            not_found(format!(
                "no document `{which}` in `{}`; `bear docs list` shows them",
                c.meta().name
            ))
        })
}

impl App {
    /// The collections `viewer` may see, with their counts.
    pub async fn collections(&self, viewer: &Viewer) -> Result<Vec<CollectionView>> {
        Ok(self
            .store()
            .list()
            .await?
            .iter()
            .filter(|c| viewer.may_see(c.meta.owner.as_deref()))
            .map(|c| CollectionView::of(&c.meta, c.documents, c.chunks))
            .collect())
    }

    /// One collection with its counts.
    pub async fn collection_view(&self, viewer: &Viewer, name: &str) -> Result<CollectionView> {
        let c = self.collection(viewer, Some(name)).await?;
        let docs = c.documents().await?;
        let chunks = docs.iter().map(|d| d.chunks as usize).sum();
        Ok(CollectionView::of(c.meta(), docs.len(), chunks))
    }

    /// Creates a collection for the default embedder, owned by `viewer` when it is a key. A
    /// policy this application cannot apply (tokenize without a keyring) is refused before
    /// anything is written.
    pub async fn create_collection(
        &self,
        viewer: &Viewer,
        req: &CreateCollection,
    ) -> Result<CollectionView> {
        bear_rag::store::check_name(&req.name)
            .map_err(|e| Error::invalid("name", e.to_string()))?;
        // Opened before the change, so an unwritable log (failing closed) changes nothing.
        self.audit_log()?;
        let policy = req
            .pii_policy
            .unwrap_or(self.config().config.rag.pii_policy);
        self.scrubber_for(policy)?;
        let embedder = self
            .embedder(&self.config().config.models.default_embedder)
            .await?;
        let owner = match viewer {
            Viewer::Local => None,
            Viewer::Key { id, .. } => Some(id.as_str()),
        };
        let c = self
            .store()
            .create_owned(
                &req.name,
                policy,
                embedder.model().as_str(),
                embedder.dimension(),
                owner,
            )
            .await?;
        self.record(viewer, "rag.collections.create", "ok", (0, 0))?;
        Ok(CollectionView::of(c.meta(), 0, 0))
    }

    /// Removes a collection with its documents: its data keys are destroyed first
    /// (crypto-shredding: a copy of its files made before can no longer be opened with the
    /// keyring), then its files.
    pub async fn remove_collection(&self, viewer: &Viewer, name: &str) -> Result<Removed> {
        // Its metadata only: a collection whose key is already gone (a removal cut short)
        // can still be removed.
        self.visible_meta(viewer, name)?;
        self.audit_log()?;
        self.shred(name)?;
        self.store().remove(name)?;
        self.record(viewer, "rag.collections.rm", "ok", (0, 0))?;
        self.remove_uploads(name)?;
        Ok(Removed {
            id: name.to_string(),
            path: None,
            status: "removed".into(),
        })
    }

    /// Writes an unsealed LanceDB copy of collection `name` to `dest` (see
    /// [`bear_rag::Collection::export_to`]), audited: data leaves BEAR's sealing here.
    pub async fn export_collection(
        &self,
        viewer: &Viewer,
        name: &str,
        dest: &std::path::Path,
        on_table: &mut (dyn FnMut(&str, u64) + Send),
    ) -> Result<bear_rag::Exported> {
        let c = self.collection(viewer, Some(name)).await?;
        self.audit_log()?;
        let done = c.export_to(dest, on_table).await;
        let (outcome, sizes) = match &done {
            Ok(d) => ("ok", (d.documents, d.chunks)),
            Err(_) => ("error", (0, 0)),
        };
        self.record(viewer, "rag.collections.export", outcome, sizes)?;
        Ok(done?)
    }

    /// The documents of collection `name` (the default when `None`), by path.
    pub async fn documents(
        &self,
        viewer: &Viewer,
        name: Option<&str>,
    ) -> Result<Vec<DocumentView>> {
        let c = self.collection(viewer, name).await?;
        Ok(views(c.documents().await?))
    }

    /// The document `which` of collection `name`: its id, or its path as stored or as given
    /// (resolved to the canonical path).
    pub async fn document(
        &self,
        viewer: &Viewer,
        name: Option<&str>,
        which: &str,
    ) -> Result<DocumentView> {
        let c = self.collection(viewer, name).await?;
        let id = find_document(&c, which).await?.id;
        views(c.documents().await?)
            .into_iter()
            .find(|d| d.id == id)
            .ok_or_else(|| not_found(format!("no document `{which}` in the collection")))
    }

    /// Removes document `which` (id or path) and its chunks, then tidies the indexes.
    pub async fn remove_document(
        &self,
        viewer: &Viewer,
        name: Option<&str>,
        which: &str,
    ) -> Result<Removed> {
        let c = self.collection(viewer, name).await?;
        let doc = find_document(&c, which).await?;
        self.audit_log()?;
        // With it go the documents it holds (an e-mail's attachments, a mailbox's messages).
        let below = format!("{}/", doc.path);
        let mut ids = vec![doc.id.clone()];
        ids.extend(
            c.documents()
                .await?
                .into_iter()
                .filter(|d| d.path.starts_with(&below))
                .map(|d| d.id),
        );
        c.delete_documents(&ids).await?;
        c.optimize(self.config().config.rag.ann_threshold).await?;
        self.record(viewer, "rag.docs.rm", "ok", (1, 0))?;
        self.remove_upload(
            &c.meta().name,
            std::path::Path::new(&doc.path),
            c.file_keys(),
        );
        Ok(Removed {
            id: doc.id,
            path: Some(doc.path),
            status: "removed".into(),
        })
    }
}

/// A document's text as its stored passages in order, PII restored as in search hits: what
/// a citation is shown in (`GET .../documents/{id}/text`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DocumentText {
    /// The document.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its MIME type.
    pub mime: String,
    /// Its passages, in document order.
    pub chunks: Vec<Passage>,
}

/// One stored passage of a document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Passage {
    /// Its position in the document (a source's `ordinal`).
    pub ordinal: u32,
    /// 1-based page, for paged formats.
    pub page: Option<u32>,
    /// Its text, restored.
    pub text: String,
}

/// A document's original file, for showing its pages (`GET .../documents/{id}/file`).
#[derive(Debug, Clone)]
pub struct DocumentFile {
    /// The file's bytes, checked against the hash taken at ingest.
    pub bytes: Vec<u8>,
    /// Its MIME type.
    pub mime: String,
}

impl App {
    /// Document `which`'s text, passage by passage.
    pub async fn document_text(
        &self,
        viewer: &Viewer,
        name: Option<&str>,
        which: &str,
    ) -> Result<DocumentText> {
        let c = self.collection(viewer, name).await?;
        let doc = find_document(&c, which).await?;
        let scrubber = self.scrubber_of(&c)?;
        let chunks = c
            .document_chunks(&doc.id)
            .await?
            .into_iter()
            .map(|h| {
                Ok(Passage {
                    ordinal: h.ordinal,
                    page: h.page,
                    text: scrubber.restore(&h.text)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(DocumentText {
            id: doc.id,
            title: doc.title,
            mime: doc.mime,
            chunks,
        })
    }

    /// Document `which`'s original file: the uploaded copy, or the file it was ingested from,
    /// as long as it is byte for byte the one ingested.
    pub async fn document_file(
        &self,
        viewer: &Viewer,
        name: Option<&str>,
        which: &str,
    ) -> Result<DocumentFile> {
        let c = self.collection(viewer, name).await?;
        let doc = find_document(&c, which).await?;
        let gone = || {
            not_found(format!(
                "the original file of document {} has moved or changed since it was ingested; \
                 its text is still shown (ingest it again to see its pages)",
                doc.id
            ))
        };
        let path = std::path::PathBuf::from(&doc.path);
        let keys = c.file_keys().cloned();
        let bytes = tokio::task::spawn_blocking(move || {
            let name = bear_rag::ingest::upload_name(&path);
            let file = bear_rag::ingest::stored_file(&path, keys.as_ref());
            bear_security::crypto::segment::read_whole(&file, &name, keys.as_ref())
        })
        .await
        .map_err(|_| gone())?
        .map_err(|e| match e {
            // A damaged sealed upload says so (naming the document's file, not the tag it is
            // kept under), rather than "moved".
            bear_security::Error::Integrity { reason, .. } => {
                Error::Security(bear_security::Error::Integrity {
                    what: doc.path.clone(),
                    reason,
                })
            }
            _ => gone(),
        })?;
        if bear_rag::content_sha256(&bytes) != doc.sha256 {
            return Err(gone());
        }
        Ok(DocumentFile {
            bytes,
            mime: doc.mime,
        })
    }
}
