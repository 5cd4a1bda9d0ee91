//! Saved chats (the web app's Chat history): list, open, save (new or in place) and delete
//! the caller's own conversations. Each key sees only its own chats, admins included; the
//! store is bear-app's (sealed per user at rest).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use bear_app::chats::{ChatItem, SaveChat, SavedChat};
use bear_app::docs::Removed;
use bear_security::access::Permission;

use crate::AppState;
use crate::error::ApiError;
use crate::gateway::Caller;
use crate::routes::Body;

type Api<T> = Result<T, ApiError>;
type St = State<Arc<AppState>>;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/chats", get(list).post(create))
        .route("/api/v1/chats/{id}", get(open).put(replace).delete(remove))
}

/// Runs `f` on the app off the async workers (it reads and writes a sealed file).
async fn on_app<T: Send + 'static>(
    s: &AppState,
    f: impl FnOnce(&bear_app::App) -> bear_app::Result<T> + Send + 'static,
) -> Api<T> {
    let app = crate::models::app(s)?.clone();
    tokio::task::spawn_blocking(move || f(&app))
        .await
        .map_err(|_| ApiError::from_kind(bear_core::ErrorKind::Internal, "the chat store stopped"))?
        .map_err(ApiError::from)
}

/// `GET /api/v1/chats`: the caller's saved chats, most recent first.
#[utoipa::path(get, path = "/api/v1/chats", tag = "chats", responses((status = 200, description = "The caller's saved chats, most recently saved first", body = Vec<ChatItem>)))]
pub(crate) async fn list(State(s): St, caller: Caller) -> Api<Json<Vec<ChatItem>>> {
    caller.require(Permission::Read)?;
    let viewer = caller.viewer();
    Ok(Json(on_app(&s, move |a| a.chats(&viewer)).await?))
}

/// `POST /api/v1/chats`: saves a new chat.
#[utoipa::path(post, path = "/api/v1/chats", tag = "chats", request_body = SaveChat, responses((status = 200, description = "The chat as saved, with its id and title", body = SavedChat)))]
pub(crate) async fn create(
    State(s): St,
    caller: Caller,
    Body(b): Body<SaveChat>,
) -> Api<Json<SavedChat>> {
    caller.require(Permission::Write)?;
    let viewer = caller.viewer();
    Ok(Json(
        on_app(&s, move |a| a.save_chat(&viewer, None, b)).await?,
    ))
}

/// `GET /api/v1/chats/{id}`: one saved chat, whole.
#[utoipa::path(get, path = "/api/v1/chats/{id}", tag = "chats", params(("id" = String, Path, description = "The chat")), responses((status = 200, description = "The chat with its messages and settings", body = SavedChat)))]
pub(crate) async fn open(
    State(s): St,
    caller: Caller,
    Path(id): Path<String>,
) -> Api<Json<SavedChat>> {
    caller.require(Permission::Read)?;
    let viewer = caller.viewer();
    Ok(Json(on_app(&s, move |a| a.chat_of(&viewer, &id)).await?))
}

/// `PUT /api/v1/chats/{id}`: replaces a saved chat (a conversation that went on).
#[utoipa::path(put, path = "/api/v1/chats/{id}", tag = "chats", params(("id" = String, Path, description = "The chat")), request_body = SaveChat, responses((status = 200, description = "The chat as saved", body = SavedChat)))]
pub(crate) async fn replace(
    State(s): St,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<SaveChat>,
) -> Api<Json<SavedChat>> {
    caller.require(Permission::Write)?;
    let viewer = caller.viewer();
    Ok(Json(
        on_app(&s, move |a| a.save_chat(&viewer, Some(&id), b)).await?,
    ))
}

/// `DELETE /api/v1/chats/{id}`: deletes a saved chat.
#[utoipa::path(delete, path = "/api/v1/chats/{id}", tag = "chats", params(("id" = String, Path, description = "The chat")), responses((status = 200, description = "Deleted", body = Removed)))]
pub(crate) async fn remove(
    State(s): St,
    caller: Caller,
    Path(id): Path<String>,
) -> Api<Json<Removed>> {
    caller.require(Permission::Write)?;
    let viewer = caller.viewer();
    Ok(Json(
        on_app(&s, move |a| a.remove_chat(&viewer, &id)).await?,
    ))
}
