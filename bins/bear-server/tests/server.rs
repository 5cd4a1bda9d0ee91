//! The `bear-server` binary: serves on a loopback port, refuses a public bind without API keys,
//! stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn server(data: &std::path::Path, bind: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bear-server"));
    cmd.args(["--bind", bind])
        .env_remove("BEAR_CONFIG")
        .env("BEAR_DATA_DIR", data)
        .env("XDG_CONFIG_HOME", data.join("config"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn serves_on_loopback_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = server(dir.path(), "127.0.0.1:0").spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the server reports its address")
            .unwrap();
        if let Some(rest) = line.strip_prefix("bear-server listening on http://") {
            break rest.to_string();
        }
    };
    let health = get(&addr, "/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(
        health.to_ascii_lowercase().contains("x-request-id:"),
        "{health}"
    );
    let denied = get(&addr, "/api/v1/agents");
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
    assert!(denied.contains("\"kind\":\"unauthorized\""), "{denied}");

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful stop exits 0");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l == "bear-server stopped"), "{rest:?}");
    assert!(
        dir.path().join("workflows.db").exists(),
        "the run database is in place"
    );
}

#[test]
fn a_public_bind_without_keys_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = server(dir.path(), "0.0.0.0:0").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not loopback") && err.contains("api-create"),
        "{err}"
    );
}

// The throw-away PostgreSQL cluster of bear-agents' tests.
#[path = "../../../crates/bear-agents/tests/it/pg.rs"]
#[allow(dead_code, unreachable_pub)]
mod pg;

#[test]
fn check_reaches_the_shared_database_and_says_what_is_wrong() {
    let pg = pg::Postgres::start().unwrap();
    let url = pg.create_database("checked").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let check = || {
        server(dir.path(), "127.0.0.1:0")
            .arg("--check")
            .env("BEAR_DATABASE_URL", &url)
            .stdout(Stdio::piped())
            .output()
            .unwrap()
    };
    let out = check();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("workflow database: PostgreSQL at postgres://127.0.0.1:")
            && said.contains("/checked, reachable, schema version"),
        "{said}"
    );
    assert!(!said.contains(pg.password()), "{said}");

    pg.kill();
    let out = check();
    assert_eq!(
        out.status.code(),
        Some(3),
        "unreachable: a configuration to check"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the PostgreSQL database at postgres://127.0.0.1:")
            && err.contains("database_url"),
        "{err}"
    );
    assert!(!err.contains(pg.password()), "{err}");
}

#[test]
fn check_on_one_machine_names_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = server(dir.path(), "127.0.0.1:0")
        .arg("--check")
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("workflow database: SQLite file"), "{said}");
    assert!(dir.path().join("workflows.db").exists());
}
