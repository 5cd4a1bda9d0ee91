//! `bear ui`: a one-time sign-in link from the running bear-server (or one `bear ui` starts),
//! which signs a browser in once, as the local user's admin key.

use std::process::Command;

use serde_json::{Value, json};

use crate::one_answer::Server;
use crate::security::Home;
use crate::{stderr, stdout};

fn link(h: &Home, extra: &[&str]) -> Value {
    let mut args = vec!["--json", "ui", "--no-open"];
    args.extend_from_slice(extra);
    let o = h.run(&args, None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

/// Signs in with the link's token: the status, and the cookie when it worked.
fn sign_in(rt: &tokio::runtime::Runtime, base: &str, token: &str) -> (u16, Option<String>) {
    rt.block_on(async {
        let r = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .post(format!("{base}/api/v1/session"))
            .json(&json!({ "login_token": token }))
            .send()
            .await
            .unwrap();
        let cookie = r
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
        (r.status().as_u16(), cookie)
    })
}

fn base_and_token(v: &Value) -> (String, String) {
    let url = v["url"].as_str().unwrap();
    let (base, token) = url.split_once("/#login=").expect("a #login= fragment");
    (base.to_string(), token.to_string())
}

#[test]
fn a_ui_link_signs_in_once_as_the_local_user() {
    let h = Home::new();
    let server = Server::start(&h);
    let v = link(&h, &[]);
    let (base, token) = base_and_token(&v);
    assert_eq!(base, server.base);
    assert!(v["expires_in"].as_u64().unwrap() > 0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, cookie) = sign_in(&rt, &base, &token);
    assert_eq!(status, 200);
    let cookie = cookie.unwrap();
    // The session stands for the local admin key: admin routes answer.
    let plugins = rt.block_on(async {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("{base}/api/v1/plugins"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(plugins, 200);
    // Once only; and a made-up token is refused the same way.
    assert_eq!(sign_in(&rt, &base, &token).0, 401);
    assert_eq!(sign_in(&rt, &base, "bsl_00").0, 401);
    // The local key was made once, and a second link reuses it.
    let again = link(&h, &[]);
    assert_ne!(again["url"], v["url"]);
    let o = h.run(&["--json", "keys", "api-list"], None, &[]);
    let keys: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let local: Vec<&Value> = keys
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["label"].as_str().unwrap().starts_with("bear ui"))
        .collect();
    assert_eq!(local.len(), 1, "{keys}");
    assert_eq!(local[0]["role"], "admin");
}

#[test]
fn without_a_server_ui_starts_one_in_the_background() {
    let h = Home::new();
    let v = link(&h, &["--bind", "127.0.0.1:0"]);
    let pid = v["server_pid"].as_u64().unwrap().to_string();
    let (base, token) = base_and_token(&v);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(sign_in(&rt, &base, &token).0, 200);
    // A second `bear ui` reaches the same server rather than starting another.
    assert_eq!(
        link(&h, &[])["server_pid"].as_u64().unwrap().to_string(),
        pid
    );
    // Stop it (SIGTERM, a graceful stop) and wait until it has exited.
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let waited = Command::new("tail")
        .args(["--pid", &pid, "-f", "/dev/null"])
        .status()
        .unwrap();
    assert!(waited.success());
    let log = std::fs::read_to_string(h.path("data/server.log")).unwrap();
    assert!(log.contains("bear-server stopped"), "{log}");
}

/// The PII workbench's server side with a keyring: text tokenised over REST comes back over
/// REST (admin) and through `bear restore`, from the one vault.
#[test]
fn tokens_made_over_rest_restore_over_rest_and_in_the_cli() {
    let h = crate::rag::home_with_keys();
    let server = Server::start(&h);
    let o = h.run(
        &["--json", "keys", "api-create", "--role", "admin"],
        None,
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let key: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let key = key["key"].as_str().unwrap().to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let post = |path: &str, body: Value| -> (u16, Value) {
        rt.block_on(async {
            let r = reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap()
                .post(format!("{}{path}", server.base))
                .bearer_auth(&key)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json().await.unwrap())
        })
    };
    let text = "Client Jan de Vries, jan.devries@example.nl";
    let (status, v) = post(
        "/api/v1/pii/scrub",
        json!({"text": text, "policy": "tokenize"}),
    );
    assert_eq!(status, 200, "{v}");
    let tokenised = v["text"].as_str().unwrap().to_string();
    assert!(!tokenised.contains("example.nl"), "{tokenised}");
    let (status, back) = post("/api/v1/pii/restore", json!({"text": tokenised}));
    assert_eq!((status, back["text"].as_str().unwrap()), (200, text));
    let o = h.run(&["restore", "-"], Some(tokenised.as_bytes()), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), text);
}
