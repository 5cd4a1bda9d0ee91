//! The control socket on a real server state: models, workflow runs and keys through the same
//! operations as REST; refusals of another uid, malformed, oversized and unknown requests.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use bear_api::Limits;
use bear_app::control::{Client, Reply, Request, RunAction, RunRequest};
use bear_app::models::{ManageConfig, ManageRequest, ModelAction, ModelsQuery};
use serde_json::{Value, json};

use crate::{body, server};

/// One request through the blocking client, off the runtime's threads.
pub(crate) async fn call(dir: &Path, request: Request) -> bear_app::Result<Option<Reply>> {
    let client = Client::new(dir);
    tokio::task::spawn_blocking(move || client.call(&request, Duration::from_secs(120)))
        .await
        .unwrap()
}

/// Writes `bytes` to the socket as they are and returns the reply's JSON.
fn raw(dir: &Path, bytes: &[u8]) -> Value {
    let mut s = std::os::unix::net::UnixStream::connect(dir.join("control.sock")).unwrap();
    // The server may answer (and close) before reading all of an oversized message.
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    serde_json::from_str(reply.trim()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_load_and_unload_through_the_socket_as_over_rest() {
    let s = server(Limits::default()).await;
    let emb = "all-MiniLM-L6-v2-int8";
    let load = Request::Model(ManageRequest {
        action: ModelAction::Load,
        model_id: emb.into(),
        config: ManageConfig { pin: true },
    });
    let Some(Reply::Model(r)) = call(&s.dir, load).await.unwrap() else {
        panic!("not a model reply")
    };
    assert_eq!((r.status.as_str(), r.pinned), ("loaded", true), "{r:?}");

    // The socket's list is the REST list.
    let Some(Reply::Models(rows)) = call(&s.dir, Request::Models(ModelsQuery::default()))
        .await
        .unwrap()
    else {
        panic!("not a models reply")
    };
    let (status, rest) = body(s.send("GET", "/api/v1/models", &s.reader, None).await).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::to_value(&rows).unwrap(), rest);
    let row = rows.iter().find(|m| m.id == emb).unwrap();
    assert!(row.pinned && row.status == "loaded", "{row:?}");

    let unload = |model: &str| {
        Request::Model(ManageRequest {
            action: ModelAction::Unload,
            model_id: model.into(),
            config: ManageConfig::default(),
        })
    };
    let Some(Reply::Model(r)) = call(&s.dir, unload(emb)).await.unwrap() else {
        panic!("not a model reply")
    };
    assert_eq!((r.status.as_str(), r.pinned), ("available", false), "{r:?}");

    // Errors come back typed, with their field.
    let e = call(&s.dir, unload(emb)).await.unwrap_err();
    assert_eq!(e.kind(), bear_core::ErrorKind::InvalidRequest, "{e}");
    assert_eq!(e.field(), Some("model_id"));
    let e = call(&s.dir, unload("no-such-model")).await.unwrap_err();
    assert_eq!(e.kind(), bear_core::ErrorKind::NotFound, "{e}");
    let bad = Request::Models(ModelsQuery {
        status: Some("sideways".into()),
    });
    let e = call(&s.dir, bad).await.unwrap_err();
    assert_eq!(e.field(), Some("status"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_requests_reach_the_servers_engine() {
    let s = server(Limits::default()).await;
    let wf = json!({"name": "one", "steps": [
        {"id": "a", "type": "data_processing",
         "parameters": {"operation": "template", "text": "done"}}]});
    let (status, v) = body(
        s.send("POST", "/api/v1/workflows?wait=true", &s.user, Some(&wf))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let id = v["workflow_id"].as_str().unwrap().to_string();
    // The run exists only in this server's in-memory store: the socket reached its engine.
    let cancel = |run: &str| {
        Request::Workflow(RunRequest {
            run: run.into(),
            action: RunAction::Cancel,
        })
    };
    let e = call(&s.dir, cancel(&id)).await.unwrap_err();
    assert!(e.to_string().contains("already finished"), "{e}");
    let e = call(&s.dir, cancel("0123456789abcdef")).await.unwrap_err();
    assert_eq!(e.kind(), bear_core::ErrorKind::NotFound, "{e}");
    let e = call(&s.dir, cancel("../etc")).await.unwrap_err();
    assert_eq!(e.kind(), bear_core::ErrorKind::InvalidRequest, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_unknown_requests_get_typed_errors() {
    let s = server(Limits::default()).await;
    let kind = |v: &Value| v["error"]["kind"].as_str().unwrap_or("").to_string();
    let dir = s.dir.clone();
    let replies = tokio::task::spawn_blocking(move || {
        let big = vec![b'x'; bear_app::control::MAX_MESSAGE as usize + 10];
        [
            raw(&dir, b"not json\n"),
            raw(&dir, b"{\"op\":\"shutdown\"}\n"),
            raw(&dir, b"{\"op\":\"model\",\"action\":\"load\"}\n"),
            raw(&dir, b""),
            raw(&dir, &big),
            raw(&dir, b"{\"op\":\"keys_changed\"}\n"),
        ]
    })
    .await
    .unwrap();
    for v in &replies[..4] {
        assert_eq!(kind(v), "invalid_request", "{v}");
    }
    assert_eq!(kind(&replies[4]), "payload_too_large", "{}", replies[4]);
    assert_eq!(replies[5], json!({"keys": 3}), "the server still answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_is_refused() {
    let s = server(Limits::default()).await;
    let socket = s.dir.join("control.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // A client as uid 65534 (nobody). First the mode stops it: it cannot connect.
    let script = format!(
        "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n s.connect({:?})\nexcept \
         PermissionError:\n print('EACCES'); sys.exit(0)\ns.sendall(b'{{\"op\":\"keys_changed\"}}\\n')\n\
         print(s.makefile().read())",
        socket.to_str().unwrap()
    );
    let open_dir = |mode: u32| {
        std::fs::set_permissions(&s.dir, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    open_dir(0o755);
    let out = tokio::task::spawn_blocking({
        let script = script.clone();
        move || as_nobody(&script)
    })
    .await
    .unwrap();
    assert_eq!(out.trim(), "EACCES");
    // Then with the mode opened by mistake: the peer's uid is checked.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = tokio::task::spawn_blocking(move || as_nobody(&script))
        .await
        .unwrap();
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["error"]["kind"], "forbidden", "{v}");
    open_dir(0o700);
}

/// Runs a Python script as uid 65534 (nobody) and returns what it printed.
fn as_nobody(script: &str) -> String {
    use std::os::unix::process::CommandExt;
    let o = std::process::Command::new("python3")
        .args(["-c", script])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_per_data_directory_and_stale_sockets_are_replaced() {
    let s = server(Limits::default()).await;
    let e = bear_app::control::Listener::bind(&s.dir).unwrap_err();
    assert!(e.to_string().contains("another bear-server"), "{e}");

    // A socket file nobody listens on (a server that was killed) is replaced.
    let dir = tempfile::tempdir().unwrap();
    drop(std::os::unix::net::UnixListener::bind(dir.path().join("control.sock")).unwrap());
    assert!(dir.path().join("control.sock").exists());
    let l = bear_app::control::Listener::bind(dir.path()).unwrap();
    assert!(l.path().exists());
    // No server at all: the client says so with `None`.
    drop(l);
    assert!(!dir.path().join("control.sock").exists());
    let none = call(dir.path(), Request::KeysChanged).await.unwrap();
    assert_eq!(none, None);
}
