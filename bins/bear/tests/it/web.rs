//! The web app in a real browser: headless Chromium (Debian's) driven by Playwright
//! (`web/e2e/app.mjs`) against a real bear-server with the real models, signed in through a
//! `bear ui` link. The script walks every page (sign-in, matters, uploads with refusals, a
//! cited answer opened on its PDF page, not-found, a hostile document, chat with stop, the
//! PII workbench, a workflow watched and cancelled, models, keys and revocation, sign-out),
//! checks each with axe-core and at phone width, and writes screenshots to
//! `$CARGO_TARGET_TMPDIR/web-artifacts`.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::one_answer::Server;
use crate::security::Home;
use crate::{stderr, stdout};

/// Uploads larger than this are refused: small, so the test's oversized file stays small.
const MAX_FILE_BYTES: u64 = 2 << 20;

fn web_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web")
}

/// A one-time sign-in link from the server `h` runs.
fn ui_link(h: &Home, server: &Server) -> String {
    let o = h.run(&["--json", "ui", "--no-open"], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let link: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let url = link["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&server.base), "{url}");
    url
}

#[test]
fn the_web_app_works_in_chromium() {
    let h = Home::new();
    std::fs::create_dir_all(h.path("config/bear")).unwrap();
    h.write(
        "config/bear/config.toml",
        format!("[rag]\nmax_file_bytes = {MAX_FILE_BYTES}\n").as_bytes(),
    );
    let server = Server::start(&h);
    let url = ui_link(&h, &server);

    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-artifacts");
    let corpus = crate::rag::corpus();
    let out = Command::new("node")
        .arg("e2e/app.mjs")
        .current_dir(web_dir())
        .env("BEAR_UI_URL", &url)
        .env("BEAR_CORPUS", &corpus)
        .env("BEAR_MAX_FILE_BYTES", MAX_FILE_BYTES.to_string())
        .env("BEAR_WEB_ARTIFACTS", &artifacts)
        .output()
        .expect("node runs (install Node.js 20 and run `.ci/setup`)");
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser test failed after:\n{log}\n{}\nscreenshots: {}\nthe server's last log lines:\n{}",
        String::from_utf8_lossy(&out.stderr),
        artifacts.display(),
        server.log_tail()
    );
    assert!(log.contains("web: all passed"), "{log}");
}

/// Reads the script's lines until `want`; its whole output so far if it ends first.
fn wait_for(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    want: &str,
    seen: &mut String,
) {
    for line in lines.map_while(Result::ok) {
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with(&format!("{want} (at ")) {
            return;
        }
    }
    panic!("the outage script ended before `{want}`:\n{seen}");
}

/// The server killed mid-stream (no graceful end), then started again on the same address:
/// the page says the connection broke off, lands on sign-in once the server is back (sessions
/// live in the server), and works again after a new sign-in link.
#[test]
fn the_web_app_says_when_the_server_goes_away_and_recovers() {
    let h = Home::new();
    let mut server = Server::start(&h);
    let addr = server.base.trim_start_matches("http://").to_string();
    let url = ui_link(&h, &server);
    let mut node = Command::new("node")
        .arg("e2e/outage.mjs")
        .current_dir(web_dir())
        .env("BEAR_UI_URL", &url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs (install Node.js 20 and run `.ci/setup`)");
    let mut to_node = node.stdin.take().unwrap();
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    wait_for(&mut lines, "web: streaming", &mut seen);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    writeln!(to_node, "down").unwrap();
    wait_for(&mut lines, "web: saw the error", &mut seen);
    let again = Server::start_at(&h, &addr);
    writeln!(to_node, "up {}", ui_link(&h, &again)).unwrap();
    wait_for(&mut lines, "web: recovered", &mut seen);
    assert!(node.wait().unwrap().success(), "{seen}");
}
