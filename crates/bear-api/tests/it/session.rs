//! Browser sessions on a real server: signing in with a key sets an HttpOnly, SameSite=Strict
//! cookie that then stands for the key; a request that changes something needs the session's
//! CSRF token; signing out and revoking the key end the session; every response, errors
//! included, carries the Content-Security-Policy and its companions.

use std::time::Duration;

use bear_api::Limits;
use serde_json::json;

use crate::{body, client, server};

/// `name=value` of the session cookie a response sets.
fn cookie_of(r: &reqwest::Response) -> (String, String) {
    let set = r
        .headers()
        .get("set-cookie")
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap()
        .to_string();
    (set.split(';').next().unwrap().to_string(), set)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_stands_for_its_key_and_changes_need_the_csrf_token() {
    let s = server(Limits::default()).await;
    let r = s.send("POST", "/api/v1/session", &s.user, None).await;
    assert_eq!(r.status(), 200);
    let (cookie, set) = cookie_of(&r);
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    assert!(cookie.starts_with("bear_session=bss_"), "{cookie}");
    let (_, v) = body(r).await;
    assert_eq!(v["role"], "user");
    let csrf = v["csrf_token"].as_str().unwrap().to_string();
    assert!(!set.contains(&csrf), "the CSRF token is not in the cookie");

    let c = client();
    let url = |p: &str| format!("{}{p}", s.base);
    // Reading with the cookie alone works; the session can be read back with its token.
    let r = c.get(url("/api/v1/collections")).header("cookie", &cookie);
    assert_eq!(r.send().await.unwrap().status(), 200);
    let r = c.get(url("/api/v1/session")).header("cookie", &cookie);
    let (status, again) = body(r.send().await.unwrap()).await;
    assert_eq!((status, &again["csrf_token"]), (200, &json!(csrf)));

    // A change without the token, or with another, is refused before it runs.
    let scrub = json!({"text": "write to jan@example.com"});
    let post = || {
        c.post(url("/api/v1/pii/scrub"))
            .header("cookie", &cookie)
            .json(&scrub)
    };
    let (status, e) = body(post().send().await.unwrap()).await;
    assert_eq!((status, &e["error"]["kind"]), (403, &json!("csrf")), "{e}");
    let wrong = post().header("x-csrf-token", "0".repeat(64));
    assert_eq!(wrong.send().await.unwrap().status(), 403);
    let (status, done) = body(post().header("x-csrf-token", &csrf).send().await.unwrap()).await;
    assert_eq!(status, 200, "{done}");
    assert!(done["text"].as_str().unwrap().contains("[EMAIL_1]"));

    // A key header needs no CSRF token (API clients are unchanged).
    let r = s
        .send("POST", "/api/v1/pii/scrub", &s.user, Some(&scrub))
        .await;
    assert_eq!(r.status(), 200);

    // Signing out ends the session and clears the cookie.
    let out = c.delete(url("/api/v1/session")).header("cookie", &cookie);
    let r = out.header("x-csrf-token", &csrf).send().await.unwrap();
    let (_, cleared) = cookie_of(&r);
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(body(r).await.1["ended"], true);
    let r = c.get(url("/api/v1/collections")).header("cookie", &cookie);
    let (status, e) = body(r.send().await.unwrap()).await;
    assert_eq!(status, 401, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sign in again")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_key_ends_its_sessions() {
    let s = server(Limits::default()).await;
    let r = s.send("POST", "/api/v1/session", &s.reader, None).await;
    let (cookie, _) = cookie_of(&r);
    let key_id = body(r).await.1["key_id"].as_str().unwrap().to_string();
    let c = client();
    let url = format!("{}/api/v1/collections", s.base);
    let ok = c.get(&url).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(ok.status(), 200);

    // `bear keys api-revoke` changes the key file and tells the server through its socket.
    let mut keys = bear_security::ApiKeyStore::open(&s.dir.join("keys/api-keys.json")).unwrap();
    assert!(keys.revoke(&key_id).unwrap());
    let dir = s.dir.clone();
    let told = tokio::task::spawn_blocking(move || {
        bear_app::control::Client::new(&dir).keys_changed(Duration::from_secs(10))
    })
    .await
    .unwrap()
    .unwrap();
    assert!(told.is_some(), "the server answered on its socket");
    let (status, e) = body(c.get(&url).header("cookie", &cookie).send().await.unwrap()).await;
    assert_eq!(status, 401, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() {
    let s = server(Limits::default()).await;
    let c = client();
    let answers = [
        c.get(format!("{}/health", s.base)).send().await.unwrap(),
        c.get(format!("{}/api/v1/hw", s.base)).send().await.unwrap(),
        s.send("GET", "/api/v1/collections", &s.user, None).await,
    ];
    assert_eq!(answers[1].status(), 401);
    for r in &answers {
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        for part in [
            "default-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(part), "{part} in {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_takes_a_policy_and_restore_is_for_admins_with_a_keyring() {
    let s = server(Limits::default()).await;
    let text = "write to jan@example.com";
    let masked = json!({"text": text, "policy": "mask"});
    let (status, v) = body(
        s.send("POST", "/api/v1/pii/scrub", &s.user, Some(&masked))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let out = v["text"].as_str().unwrap();
    assert!(
        !out.contains("jan@example.com") && out.starts_with("write to "),
        "{out}"
    );
    // The server's keyring makes tokens reversible; restoring them is for admins.
    let tokens = json!({"text": text, "policy": "tokenize"});
    let (status, v) = body(
        s.send("POST", "/api/v1/pii/scrub", &s.user, Some(&tokens))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let tokenized = v["text"].as_str().unwrap().to_string();
    assert!(
        !tokenized.contains("jan@example.com") && tokenized.contains("[EMAIL_"),
        "{tokenized}"
    );
    let restore = json!({ "text": tokenized });
    let r = s
        .send("POST", "/api/v1/pii/restore", &s.user, Some(&restore))
        .await;
    assert_eq!(r.status(), 403, "restoring is for admins");
    let (status, v) = body(
        s.send("POST", "/api/v1/pii/restore", &s.admin, Some(&restore))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["text"], text, "{v}");
    let bad = json!({"text": text, "policy": "shred"});
    let r = s
        .send("POST", "/api/v1/pii/scrub", &s.user, Some(&bad))
        .await;
    assert_eq!(r.status(), 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_make_list_and_revoke_keys_and_verify_the_audit_log() {
    let s = server(Limits::default()).await;
    let new = json!({"role": "user", "label": "paralegal"});
    let r = s.send("POST", "/api/v1/keys", &s.user, Some(&new)).await;
    assert_eq!(r.status(), 403, "only admins make keys");
    let (status, made) = body(s.send("POST", "/api/v1/keys", &s.admin, Some(&new)).await).await;
    assert_eq!(status, 200, "{made}");
    let key = made["key"].as_str().unwrap().to_string();
    let id = made["record"]["id"].as_str().unwrap().to_string();
    assert_eq!(made["record"]["role"], "user");

    // The new key works at once, and can start a session.
    let r = s.send("GET", "/api/v1/collections", &key, None).await;
    assert_eq!(r.status(), 200);
    let r = s.send("POST", "/api/v1/session", &key, None).await;
    let (cookie, _) = cookie_of(&r);

    let (status, keys) = body(s.send("GET", "/api/v1/keys", &s.admin, None).await).await;
    assert_eq!(status, 200);
    let listed = keys.as_array().unwrap();
    assert!(
        listed
            .iter()
            .any(|k| k["id"] == id.as_str() && k["label"] == "paralegal")
    );
    assert!(listed.iter().all(|k| k.get("hash").is_none()), "{keys}");

    let bad = json!({"role": "owner"});
    let (status, e) = body(s.send("POST", "/api/v1/keys", &s.admin, Some(&bad)).await).await;
    assert_eq!((status, &e["error"]["field"]), (422, &json!("role")), "{e}");

    // The key's saved chat, sealed under its own keyring entry.
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "Quaystone brief"}]});
    let (status, v) = body(s.send("POST", "/api/v1/chats", &key, Some(&chat)).await).await;
    assert_eq!(status, 200, "{v}");
    let chats = s.dir.join("chats").join(format!("key-{id}.sealed"));
    let ring = s.dir.join("keys/keyring.json");
    let entry = format!("@chats/key-{id}");
    let holds = |p: &std::path::Path, what: &str| {
        let b = std::fs::read(p).unwrap_or_default();
        b.windows(what.len()).any(|w| w == what.as_bytes())
    };
    assert!(chats.is_file() && holds(&ring, &entry));

    // Revoking ends the key and its session, and shreds its chats: key first, then file.
    let (status, gone) = body(
        s.send("DELETE", &format!("/api/v1/keys/{id}"), &s.admin, None)
            .await,
    )
    .await;
    assert_eq!(
        (status, &gone["status"]),
        (200, &json!("revoked")),
        "{gone}"
    );
    assert_eq!(
        s.send("GET", "/api/v1/collections", &key, None)
            .await
            .status(),
        401
    );
    let r = client()
        .get(format!("{}/api/v1/collections", s.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .send("DELETE", &format!("/api/v1/keys/{id}"), &s.admin, None)
        .await;
    assert_eq!(r.status(), 404);
    assert!(!chats.exists(), "the revoked key's chats are removed");
    assert!(!holds(&ring, &entry), "and their data key destroyed");

    // The changes above are in the audit log, whose chain checks out.
    let (status, v) = body(s.send("GET", "/api/v1/audit/verify", &s.admin, None).await).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["records"].as_u64().unwrap() >= 2, "{v}");
    let r = s.send("GET", "/api/v1/audit/verify", &s.reader, None).await;
    assert_eq!(r.status(), 403);
}
