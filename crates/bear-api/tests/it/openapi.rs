//! The OpenAPI description matches the real routes, both ways: every documented operation is
//! answered by a route (401 without a key, never 404 or 405), and every `.route(...)` in the
//! source is documented with the same methods.

use std::collections::BTreeSet;
use std::num::NonZeroU32;

use bear_api::Limits;
use serde_json::Value;

use crate::{body, client, server};

/// `(METHOD, path template)` for every `.route("...", get(..).post(..))` in bear-api's source.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find(".route(") {
            rest = &rest[i + ".route(".len()..];
            // The call's own text, up to its closing parenthesis.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .unwrap()
                .0;
            let call = &rest[..end];
            let q1 = call.find('"').unwrap();
            let q2 = q1 + 1 + call[q1 + 1..].find('"').unwrap();
            let path = &call[q1 + 1..q2];
            for m in ["get", "post", "put", "patch", "delete"] {
                let pat = format!("{m}(");
                let mut from = 0;
                while let Some(j) = call[from..].find(&pat) {
                    let at = from + j;
                    let before = call[..at].chars().last().unwrap_or(' ');
                    if !(before.is_alphanumeric() || before == '_') {
                        out.insert((m.to_uppercase(), path.to_string()));
                    }
                    from = at + pat.len();
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_description_matches_the_routes() {
    let s = server(Limits {
        auth_failures_per_minute: NonZeroU32::new(1000).unwrap(),
        burst: NonZeroU32::new(1000).unwrap(),
        ..Limits::default()
    })
    .await;
    let r = client()
        .get(format!("{}/api/v1/openapi.json", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (status, spec) = body(s.send("GET", "/api/v1/openapi.json", &s.reader, None).await).await;
    assert_eq!(status, 200, "{spec}");
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        spec["openapi"]
    );

    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            documented.insert((method.to_uppercase(), path.clone()));
            // Documented errors and keys.
            assert!(op["responses"]["4XX"].is_object(), "{method} {path}");
            assert_eq!(
                op["security"].is_array(),
                path != "/health",
                "{method} {path}"
            );
            // Served: 401 without a key (200 for /health), never 404 or 405.
            let concrete = path
                .replace("{id}", "x1")
                .replace("{name}", "c1")
                .replace("{job}", "j1")
                .replace("{tool}", "t1");
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = client()
                .request(method.clone(), format!("{}{concrete}", s.base))
                .send()
                .await
                .unwrap();
            let want = if path == "/health" { 200 } else { 401 };
            assert_eq!(r.status().as_u16(), want, "{method} {concrete}");
        }
    }
    let in_source = routes_in_source();
    assert!(in_source.len() >= 30, "{in_source:?}");
    let missing: Vec<_> = in_source.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&in_source).collect();
    assert!(
        missing.is_empty(),
        "routes not in the OpenAPI description: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "documented operations with no route: {stale:?}"
    );

    // Request bodies carry their field schemas.
    let schemas = &spec["components"]["schemas"];
    for (name, field) in [
        ("GenerateRequest", "max_tokens"),
        ("SearchRequest", "query"),
        ("AskRequest", "question"),
        ("ErrorBody", "error"),
    ] {
        assert!(
            schemas[name]["properties"][field].is_object(),
            "{name}.{field}: {}",
            schemas[name]
        );
    }
    let _: &Value = &spec["info"]["title"];
}

#[test]
fn the_description_is_written_for_the_docs() {
    // `BEAR_OPENAPI_OUT=path` keeps a copy, for docs and client generators.
    let spec = serde_json::to_string_pretty(&bear_api::openapi::spec()).unwrap();
    if let Some(p) = std::env::var_os("BEAR_OPENAPI_OUT") {
        std::fs::write(p, &spec).unwrap();
    }
    assert!(spec.contains("\"/v1/chat/completions\""));
}
