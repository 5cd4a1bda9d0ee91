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
