//! The OpenAI-compatible routes: `/v1/models`, `/v1/chat/completions`, `/v1/completions`
//! (each streamed as SSE chunks or not) and `/v1/embeddings` (float or base64), on the same
//! model manager and generation queue as `/api/v1/models`. Bodies are OpenAI's shapes, as
//! named structs, so the official clients work unchanged and the OpenAPI description says
//! what they get.

use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bear_app::generate::Sampling;
use bear_core::{FinishReason, Generation, GenerationRequest, Prompt, Redacted, SamplingParams};
use bear_security::access::Permission;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::gateway::Caller;
use crate::models::{
    MAX_BATCH, MAX_TOKENS, Piece, collect, manager, model_id, spawn_generation, sse_stream,
};
use crate::routes::Body;

type Api<T> = Result<T, ApiError>;
type St = State<Arc<AppState>>;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/models", get(openai_models))
        .route(
            "/v1/chat/completions",
            post(crate::openai_chat::chat_completions),
        )
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
}

/// `GET /v1/models`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ModelList {
    /// Always `list`.
    object: &'static str,
    /// The models.
    data: Vec<OpenAiModel>,
}

/// One model, as OpenAI lists it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct OpenAiModel {
    /// The model's id.
    id: String,
    /// Always `model`.
    object: &'static str,
    /// Always 0: BEAR does not know when a model file was made.
    created: u64,
    /// Always `bear`.
    owned_by: &'static str,
}

/// Token counts of a completion.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub(crate) struct Usage {
    /// Tokens in the prompt (after the chat template).
    pub(crate) prompt_tokens: u32,
    /// Tokens generated.
    pub(crate) completion_tokens: u32,
    /// Their sum.
    pub(crate) total_tokens: u32,
    /// How the prompt tokens were processed.
    pub(crate) prompt_tokens_details: PromptTokensDetails,
}

/// Of the prompt tokens, those the model's prompt cache already held.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub(crate) struct PromptTokensDetails {
    /// Prompt tokens not decoded again.
    pub(crate) cached_tokens: u32,
}

/// A text completion (`/v1/completions` without `stream`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Completion {
    /// `cmpl-…`.
    id: String,
    /// Always `text_completion`.
    object: &'static str,
    /// Unix seconds.
    created: u64,
    /// The model.
    model: String,
    /// One choice.
    choices: Vec<CompletionChoice>,
    /// Token counts.
    usage: Usage,
}

/// The one choice of a [`Completion`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CompletionChoice {
    /// Always 0.
    index: u32,
    /// The text.
    text: String,
    /// `stop` or `length`.
    finish_reason: &'static str,
    /// Always null.
    #[schema(value_type = Option<Object>)]
    logprobs: Option<()>,
}

/// `/v1/embeddings`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EmbeddingList {
    /// Always `list`.
    object: &'static str,
    /// One vector per input, in order.
    data: Vec<EmbeddingItem>,
    /// The model.
    model: String,
    /// Token counts.
    usage: EmbeddingUsage,
}

/// One input's vector.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EmbeddingItem {
    /// Always `embedding`.
    object: &'static str,
    /// The input's position.
    index: usize,
    /// The vector.
    embedding: Vector,
}

/// A vector as floats, or (`encoding_format: base64`) its little-endian f32 bytes in base64.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum Vector {
    /// Floats.
    Float(Vec<f32>),
    /// Base64 of little-endian f32s.
    Base64(String),
}

/// Token counts of an embeddings request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EmbeddingUsage {
    /// Tokens in the inputs.
    prompt_tokens: usize,
    /// The same.
    total_tokens: usize,
}

pub(crate) fn created() -> u64 {
    bear_agents::now_ms() / 1000
}

#[utoipa::path(get, path = "/v1/models", tag = "openai", responses((status = 200, description = "OpenAI model list", body = ModelList)))]
pub(crate) async fn openai_models(State(s): St, caller: Caller) -> Api<Json<ModelList>> {
    caller.require(Permission::Read)?;
    let data = manager(&s)?
        .list()
        .into_iter()
        .map(|m| OpenAiModel {
            id: m.entry.id.to_string(),
            object: "model",
            created: 0,
            owned_by: "bear",
        })
        .collect();
    Ok(Json(ModelList {
        object: "list",
        data,
    }))
}

/// `stop` is a string or a list of strings.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum Stop {
    One(String),
    Many(Vec<String>),
}

/// The sampling fields OpenAI clients send. Unknown fields are accepted, as clients send
/// fields BEAR does not use (`n`, `user`, `stream_options`, ...).
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct OpenAiSampling {
    pub(crate) model: String,
    #[serde(default)]
    pub(crate) stream: bool,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    stop: Option<Stop>,
    #[serde(default)]
    presence_penalty: Option<f32>,
    #[serde(default)]
    frequency_penalty: Option<f32>,
    /// BEAR's repetition penalty (llama-server's extension); 1 disables [default: 1.1].
    #[serde(default)]
    repeat_penalty: Option<f32>,
}

impl OpenAiSampling {
    /// The sampling asked for; bear-app fills in the rest and checks the limits.
    pub(crate) fn sampling(&self) -> Sampling {
        Sampling {
            max_tokens: self.max_completion_tokens.or(self.max_tokens),
            temperature: self.temperature,
            top_p: self.top_p,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            repeat_penalty: self.repeat_penalty,
            seed: self.seed,
            stop: match &self.stop {
                None => Vec::new(),
                Some(Stop::One(s)) => vec![s.clone()],
                Some(Stop::Many(v)) => v.clone(),
            },
            ..Sampling::default()
        }
    }

    fn params(&self) -> Api<SamplingParams> {
        Ok(self.sampling().params(openai_defaults(), MAX_TOKENS)?)
    }
}

/// OpenAI's defaults where a request leaves a value out: 256 tokens (OpenAI has no fixed
/// limit; BEAR's models are small), temperature 1, top_p 1; BEAR's top-k (40) and repetition
/// penalty (1.1), which small local models need to stay on topic and to stop, as
/// llama-server keeps its own; `repeat_penalty` (llama-server's extension) sets the penalty.
pub(crate) fn openai_defaults() -> SamplingParams {
    SamplingParams {
        max_tokens: 256,
        temperature: 1.0,
        top_p: 1.0,
        ..SamplingParams::default()
    }
}

pub(crate) fn finish(r: FinishReason) -> &'static str {
    match r {
        FinishReason::Length => "length",
        _ => "stop",
    }
}

pub(crate) fn usage(g: &Generation) -> Usage {
    Usage {
        prompt_tokens: g.prompt_tokens,
        completion_tokens: g.completion_tokens,
        total_tokens: g.prompt_tokens + g.completion_tokens,
        prompt_tokens_details: PromptTokensDetails {
            cached_tokens: g.prompt_cached_tokens,
        },
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct CompletionBody {
    #[serde(flatten)]
    sampling: OpenAiSampling,
    prompt: String,
}

#[utoipa::path(post, path = "/v1/completions", tag = "openai", request_body = CompletionBody, responses((status = 200, description = "An OpenAI text completion, or its chunks as SSE", content((Completion = "application/json"), (String = "text/event-stream")))))]
pub(crate) async fn completions(
    State(s): St,
    caller: Caller,
    Body(b): Body<CompletionBody>,
) -> Api<Response> {
    caller.require(Permission::Write)?;
    let model = model_id(&b.sampling.model)?;
    let request = GenerationRequest {
        model: model.clone(),
        prompt: Prompt::Text(Redacted::new(b.prompt)),
        params: b.sampling.params()?,
    };
    let id = format!("cmpl-{}", uuid::Uuid::now_v7().simple());
    let (rx, cancel) = spawn_generation(&s, request)?;
    if !b.sampling.stream {
        let g = collect(rx, cancel).await?;
        return Ok(Json(Completion {
            id,
            object: "text_completion",
            created: created(),
            model: model.to_string(),
            choices: vec![CompletionChoice {
                index: 0,
                text: g.text.expose().clone(),
                finish_reason: finish(g.finish_reason),
                logprobs: None,
            }],
            usage: usage(&g),
        })
        .into_response());
    }
    let chunk = move |text: &str, reason: Option<&str>| {
        json!({"id": id, "object": "text_completion", "created": created(), "model": model,
               "choices": [{"index": 0, "text": text, "finish_reason": reason, "logprobs": null}]})
        .to_string()
    };
    let stream = sse_stream(rx, cancel, move |p| match p {
        Piece::Text(t) => vec![SseEvent::default().data(chunk(&t, None))],
        Piece::Logprob(_) => Vec::new(),
        Piece::Done(Ok(g)) => vec![
            SseEvent::default().data(chunk("", Some(finish(g.finish_reason)))),
            SseEvent::default().data("[DONE]"),
        ],
        Piece::Done(Err(e)) => vec![error_chunk(&e.into())],
    });
    Ok(Sse::new(stream).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum Input {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct EmbeddingsBody {
    model: String,
    input: Input,
    #[serde(default)]
    encoding_format: Option<String>,
}

#[utoipa::path(post, path = "/v1/embeddings", tag = "openai", request_body = EmbeddingsBody, responses((status = 200, description = "OpenAI embeddings, float or base64", body = EmbeddingList)))]
pub(crate) async fn embeddings(
    State(s): St,
    caller: Caller,
    Body(b): Body<EmbeddingsBody>,
) -> Api<Json<EmbeddingList>> {
    caller.require(Permission::Write)?;
    let as_base64 = match b.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => {
            return Err(ApiError::invalid(
                "encoding_format: expected float or base64",
            ));
        }
    };
    let texts = match b.input {
        Input::One(t) => vec![t],
        Input::Many(v) => v,
    };
    if texts.is_empty() || texts.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!(
            "input: give 1 to {MAX_BATCH} texts"
        )));
    }
    let model = model_id(&b.model)?;
    let m = manager(&s)?;
    let vectors = m.embed_with(&model, &texts).await?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tokens: usize = m
        .embedder(&model)
        .map_err(|e| ApiError::from_kind(e.kind(), e.to_string()))?
        .count_tokens(&refs)?
        .iter()
        .sum();
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if as_base64 {
                // Little-endian f32s, as OpenAI's clients decode them.
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Vector::Base64(base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    bytes,
                ))
            } else {
                Vector::Float(v)
            };
            EmbeddingItem {
                object: "embedding",
                index,
                embedding,
            }
        })
        .collect();
    Ok(Json(EmbeddingList {
        object: "list",
        data,
        model: model.to_string(),
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    }))
}

/// An error as OpenAI's clients read it: `{"error": {"message", "type", "param", "code"}}`,
/// with `code` BEAR's failure class. Every `/v1/` error response is rewritten to this by the
/// gateway, and a failed stream ends with it as its last chunk.
pub(crate) fn openai_error(status: u16, kind: &str, message: &str, field: Option<&str>) -> Value {
    let kind_of = match status {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        500..=599 => "server_error",
        _ => "invalid_request_error",
    };
    let body = OpenAiErrorBody {
        error: OpenAiError {
            message: message.to_string(),
            kind: kind_of,
            param: field.map(str::to_string),
            code: kind.to_string(),
        },
    };
    serde_json::to_value(body).unwrap_or_default()
}

/// An error on the OpenAI-compatible routes, in OpenAI's shape.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct OpenAiErrorBody {
    /// The error.
    error: OpenAiError,
}

/// The parts of an [`OpenAiErrorBody`].
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct OpenAiError {
    /// What failed and what to do; never user text.
    message: String,
    /// `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `rate_limit_error` or `server_error`.
    #[serde(rename = "type")]
    kind: &'static str,
    /// The request field at fault, or null.
    param: Option<String>,
    /// BEAR's failure class (`invalid_request`, `not_found`, `unavailable`, ...).
    code: String,
}

/// A stream's last chunk when generation fails.
pub(crate) fn error_chunk(e: &ApiError) -> SseEvent {
    let body = openai_error(e.status.as_u16(), e.kind, &e.message, e.field.as_deref());
    SseEvent::default().data(body.to_string())
}

/// The status OpenAI gives a failure BEAR answers with `status`: 400 for a body that parsed
/// but is wrong (BEAR's 422).
pub(crate) fn openai_status(status: axum::http::StatusCode) -> axum::http::StatusCode {
    match status {
        axum::http::StatusCode::UNPROCESSABLE_ENTITY => axum::http::StatusCode::BAD_REQUEST,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One example of each OpenAI shape, pinned (`src/snapshots/`).
    #[test]
    fn openai_shapes() {
        let usage = || Usage {
            prompt_tokens: 12,
            completion_tokens: 3,
            total_tokens: 15,
            prompt_tokens_details: PromptTokensDetails { cached_tokens: 8 },
        };
        let models = ModelList {
            object: "list",
            data: vec![OpenAiModel {
                id: "SmolLM2-135M-Instruct.Q4_1".into(),
                object: "model",
                created: 0,
                owned_by: "bear",
            }],
        };
        insta::assert_json_snapshot!("openai_model_list", models);
        let completion = Completion {
            id: "cmpl-0".into(),
            object: "text_completion",
            created: 1_764_700_000,
            model: "SmolLM2-135M-Instruct.Q4_1".into(),
            choices: vec![CompletionChoice {
                index: 0,
                text: " Paris.".into(),
                finish_reason: "length",
                logprobs: None,
            }],
            usage: usage(),
        };
        insta::assert_json_snapshot!("openai_completion", completion);
        let embeddings = EmbeddingList {
            object: "list",
            data: vec![
                EmbeddingItem {
                    object: "embedding",
                    index: 0,
                    embedding: Vector::Float(vec![0.5, -0.25]),
                },
                EmbeddingItem {
                    object: "embedding",
                    index: 1,
                    embedding: Vector::Base64("AAAAPwAAgL4=".into()),
                },
            ],
            model: "all-MiniLM-L6-v2".into(),
            usage: EmbeddingUsage {
                prompt_tokens: 4,
                total_tokens: 4,
            },
        };
        insta::assert_json_snapshot!("openai_embeddings", embeddings);
    }
}
