//! Browser sign-in (`/api/v1/session`): a caller authenticated by its API key gets a session,
//! an HttpOnly, SameSite=Strict cookie standing for the key for [`SESSION_TTL`], and a CSRF
//! token that every state-changing request made with the cookie must carry in
//! `X-CSRF-Token`. Roles and object checks are the key's, checked on every request; revoking
//! the key ends its sessions. Requests with a key header are unaffected (no cookie, no CSRF).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;
use crate::gateway::Caller;

type Api<T> = Result<T, ApiError>;

/// How long a session lasts from sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// The session cookie's name.
pub const COOKIE: &str = "bear_session";

/// The header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route(
        "/api/v1/session",
        get(current).post(sign_in).delete(sign_out),
    )
}

/// The session `headers` present in their cookie, if any.
pub(crate) fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// A signed-in session, as the web app reads it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SessionView {
    /// The API key the session stands for (its public id).
    key_id: String,
    /// Its role: `admin`, `user` or `read_only`.
    #[schema(value_type = String)]
    role: bear_security::Role,
    /// Send it as `X-CSRF-Token` with every request that changes something.
    csrf_token: String,
    /// Seconds until the session ends.
    expires_in: u64,
}

fn set_cookie(value: &str, max_age: u64) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    ))
    .map_err(|_| ApiError::from_kind(bear_core::ErrorKind::Internal, "cannot set the cookie"))
}

/// A sign-in without a key: the one-time token of a `bear ui` link.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignIn {
    /// The token from the link's `#login=` fragment; it works once.
    login_token: String,
}

/// Who a sign-in stands for: the caller's key, or the key a one-time login token was minted
/// for (spent by this request).
fn signing_in(s: &AppState, caller: Result<Caller, ApiError>, body: &[u8]) -> Api<Caller> {
    // Anything but a login token signs in with the caller's key (or is its 401).
    let Ok(req) = serde_json::from_slice::<SignIn>(body) else {
        return caller;
    };
    let refused =
        || ApiError::unauthorized("this sign-in link was used or has expired: run `bear ui` again");
    let key_id = s
        .sessions
        .redeem_login(&req.login_token)
        .ok_or_else(refused)?;
    let role = s.role_of(&key_id).ok_or_else(refused)?;
    Ok(Caller { key_id, role })
}

/// `POST /api/v1/session`: signs in with the API key in `Authorization` (or `X-Api-Key`), or
/// with the one-time token of a `bear ui` link in the body; the answer sets the session cookie.
#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body(content = Option<SignIn>, description = "Only for a `bear ui` link; empty with a key"), responses((status = 200, description = "Signed in: the cookie is set; keep the CSRF token", body = SessionView)))]
pub(crate) async fn sign_in(
    State(s): State<Arc<AppState>>,
    caller: Result<Caller, ApiError>,
    body: Bytes,
) -> Response {
    let caller = match signing_in(&s, caller, &body) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    match s.sessions.create(&caller.key_id) {
        Ok(new) => {
            let view = SessionView {
                key_id: caller.key_id,
                role: caller.role,
                csrf_token: new.csrf,
                expires_in: new.ttl.as_secs(),
            };
            match set_cookie(&new.token, new.ttl.as_secs()) {
                Ok(cookie) => ([(header::SET_COOKIE, cookie)], Json(view)).into_response(),
                Err(e) => e.into_response(),
            }
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /api/v1/session`: the session of the cookie (a reloaded page gets its CSRF token
/// again); 401 without one.
#[utoipa::path(get, path = "/api/v1/session", tag = "session", responses((status = 200, description = "The current session", body = SessionView)))]
pub(crate) async fn current(
    State(s): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Json<SessionView>, ApiError> {
    let live = cookie_token(&headers)
        .and_then(|t| s.sessions.get(t))
        .ok_or_else(|| ApiError::unauthorized("not signed in: sign in with an API key"))?;
    Ok(Json(SessionView {
        key_id: caller.key_id,
        role: caller.role,
        csrf_token: live.csrf,
        expires_in: live.expires_in.as_secs(),
    }))
}

/// What signing out did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SignedOut {
    /// Whether a session was ended.
    ended: bool,
}

/// `DELETE /api/v1/session`: ends the cookie's session and clears the cookie.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session", responses((status = 200, description = "Signed out; the cookie is cleared", body = SignedOut)))]
pub(crate) async fn sign_out(
    State(s): State<Arc<AppState>>,
    _caller: Caller,
    headers: HeaderMap,
) -> Response {
    let ended = cookie_token(&headers).is_some_and(|t| s.sessions.end(t));
    match set_cookie("", 0) {
        Ok(cookie) => ([(header::SET_COOKIE, cookie)], Json(SignedOut { ended })).into_response(),
        Err(e) => e.into_response(),
    }
}
