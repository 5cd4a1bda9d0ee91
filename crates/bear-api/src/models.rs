//! Model routes: the seed's `/api/v1/models` (list, load/unload, generate with an SSE variant)
//! and the OpenAI-compatible `/v1/models`, `/v1/chat/completions`, `/v1/completions` and
//! `/v1/embeddings`, all on bear-models' `ModelManager` (queueing, caching, keep-alive).
//!
//! Streams end the generation when the client goes away: the token sink notices the closed
//! channel and stops decoding within one token.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bear_app::generate::{GenerateRequest, GenerateResponse};
use bear_app::models::{ManageRequest, ManageResult, ModelRow, ModelsQuery};
use bear_core::{CancellationToken, Generation, GenerationRequest, ModelId};
use bear_security::access::Permission;
use futures::StreamExt;
use serde_json::json;
use tokio::sync::mpsc;

use crate::AppState;
use crate::error::ApiError;
use crate::gateway::Caller;
use crate::routes::Body;

/// The largest `max_tokens` a request may ask for.
pub const MAX_TOKENS: u32 = bear_app::generate::MAX_TOKENS;
/// The most inputs in one embeddings request.
pub const MAX_BATCH: usize = 256;

type Api<T> = Result<T, ApiError>;
type St = State<Arc<AppState>>;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/models", get(list).post(manage))
        .route("/api/v1/models/{id}/generate", post(generate))
}

pub(crate) fn manager(s: &AppState) -> Api<&Arc<bear_models::ModelManager>> {
    s.models.as_ref().ok_or_else(|| {
        ApiError::from_kind(
            bear_core::ErrorKind::Unavailable,
            "this server runs without models",
        )
    })
}

pub(crate) fn model_id(id: &str) -> Api<ModelId> {
    ModelId::new(id).map_err(|e| ApiError::not_found(e.to_string()))
}

#[utoipa::path(get, path = "/api/v1/models", tag = "models", params(ModelsQuery), responses((status = 200, description = "Models with size, status, metadata and metrics", body = Vec<ModelRow>)))]
pub(crate) async fn list(
    State(s): St,
    caller: Caller,
    q: Result<Query<ModelsQuery>, axum::extract::rejection::QueryRejection>,
) -> Api<Json<Vec<ModelRow>>> {
    caller.require(Permission::Read)?;
    let Query(q) = q?;
    Ok(Json(app(&s)?.model_list(&q).map_err(ApiError::from_query)?))
}

#[utoipa::path(post, path = "/api/v1/models", tag = "models", request_body = ManageRequest, responses((status = 200, description = "The model's new status", body = ManageResult)))]
pub(crate) async fn manage(
    State(s): St,
    caller: Caller,
    Body(b): Body<ManageRequest>,
) -> Api<Json<ManageResult>> {
    caller.require(Permission::Admin)?;
    Ok(Json(app(&s)?.manage_model(&b).await?))
}

/// A generation running in the background, its pieces on a channel, then its result.
pub(crate) enum Piece<D = bear_core::Result<Generation>> {
    Text(String),
    /// A token's log probability, before the text it is part of (when the request asked).
    Logprob(bear_core::TokenLogprob),
    Done(D),
}

/// Forwards a generation's text and log probabilities to its channel; a closed channel (the
/// client went away) stops the generation within one token.
struct PieceSink(mpsc::UnboundedSender<Piece>);

impl bear_core::TokenSink for PieceSink {
    fn on_text(&mut self, piece: &str) -> bool {
        self.0.send(Piece::Text(piece.to_string())).is_ok()
    }

    fn on_logprob(&mut self, logprob: &bear_core::TokenLogprob) {
        let _ = self.0.send(Piece::Logprob(logprob.clone()));
    }
}

pub(crate) fn spawn_generation(
    s: &AppState,
    request: GenerationRequest,
) -> Api<(mpsc::UnboundedReceiver<Piece>, CancellationToken)> {
    spawn_generation_under(s, request, CancellationToken::new())
}

/// [`spawn_generation`] cancelled by `cancel` (a child of a token covering several).
pub(crate) fn spawn_generation_under(
    s: &AppState,
    request: GenerationRequest,
    cancel: CancellationToken,
) -> Api<(mpsc::UnboundedReceiver<Piece>, CancellationToken)> {
    let m = manager(s)?.clone();
    request.validate()?;
    let slot = s.queue_slot(&request.model)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let token = cancel.clone();
    let sink = Box::new(PieceSink(tx.clone()));
    tokio::spawn(async move {
        let result = m.generate_with(request, sink, token).await;
        drop(slot);
        let _ = tx.send(Piece::Done(result));
    });
    Ok((rx, cancel))
}

/// Cancels the generation when the response (and so the stream) is dropped.
pub(crate) struct CancelOnDrop(pub(crate) CancellationToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Waits for the result, skipping the streamed pieces; dropping the wait cancels the work.
pub(crate) async fn collect<T, E: Into<ApiError>>(
    mut rx: mpsc::UnboundedReceiver<Piece<Result<T, E>>>,
    cancel: CancellationToken,
) -> Api<T> {
    let _guard = CancelOnDrop(cancel);
    while let Some(p) = rx.recv().await {
        if let Piece::Done(r) = p {
            return r.map_err(Into::into);
        }
    }
    Err(ApiError::from_kind(
        bear_core::ErrorKind::Internal,
        "the generation stopped unexpectedly",
    ))
}

/// `POST /api/v1/models/{id}/generate`: the seed's fields (`prompt`, `max_tokens` default 100,
/// `temperature` default 0.7, `stop_sequences`) and the rest of bear-app's
/// [`GenerateRequest`]; the prompt goes through the model's chat template unless `raw`.
/// `"stream": true` answers with SSE (`token` events, then one `done` event with the totals).
#[utoipa::path(post, path = "/api/v1/models/{id}/generate", tag = "models", request_body = GenerateRequest, params(("id" = String, Path, description = "The model id")), responses((status = 200, description = "text, tokens_used, generation_time; with stream, SSE `token` events and one `done` event carrying the same body", content((GenerateResponse = "application/json"), (String = "text/event-stream")))))]
pub(crate) async fn generate(
    State(s): St,
    caller: Caller,
    Path(id): Path<String>,
    Body(mut b): Body<GenerateRequest>,
) -> Api<Response> {
    caller.require(Permission::Write)?;
    let app = app(&s)?.clone();
    if b.model.as_ref().is_some_and(|m| *m != id) {
        return Err(ApiError::from(bear_app::Error::invalid(
            "model",
            "the model is named by the path; leave it out of the body",
        )));
    }
    b.model = Some(model_id(&id)?.to_string());
    let (request, _) = app.generation_request(&b)?;
    let slot = s.queue_slot(&request.model)?;
    let (tx, rx) = mpsc::unbounded_channel::<Piece<bear_app::Result<GenerateResponse>>>();
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    let sink_tx = tx.clone();
    let stream = b.stream;
    tokio::spawn(async move {
        // A closed channel (the client went away) stops the generation within one token.
        let sink = Box::new(move |p: &str| sink_tx.send(Piece::Text(p.to_string())).is_ok());
        let result = app.generate(b, sink, token).await;
        drop(slot);
        let _ = tx.send(Piece::Done(result));
    });
    if !stream {
        let g = collect(rx, cancel).await?;
        return Ok(Json(g).into_response());
    }
    let stream = sse_stream(rx, cancel, move |p| match p {
        Piece::Text(t) => vec![
            SseEvent::default()
                .event("token")
                .data(json!({"text": t}).to_string()),
        ],
        Piece::Logprob(_) => Vec::new(),
        Piece::Done(Ok(g)) => vec![
            SseEvent::default()
                .event("done")
                .data(serde_json::to_string(&g).unwrap_or_default()),
        ],
        Piece::Done(Err(e)) => vec![error_event(&e.into())],
    });
    Ok(Sse::new(stream).into_response())
}

/// The application, which the server always has; a state built without it answers 503.
pub(crate) fn app(s: &AppState) -> Api<&Arc<bear_app::App>> {
    s.app.as_ref().ok_or_else(|| {
        ApiError::from_kind(
            bear_core::ErrorKind::Unavailable,
            "this server runs without models",
        )
    })
}

pub(crate) fn error_event(e: &ApiError) -> SseEvent {
    let body = bear_app::ErrorBody::with_kind_name(e.kind, e.message.clone(), e.field.clone());
    SseEvent::default()
        .event("error")
        .data(serde_json::to_string(&body).unwrap_or_default())
}

/// Maps generation pieces to SSE events until the generation ends; dropping the stream
/// cancels the generation.
pub(crate) fn sse_stream<D: Send + 'static>(
    rx: mpsc::UnboundedReceiver<Piece<D>>,
    cancel: CancellationToken,
    mut map: impl FnMut(Piece<D>) -> Vec<SseEvent> + Send + 'static,
) -> impl futures::Stream<Item = Result<SseEvent, Infallible>> + Send + 'static {
    let guard = CancelOnDrop(cancel);
    futures::stream::unfold((rx, guard, false), |(mut rx, guard, ended)| async move {
        if ended {
            return None;
        }
        let p = rx.recv().await?;
        let done = matches!(p, Piece::Done(_));
        Some((p, (rx, guard, done)))
    })
    .flat_map(move |p| futures::stream::iter(map(p).into_iter().map(Ok)))
}
