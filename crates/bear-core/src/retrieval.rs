//! Embeddings and retrieval: [`Embedder`] and [`Retriever`].

use serde::{Deserialize, Serialize};

use crate::error::{Redacted, Result};
use crate::id::{CollectionId, DocumentId, ModelId};

/// Turns text into vectors.
///
/// Implemented by bear-models' `CandleEmbedder` and `OrtEmbedder`. Called by bear-rag during
/// ingestion and search, and by bear-api's embeddings endpoint.
///
/// Callers may assume:
/// - the result has one vector per input, in input order, each of length [`Embedder::dimension`];
/// - vectors are L2-normalised, so a dot product is a cosine similarity;
/// - inputs longer than the model's maximum length are truncated, not refused;
/// - an empty batch returns an empty result without touching the model.
#[async_trait::async_trait]
pub trait Embedder: Send + Sync {
    /// The model behind this embedder.
    fn model(&self) -> &ModelId;

    /// Length of every vector this embedder returns.
    fn dimension(&self) -> usize;

    /// The most tokens of one input the model sees; longer inputs are truncated.
    fn max_input_tokens(&self) -> usize;

    /// How many tokens each text is, by the model's own tokenizer, without special tokens and
    /// without truncation. Chunkers use it to fill chunks up to [`Self::max_input_tokens`].
    fn count_tokens(&self, texts: &[&str]) -> Result<Vec<usize>>;

    /// Embeds a batch of texts.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>>;

    /// Whether a text's vector is the same whatever batch it is embedded in. True for float
    /// models (padding is masked out); false for graphs that quantize activations over the
    /// whole batch, whose vectors move slightly with their batch mates. Callers must not cache
    /// such vectors per text.
    fn batch_invariant(&self) -> bool {
        true
    }

    /// The code computing the vectors, when known (a collection records it).
    fn runtime(&self) -> Option<EmbedderRuntime> {
        None
    }
}

/// Which code computes an embedder's vectors: a collection records the one it was built with.
/// One model's runtimes give the same vectors within the tolerance bear-models tests (cosine
/// 0.9999 to sentence-transformers'), so a switch is reported, not refused; another model is
/// refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbedderRuntime {
    /// `onnxruntime` or `candle`.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The file it computes: the ONNX graph or the safetensors weights, with its folder.
    pub graph: String,
}

impl std::fmt::Display for EmbedderRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.name, self.version, self.graph)
    }
}

/// A search over one collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievalQuery {
    /// Where to search.
    pub collection: CollectionId,
    /// The question or keywords.
    #[serde(with = "crate::generation::redacted_string")]
    pub text: Redacted<String>,
    /// How many chunks to return at most.
    pub top_k: usize,
}

/// One retrieved chunk with where it came from, so answers can cite it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievedChunk {
    /// The source document.
    pub document: DocumentId,
    /// The document's title or file name.
    pub source: String,
    /// The page, for paged formats such as PDF (1-based).
    pub page: Option<u32>,
    /// The chunk's text.
    #[serde(with = "crate::generation::redacted_string")]
    pub text: Redacted<String>,
    /// Relevance; higher is better, comparable only within one result list.
    pub score: f32,
}

/// Finds the chunks most relevant to a query.
///
/// Implemented by bear-rag's `LanceStore` retriever. Called by bear-agents (`rag_query` steps)
/// and bear-api (`/search`, `/ask`).
///
/// Callers may assume results are sorted by descending score, hold at most `top_k` chunks, and
/// that an unknown collection is an [`crate::ErrorKind::NotFound`] error rather than an empty list.
#[async_trait::async_trait]
pub trait Retriever: Send + Sync {
    /// Runs the query.
    async fn retrieve(&self, query: &RetrievalQuery) -> Result<Vec<RetrievedChunk>>;
}
