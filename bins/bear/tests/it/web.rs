//! The web app in a real browser: headless Chromium (Debian's) driven by Playwright
//! (`web/e2e/app.mjs`) against a real bear-server with the real models, signed in through a
//! `bear ui` link. The script walks every page (sign-in, matters, uploads with refusals, a
//! cited answer opened on its PDF page, not-found, a hostile document, chat with stop, the
//! PII workbench, a workflow watched and cancelled, models, keys and revocation, sign-out),
//! checks each with axe-core and at phone width, and writes screenshots to
//! `$CARGO_TARGET_TMPDIR/web-artifacts`.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::one_answer::Server;
use crate::security::Home;
use crate::{stderr, stdout};

/// Uploads larger than this are refused: small, so the test's oversized file stays small.
const MAX_FILE_BYTES: u64 = 2 << 20;

fn web_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web")
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
    let o = h.run(&["--json", "ui", "--no-open"], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let link: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with(&server.base), "{url}");

    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-artifacts");
    let corpus = crate::rag::corpus();
    let out = Command::new("node")
        .arg("e2e/app.mjs")
        .current_dir(web_dir())
        .env("BEAR_UI_URL", url)
        .env("BEAR_CORPUS", &corpus)
        .env("BEAR_MAX_FILE_BYTES", MAX_FILE_BYTES.to_string())
        .env("BEAR_WEB_ARTIFACTS", &artifacts)
        .output()
        .expect("node runs (install Node.js 20 and run `.ci/setup`)");
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser test failed after:\n{log}\n{}\nscreenshots: {}",
        String::from_utf8_lossy(&out.stderr),
        artifacts.display()
    );
    assert!(log.contains("web: all passed"), "{log}");
}
