//! The web app's assets, built by `build.rs` from `web/` and embedded in the binary: served at
//! `/` to anyone (they hold no data; every API call they make is authenticated), with the
//! gateway's Content-Security-Policy like every other response. Hashed files under `assets/`
//! are cached for good; `index.html` is revalidated, so a new binary's app loads at once.

use axum::http::{HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

#[derive(rust_embed::Embed)]
#[folder = "$OUT_DIR/web"]
struct Assets;

/// The route fallback: an asset of the web app for `GET`/`HEAD`, the API's 404 otherwise.
pub(crate) async fn fallback(method: Method, uri: Uri) -> Response {
    let found = (method == Method::GET || method == Method::HEAD)
        .then(|| asset(uri.path()))
        .flatten();
    match found {
        Some(response) => response,
        None => ApiError::not_found("no such route; see /api/v1/openapi.json").into_response(),
    }
}

/// The embedded file at `path` (`/` is the app's page), with its type and caching.
fn asset(path: &str) -> Option<Response> {
    let name = match path.trim_start_matches('/') {
        "" => "index.html",
        other => other,
    };
    let file = Assets::get(name)?;
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    let cache = if name.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let content_type =
        HeaderValue::from_str(mime.as_ref()).unwrap_or(HeaderValue::from_static("text/plain"));
    Some(
        (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            ],
            file.data.into_owned(),
        )
            .into_response(),
    )
}

/// Every embedded file's name and size, for the first-load budget (`cargo xtask bench web`).
pub fn asset_sizes() -> Vec<(String, usize)> {
    Assets::iter()
        .filter_map(|name| Assets::get(&name).map(|f| (name.to_string(), f.data.len())))
        .collect()
}
