//! `cargo xtask bench web`: the web app in headless Chromium against a real bear-server
//! (`web/e2e/bench.mjs`): the first load's bytes, how long a streamed token takes from its
//! arrival in the page to the screen (and, for context, time to first token through the page
//! and the API directly, in pairs), and a 1,000-document matter rendered, filtered, scrolled.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

use super::goals::cell;
use crate::workspace_root;

/// Documents in the big matter.
const DOCS: usize = 1000;

/// A bear-server on a free loopback port over `home`; killed when dropped.
pub(super) struct Server {
    pub(super) child: Child,
    pub(super) base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn env(home: &Path) -> [(&'static str, std::path::PathBuf); 2] {
    [
        ("BEAR_DATA_DIR", home.join("data")),
        ("XDG_CONFIG_HOME", home.join("config")),
    ]
}

pub(super) fn bear(home: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(crate::bear_binary()?)
        .args(args)
        .envs(env(home))
        .env_remove("BEAR_CONFIG")
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run bear")?;
    if !out.status.success() {
        bail!("bear {} failed: {}", args.join(" "), out.status);
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// The matters: `lease` (the demo corpus) and `big` (1,000 one-line documents).
fn prepare(home: &Path) -> anyhow::Result<()> {
    let config = home.join("config/bear");
    std::fs::create_dir_all(&config)?;
    std::fs::write(
        config.join("config.toml"),
        "[rag]\npii_policy = \"replace\"\n",
    )?;
    let big = home.join("big");
    std::fs::create_dir_all(&big)?;
    for i in 0..DOCS {
        std::fs::write(
            big.join(format!("doc-{i:04}.txt")),
            format!(
                "Document {i}. The tenant at Keizersgracht {i} pays {} euros a month.\n",
                1000 + i
            ),
        )?;
    }
    let corpus = workspace_root().join("examples/corpus");
    bear(home, &["ingest", &corpus.to_string_lossy(), "-c", "lease"])?;
    bear(home, &["ingest", &big.to_string_lossy(), "-c", "big"])?;
    Ok(())
}

pub(super) fn start(home: &Path) -> anyhow::Result<Server> {
    let exe = crate::bear_binary()?.with_file_name("bear-server");
    let mut child = Command::new(exe)
        .args(["--bind", "127.0.0.1:0"])
        .envs(env(home))
        .env_remove("BEAR_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start bear-server")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let mut lines = std::io::BufReader::new(stderr).lines();
    let base = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("bear-server listening on ")
                .map(str::to_string)
        })
        .context("bear-server did not start")?;
    // Keep reading its log, so it never blocks on a full pipe.
    std::thread::spawn(move || lines.map_while(Result::ok).count());
    Ok(Server { child, base })
}

pub(crate) fn web() -> anyhow::Result<()> {
    let home = tempfile::tempdir()?;
    eprintln!("preparing the matters ({DOCS} documents in `big`)...");
    prepare(home.path())?;
    let server = start(home.path())?;
    let link: serde_json::Value =
        serde_json::from_str(&bear(home.path(), &["--json", "ui", "--no-open"])?)?;
    let url = link["url"].as_str().context("no sign-in link")?;
    anyhow::ensure!(
        url.starts_with(&server.base),
        "the link is for another server: {url}"
    );
    let out = Command::new("node")
        .arg("e2e/bench.mjs")
        .current_dir(workspace_root().join("web"))
        .env("BEAR_UI_URL", url)
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run node (run .ci/setup)")?;
    if !out.status.success() {
        bail!("web/e2e/bench.mjs failed: {}", out.status);
    }
    let stdout = String::from_utf8(out.stdout)?;
    let last = stdout.lines().last().context("bench.mjs printed nothing")?;
    let v: serde_json::Value = serde_json::from_str(last)?;
    drop(server);
    super::report::publish("web", &report(&v)?)
}

pub(super) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn report(v: &serde_json::Value) -> anyhow::Result<String> {
    let f = |x: &serde_json::Value| x.as_f64().unwrap_or(f64::NAN);
    let pairs = v["pairs"].as_array().context("no pairs")?;
    let each = |k: &str| pairs.iter().map(|p| f(&p[k])).collect::<Vec<_>>();
    let (lag, api, page) = (each("lag"), each("api"), each("page"));
    let worst_lag = lag.iter().copied().fold(f64::NAN, f64::max);
    let lag_p50 = median(lag);
    let added: Vec<f64> = page.iter().zip(&api).map(|(p, a)| p - a).collect();
    let kb = f(&v["first_load_bytes"]) / 1024.0;
    let list = &v["list"];
    let render = f(&list["render"]);
    let mut r = String::from(
        "### Web app (headless Chromium, real bear-server and models)\n\n\
         | measure | result | goal |\n|---|---|---|\n",
    );
    r.push_str(&format!(
        "| first load of the signed-in home page: bytes transferred ({} requests, \
         uncompressed; pdf.js and the graph layout load later) | {kb:.0} KB | {} |\n",
        v["first_load_requests"],
        cell("web.first_load_kb", kb),
    ));
    r.push_str(&format!(
        "| a streamed answer's first token: from its bytes reaching the page to the screen \
         (median of {n}; worst {worst_lag:.1} ms) | {lag_p50:.1} ms | {} |\n",
        cell("web.token_lag_ms", lag_p50),
        n = pairs.len(),
    ));
    r.push_str(&format!(
        "| time to first token, Ask page minus the API directly (same question shape, \
         alternating order; median of {} pairs; API alone {:.0} ms) | {:+.0} ms | (reported) |\n",
        pairs.len(),
        median(api),
        median(added),
    ));
    r.push_str(&format!(
        "| {DOCS} documents: list response to every row rendered | {render:.0} ms | {} |\n",
        cell("web.list_render_ms", render),
    ));
    r.push_str(&format!(
        "| {DOCS} documents: a filter keystroke to its rows (worst of narrowing and \
         clearing) | {:.0} ms | (reported) |\n| {DOCS} documents: longest frame while \
         scrolling the whole list | {:.0} ms | (reported) |\n",
        f(&list["filter"]),
        f(&list["scroll"]),
    ));
    Ok(r)
}
