//! Saved chats over REST: saved, listed, reopened, continued in place and deleted by their own
//! key only (admins included); sealed on disk under the user's own key; bad chats refused by
//! field.

use bear_api::Limits;
use serde_json::{Value, json};

use crate::{body, server};

const SECRET: &str = "Advise Peregrine Ashdown on the Quaystone indemnity.";

fn chat(messages: Value) -> Value {
    json!({"model": "SmolLM2-135M-Instruct.Q4_1", "system": "Be brief.", "temperature": 0.2,
           "max_tokens": 64, "messages": messages})
}

fn holds(file: &[u8], needle: &str) -> bool {
    file.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chats_are_kept_per_user_sealed_and_can_be_deleted() {
    let s = server(Limits::default()).await;
    let first = chat(json!([{"role": "user", "content": SECRET},
                            {"role": "assistant", "content": "Noted."}]));
    let (status, saved) = body(s.send("POST", "/api/v1/chats", &s.user, Some(&first)).await).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["title"], SECRET);
    assert_eq!(saved["created_at"], saved["updated_at"]);
    let id = saved["id"].as_str().unwrap().to_string();
    let one = format!("/api/v1/chats/{id}");

    // Continued: saved in place, not as a second chat.
    let mut more = first.clone();
    more["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "user", "content": "And the cap?"}));
    more["title"] = json!("Indemnity");
    let (status, v) = body(s.send("PUT", &one, &s.user, Some(&more)).await).await;
    assert_eq!(
        (status, &v["id"], &v["title"]),
        (200, &json!(id), &json!("Indemnity")),
        "{v}"
    );
    let (_, list) = body(s.send("GET", "/api/v1/chats", &s.user, None).await).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["messages"], 3);
    let (status, whole) = body(s.send("GET", &one, &s.user, None).await).await;
    assert_eq!(status, 200);
    assert_eq!(whole["messages"], more["messages"]);
    assert_eq!(
        (&whole["system"], &whole["max_tokens"]),
        (&json!("Be brief."), &json!(64))
    );

    // Sealed on disk under the user's own key: none of it is in the clear.
    let dir = s.dir.join("chats");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let sealed: Vec<_> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "sealed"))
        .collect();
    assert_eq!(sealed.len(), 1, "{files:?}");
    let bytes = std::fs::read(sealed[0]).unwrap();
    for canary in ["Peregrine Ashdown", "Quaystone", "Indemnity", "And the cap"] {
        assert!(!holds(&bytes, canary), "{canary} is in the clear");
    }

    // Nobody else sees it, admins included; a read-only key may not delete.
    for other in [&s.admin, &s.reader] {
        let (_, list) = body(s.send("GET", "/api/v1/chats", other, None).await).await;
        assert_eq!(list, json!([]));
        let (status, _) = body(s.send("GET", &one, other, None).await).await;
        assert_eq!(status, 404);
    }
    let (status, _) = body(s.send("PUT", &one, &s.admin, Some(&more)).await).await;
    assert_eq!(status, 404);
    let (status, _) = body(s.send("DELETE", &one, &s.reader, None).await).await;
    assert_eq!(status, 403);

    let (status, v) = body(s.send("DELETE", &one, &s.user, None).await).await;
    assert_eq!((status, &v["status"]), (200, &json!("removed")), "{v}");
    let (status, _) = body(s.send("DELETE", &one, &s.user, None).await).await;
    assert_eq!(status, 404);
    let (_, list) = body(s.send("GET", "/api/v1/chats", &s.user, None).await).await;
    assert_eq!(list, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_chats_are_refused_by_field_and_change_nothing() {
    let s = server(Limits::default()).await;
    let user = |t: &str| json!({"role": "user", "content": t});
    let cases = [
        (chat(json!([])), "messages"),
        (chat(json!([user(&"x".repeat((1 << 20) + 1))])), "messages"),
        (
            {
                let mut c = chat(json!([user("hi")]));
                c["temperature"] = json!(9.0);
                c
            },
            "temperature",
        ),
        (
            {
                let mut c = chat(json!([user("hi")]));
                c["model"] = json!("");
                c
            },
            "model",
        ),
    ];
    for (bad, field) in cases {
        let (status, v) = body(s.send("POST", "/api/v1/chats", &s.user, Some(&bad)).await).await;
        assert!(
            status == 400 || status == 422 || status == 413,
            "{status} {v}"
        );
        if status != 413 {
            assert_eq!(v["error"]["field"], field, "{v}");
        }
    }
    // A role that is not a chat's, and an id that does not exist.
    let system = chat(json!([{"role": "system", "content": "x"}]));
    let (status, _) = body(
        s.send("POST", "/api/v1/chats", &s.user, Some(&system))
            .await,
    )
    .await;
    assert!(status == 400 || status == 422, "{status}");
    let ok = chat(json!([user("hi")]));
    let (status, _) = body(
        s.send("PUT", "/api/v1/chats/nope", &s.user, Some(&ok))
            .await,
    )
    .await;
    assert_eq!(status, 404);
    let (_, list) = body(s.send("GET", "/api/v1/chats", &s.user, None).await).await;
    assert_eq!(list, json!([]));
}
