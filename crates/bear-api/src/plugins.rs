//! Plugin routes (admin only): `GET /api/v1/plugins` lists the loaded plugins and their tools;
//! `POST /api/v1/plugins/{name}/tools/{tool}` runs a tool in its sandbox with the JSON body as
//! input. A client that goes away stops the call at its next epoch deadline check.

use bear_app::plugins::{PluginView, ToolRun};
use std::sync::{Arc, RwLock};

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use bear_core::CancellationToken;
use bear_security::access::Permission;
use serde_json::Value;

use crate::AppState;
use crate::error::ApiError;
use crate::gateway::Caller;
use crate::models::CancelOnDrop;
use crate::routes::Body;

type Api<T> = Result<T, ApiError>;
type St = State<Arc<AppState>>;

/// The loaded plugins the API serves.
pub type Plugins = Arc<RwLock<bear_plugins::Registry>>;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/plugins", get(list))
        .route("/api/v1/plugins/{name}/tools/{tool}", post(invoke))
}

fn registry(s: &AppState) -> Api<&Plugins> {
    s.plugins.as_ref().ok_or_else(|| {
        ApiError::from_kind(
            bear_core::ErrorKind::Unavailable,
            "this server runs without plugins",
        )
    })
}

#[utoipa::path(get, path = "/api/v1/plugins", tag = "plugins", responses((status = 200, description = "Loaded plugins, their capabilities and tools", body = Vec<PluginView>)))]
pub(crate) async fn list(State(s): St, caller: Caller) -> Api<Json<Vec<PluginView>>> {
    caller.require(Permission::Admin)?;
    let reg = registry(&s)?.read().unwrap_or_else(|e| e.into_inner());
    Ok(Json(bear_app::plugins::views(&reg)))
}

#[utoipa::path(post, path = "/api/v1/plugins/{name}/tools/{tool}", tag = "plugins", request_body = Object, params(("name" = String, Path, description = "The plugin"), ("tool" = String, Path, description = "The tool")), responses((status = 200, description = "The tool's output and log lines", body = ToolRun)))]
pub(crate) async fn invoke(
    State(s): St,
    caller: Caller,
    Path((name, tool)): Path<(String, String)>,
    Body(input): Body<Value>,
) -> Api<Json<ToolRun>> {
    caller.require(Permission::Admin)?;
    let plugin = bear_app::plugins::loaded_plugin(
        &registry(&s)?.read().unwrap_or_else(|e| e.into_inner()),
        &name,
    )?;
    let cancel = CancellationToken::new();
    let _guard = CancelOnDrop(cancel.clone());
    let run = bear_app::plugins::run(plugin, tool, input, cancel).await?;
    Ok(Json(run))
}
