//! The web app's assets, embedded in the binary: `/` is the app's page with the strict CSP,
//! its hashed scripts and styles are cached for good, nothing is loaded from elsewhere, and
//! the API's JSON 404 stays for everything that is not an asset.

use bear_api::Limits;

use crate::{client, server};

async fn get(base: &str, method: reqwest::Method, path: &str) -> reqwest::Response {
    client()
        .request(method, format!("{base}{path}"))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_is_served_from_the_binary() {
    let s = server(Limits::default()).await;
    let r = get(&s.base, reqwest::Method::GET, "/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html");
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    let page = r.text().await.unwrap();
    assert!(page.contains(r#"<div id="app">"#), "{page}");
    assert!(
        !page.contains("http:") && !page.contains("https:"),
        "{page}"
    );
    assert!(!page.contains("<script>"), "no inline script: {page}");

    // Every script and style the page names is served, immutable, from this server.
    let assets: Vec<&str> = page
        .split('"')
        .filter(|part| part.starts_with("/assets/"))
        .collect();
    assert!(assets.iter().any(|a| a.ends_with(".js")), "{page}");
    assert!(assets.iter().any(|a| a.ends_with(".css")), "{page}");
    for asset in assets {
        let r = get(&s.base, reqwest::Method::GET, asset).await;
        assert_eq!(r.status(), 200, "{asset}");
        let kind = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(
            kind == "text/javascript" || kind == "text/css",
            "{asset}: {kind}"
        );
        assert_eq!(
            r.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        if kind == "text/css" {
            let css = r.text().await.unwrap();
            assert!(
                !css.contains("url(http") && !css.contains("@import"),
                "{css}"
            );
        }
    }
    // The whole first load is small: the page, its script and its style.
    let first_load: usize = bear_api::web::asset_sizes()
        .iter()
        .filter(|(name, _)| name == "index.html" || page.contains(&format!("/{name}")))
        .map(|(_, size)| size)
        .sum();
    assert!(first_load < 250 * 1024, "{first_load} bytes");

    let r = get(&s.base, reqwest::Method::HEAD, "/").await;
    assert_eq!(r.status(), 200);
    // Not an asset: the API's JSON 404, for any method.
    for (method, path) in [
        (reqwest::Method::GET, "/assets/missing.js"),
        (reqwest::Method::GET, "/api/v1/nothing"),
        (reqwest::Method::POST, "/"),
    ] {
        let r = get(&s.base, method.clone(), path).await;
        assert_eq!(r.status(), 404, "{method} {path}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["kind"], "not_found", "{method} {path}: {v}");
    }
}
