//! Administration (admins only), for the web app's admin pages: API keys (create, shown once;
//! list; revoke, which ends the key's sessions at once) and the audit log's verification. The
//! operations are bear-app's, the same as `bear keys api-*` and `bear audit verify`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{delete, get};
use axum::{Json, Router};
use bear_app::audit::Verified;
use bear_app::docs::Removed;
use bear_app::keys::{KeyView, Shown};
use bear_security::access::Permission;
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiError;
use crate::gateway::Caller;
use crate::routes::Body;

type Api<T> = Result<T, ApiError>;
type St = State<Arc<AppState>>;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/keys", get(list_keys).post(create_key))
        .route("/api/v1/keys/{id}", delete(revoke_key))
        .route("/api/v1/audit/verify", get(verify_audit))
}

fn app(s: &AppState) -> Api<&Arc<bear_app::App>> {
    crate::models::app(s)
}

/// A key to make.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKey {
    /// `admin`, `user` or `read-only`.
    role: String,
    /// A label to tell it by.
    #[serde(default)]
    label: String,
}

/// Has the server use the key file as it is now; a revoked key's sessions end here.
fn reload(s: &AppState) -> Api<()> {
    s.reload_keys().map(|_| ()).map_err(ApiError::from)
}

#[utoipa::path(get, path = "/api/v1/keys", tag = "admin", responses((status = 200, description = "The API keys (no secrets, no hashes)", body = Vec<KeyView>)))]
pub(crate) async fn list_keys(State(s): St, caller: Caller) -> Api<Json<Vec<KeyView>>> {
    caller.require(Permission::Admin)?;
    Ok(Json(bear_app::keys::list(app(&s)?.config())?))
}

#[utoipa::path(post, path = "/api/v1/keys", tag = "admin", request_body = NewKey, responses((status = 200, description = "The new key, shown this once, and its record", body = Shown)))]
pub(crate) async fn create_key(
    State(s): St,
    caller: Caller,
    Body(b): Body<NewKey>,
) -> Api<Json<Shown>> {
    caller.require(Permission::Admin)?;
    let loaded = app(&s)?.config();
    let (key, record) = bear_app::keys::create_by(loaded, &caller.viewer(), &b.role, &b.label)?;
    reload(&s)?;
    Ok(Json(Shown {
        key: key.reveal(),
        record: KeyView::from(&record),
    }))
}

#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "admin", params(("id" = String, Path, description = "The key's public id")), responses((status = 200, description = "Revoked; its sessions have ended", body = Removed)))]
pub(crate) async fn revoke_key(
    State(s): St,
    caller: Caller,
    Path(id): Path<String>,
) -> Api<Json<Removed>> {
    caller.require(Permission::Admin)?;
    bear_app::keys::revoke_and_shred(app(&s)?, &caller.viewer(), &id)?;
    reload(&s)?;
    Ok(Json(Removed {
        id,
        path: None,
        status: "revoked".into(),
    }))
}

#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "admin", responses((status = 200, description = "The whole chain checks out; a broken one is an error naming its first bad line", body = Verified)))]
pub(crate) async fn verify_audit(State(s): St, caller: Caller) -> Api<Json<Verified>> {
    caller.require(Permission::Admin)?;
    Ok(Json(bear_app::audit::verify(app(&s)?.config(), None)?))
}
