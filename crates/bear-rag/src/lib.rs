//! bear-rag: document ingestion, chunking, the LanceDB store, retrieval and cited answers.
//!
//! Layer **L2**; depends on bear-core, and on bear-security (L1) for sealing its files. It
//! reaches embedders, generators and the PII scrubber only through bear-core's traits
//! ([`bear_core::Embedder`], [`bear_core::TextGenerator`], [`bear_core::PiiScrubber`]), so it
//! never depends on bear-models.
//!
//! - [`extract`]: text, pages and metadata from txt, md, html, pdf, docx, pptx, odt, xlsx,
//!   ods, eml, mbox, zip and images, under limits.
//! - [`redact`]: redacted copies of PDF and DOCX files.
//! - [`chunk`]: token-aware chunks that respect headings, paragraphs and sentences.
//! - [`store`]: one LanceDB database per collection; vector, full-text and hybrid search.
//! - [`ingest`]: the pipeline, idempotent and crash-safe.
//! - [`answer`]: `ask`, with numbered citations and restored PII.
//! - [`RagRetriever`]: bear-core's [`Retriever`] over the store, for agents and the API.
//!
//! Invariants:
//! - Documents never leave the machine: LanceDB is an embedded database on local paths.
//! - Text is scrubbed before it is embedded or stored; what is stored is the scrubbed text.
//! - Error messages and logs name files and limits, never document text.

pub mod answer;
pub mod chunk;
mod error;
pub mod extract;
mod flat;
pub mod ingest;
pub mod redact;
pub mod store;
pub mod verify;

use std::sync::Arc;

use bear_core::{Embedder, PiiScrubber, RetrievalQuery, RetrievedChunk, Retriever};

pub use answer::{Answer, AskOptions, Scope, ask, ask_in};
pub use error::{Error, Result};
pub use ingest::{IngestOptions, IngestReport, Pipeline, Progress, content_sha256, ingest};
pub use store::{
    AnnTuning, Collection, CollectionInfo, CollectionMeta, DocumentRecord, Exported, Filter, Hit,
    MailFilter, MailMeta, SearchMode, Store, VECTOR_INDEX,
};

/// Log filter directives (`tracing_subscriber::EnvFilter` syntax) that quiet what the store's
/// libraries log on every call and a user cannot act on: lance's deprecation notice on each
/// search that names its columns, its io_uring threads' counters (at info, ten times a
/// second), and LanceDB's notice that a database URI names an engine (`?engine=uring`, how
/// [`Store`] asks for io_uring reads). Append them to a program's default filter.
pub const LOG_DIRECTIVES: &str =
    "lance::dataset::scanner=error,lance_io::uring=warn,lancedb::database::listing=error";

/// bear-core's [`Retriever`] over a [`Store`]: hybrid search in the named collection. The
/// query is scrubbed like the documents were; returned texts are the stored (scrubbed) texts.
#[derive(Clone)]
pub struct RagRetriever {
    store: Store,
    embedder: Arc<dyn Embedder>,
    scrubber: Arc<dyn PiiScrubber>,
}

impl std::fmt::Debug for RagRetriever {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RagRetriever")
            .field("root", &self.store.root())
            .finish_non_exhaustive()
    }
}

impl RagRetriever {
    /// A retriever over `store`.
    pub fn new(store: Store, embedder: Arc<dyn Embedder>, scrubber: Arc<dyn PiiScrubber>) -> Self {
        Self {
            store,
            embedder,
            scrubber,
        }
    }

    /// Scrubs and embeds `text`, then searches `collection`.
    pub async fn search(
        &self,
        collection: &Collection,
        text: &str,
        mode: SearchMode,
        k: usize,
        filter: &Filter,
    ) -> Result<Vec<Hit>> {
        if text.trim().is_empty() {
            return Err(Error::InvalidRequest("the query is empty".into()));
        }
        if k == 0 || k > 1000 {
            return Err(Error::InvalidRequest("k must be between 1 and 1000".into()));
        }
        let q = self.scrubber.scrub(text)?.text.expose().clone();
        let v = match mode {
            SearchMode::FullText => None,
            _ => self.embedder.embed(std::slice::from_ref(&q)).await?.pop(),
        };
        let restore = |t: &str| Ok(self.scrubber.restore(t)?);
        let filter = collection.resolve(filter, &restore).await?;
        collection
            .search(mode, &q, v.as_deref(), k, &filter, &AnnTuning::default())
            .await
    }
}

#[async_trait::async_trait]
impl Retriever for RagRetriever {
    async fn retrieve(&self, query: &RetrievalQuery) -> bear_core::Result<Vec<RetrievedChunk>> {
        let collection = self.store.open(query.collection.as_str()).await?;
        let hits = self
            .search(
                &collection,
                query.text.expose(),
                SearchMode::Hybrid,
                query.top_k,
                &Filter::default(),
            )
            .await?;
        Ok(hits
            .into_iter()
            .filter_map(|h| {
                Some(RetrievedChunk {
                    document: bear_core::DocumentId::new(&h.document_id).ok()?,
                    source: h.title,
                    page: h.page,
                    text: bear_core::Redacted::new(h.text),
                    score: h.score,
                })
            })
            .collect())
    }
}
