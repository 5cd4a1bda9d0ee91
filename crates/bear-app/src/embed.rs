//! Embedding texts with one model: `bear embed --json`, and the operation under the
//! OpenAI-compatible `/v1/embeddings` shape.

use serde::{Deserialize, Serialize};

use crate::{App, Error, Result};

/// The most texts in one request.
pub const MAX_TEXTS: usize = 256;

/// Texts to embed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedRequest {
    /// The embedding model [default: `models.default_embedder`].
    #[serde(default)]
    pub model: Option<String>,
    /// The texts, 1 to 256.
    pub texts: Vec<String>,
}

/// One vector per text, L2-normalised, in the texts' order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EmbedResponse {
    /// The model.
    pub model: String,
    /// The vectors' dimension.
    pub dimension: usize,
    /// The vectors.
    pub embeddings: Vec<Vec<f32>>,
}

impl App {
    /// Embeds `req.texts`.
    pub async fn embed(&self, req: &EmbedRequest) -> Result<EmbedResponse> {
        if req.texts.is_empty() || req.texts.len() > MAX_TEXTS {
            return Err(Error::invalid(
                "texts",
                format!("from 1 to {MAX_TEXTS} texts"),
            ));
        }
        let id = req
            .model
            .as_deref()
            .unwrap_or(&self.config().config.models.default_embedder);
        let embedder = self.embedder(id).await?;
        let embeddings = embedder.embed(&req.texts).await?;
        Ok(EmbedResponse {
            model: embedder.model().to_string(),
            dimension: embedder.dimension(),
            embeddings,
        })
    }
}

/// An embedder the model manager loads when a text is first embedded (and again after its
/// keep-alive unloaded it), rather than when the retriever is built: a server that offers
/// `rag_query` to workflows holds no embedding model until one runs. Only embedding goes
/// through it; the other questions load the model now.
pub(crate) struct OnDemandEmbedder {
    models: std::sync::Arc<bear_models::ModelManager>,
    id: bear_core::ModelId,
}

impl OnDemandEmbedder {
    /// The manager's model `id`, which must be an embedding model it knows.
    pub(crate) fn new(
        models: std::sync::Arc<bear_models::ModelManager>,
        id: bear_core::ModelId,
    ) -> Result<Self> {
        let known = models.list().into_iter().find(|m| m.entry.id == id);
        match known.map(|m| m.entry.kind) {
            Some(bear_models::ModelKind::Onnx | bear_models::ModelKind::Safetensors) => {
                Ok(Self { models, id })
            }
            Some(bear_models::ModelKind::Gguf) => Err(Error::invalid(
                "models.default_embedder",
                format!("`{id}` is a text generator, not an embedding model"),
            )),
            None => Err(Error::invalid(
                "models.default_embedder",
                format!("no model `{id}` in the models directory; `bear models list` shows them"),
            )),
        }
    }

    fn now(&self) -> bear_core::Result<std::sync::Arc<dyn bear_core::Embedder>> {
        Ok(self.models.embedder(&self.id)?)
    }
}

#[async_trait::async_trait]
impl bear_core::Embedder for OnDemandEmbedder {
    fn model(&self) -> &bear_core::ModelId {
        &self.id
    }

    fn dimension(&self) -> usize {
        self.now().map_or(0, |e| e.dimension())
    }

    fn max_input_tokens(&self) -> usize {
        self.now().map_or(0, |e| e.max_input_tokens())
    }

    fn count_tokens(&self, texts: &[&str]) -> bear_core::Result<Vec<usize>> {
        self.now()?.count_tokens(texts)
    }

    async fn embed(&self, texts: &[String]) -> bear_core::Result<Vec<Vec<f32>>> {
        let (models, id) = (self.models.clone(), self.id.clone());
        let embedder = tokio::task::spawn_blocking(move || models.embedder(&id))
            .await
            .map_err(|_| {
                bear_core::Error::backend(
                    bear_core::ErrorKind::Internal,
                    "the model load stopped unexpectedly",
                )
            })??;
        embedder.embed(texts).await
    }

    fn batch_invariant(&self) -> bool {
        self.now().is_ok_and(|e| e.batch_invariant())
    }

    fn runtime(&self) -> Option<bear_core::EmbedderRuntime> {
        self.now().ok().and_then(|e| e.runtime())
    }
}
