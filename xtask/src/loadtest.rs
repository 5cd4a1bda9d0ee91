//! `cargo xtask loadtest`: a bounded load against a local bear-server with wrk (or oha), on
//! loopback only. The server runs from this build with a throw-away data directory, one
//! user key, and rate limits lifted so the load measures the server, not its limiter. Each
//! target is loaded for a fixed time at 16 and 64 connections; the table gives requests/s
//! and p50/p99 latency.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

/// One load: what, how many connections, and what came out.
pub(crate) struct Run {
    pub(crate) target: &'static str,
    pub(crate) connections: u32,
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) non_2xx: u64,
}

/// Kills the server when the load test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn run(seconds: u64) -> anyhow::Result<()> {
    let tool = if which("wrk") {
        "wrk"
    } else if which("oha") {
        "oha"
    } else {
        bail!("cargo xtask loadtest needs wrk or oha: `sudo apt-get install wrk`");
    };
    let bear = crate::bear_binary()?;
    let server_bin = bear.with_file_name("bear-server");
    let home = tempfile::tempdir()?;
    let config_dir = home.path().join("config/bear");
    std::fs::create_dir_all(&config_dir)?;
    std::fs::write(
        config_dir.join("config.toml"),
        "[server]\nrate_per_second = 1000000\nrate_burst = 1000000\n\
         auth_failures_per_minute = 1000000\ngeneration_queue = 256\n",
    )?;
    let env = |cmd: &mut Command| {
        cmd.env("BEAR_DATA_DIR", home.path().join("data"))
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env_remove("BEAR_CONFIG");
    };

    let mut create = Command::new(&bear);
    env(&mut create);
    let out = create
        .args([
            "keys",
            "api-create",
            "--role",
            "user",
            "--label",
            "loadtest",
        ])
        .stderr(Stdio::null())
        .output()
        .context("cannot run bear keys api-create")?;
    if !out.status.success() {
        bail!("bear keys api-create failed: {}", out.status);
    }
    let key = String::from_utf8(out.stdout)?.trim().to_string();

    let mut cmd = Command::new(&server_bin);
    env(&mut cmd);
    let mut child = cmd
        .args(["--bind", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", server_bin.display()))?;
    let stderr = child.stderr.take().context("no stderr")?;
    let server = Server(child);
    let mut base = None;
    for line in BufReader::new(stderr).lines() {
        let line = line?;
        if let Some(url) = line.strip_prefix("bear-server listening on ") {
            base = Some(url.trim().to_string());
            break;
        }
    }
    let base = base.context("bear-server did not start; run it by hand to see why")?;
    if !base.starts_with("http://127.0.0.1:") {
        bail!("refusing to load {base}: loopback only");
    }
    eprintln!("bear-server at {base}; {tool}, {seconds} s per run\n");

    let auth = format!("Authorization: Bearer {key}");
    let mut runs = Vec::new();
    for (target, path, with_key) in [
        ("GET /health (no key)", "/health", false),
        ("GET /api/v1/hw (key, full gateway)", "/api/v1/hw", true),
        (
            "GET /api/v1/workflows (key, SQLite)",
            "/api/v1/workflows",
            true,
        ),
    ] {
        for connections in [16u32, 64] {
            let url = format!("{base}{path}");
            let header = with_key.then_some(auth.as_str());
            let r = if tool == "wrk" {
                wrk(&url, header, connections, seconds)?
            } else {
                oha(&url, header, connections, seconds)?
            };
            runs.push(Run {
                target,
                connections,
                ..r
            });
        }
    }
    drop(server);

    println!(
        "| target | connections | requests/s | p50 ms | p99 ms | non-2xx |\n|---|---|---|---|---|---|"
    );
    for r in &runs {
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {} |",
            r.target, r.connections, r.rps, r.p50_ms, r.p99_ms, r.non_2xx
        );
    }
    if runs.iter().any(|r| r.non_2xx > 0) {
        bail!("some requests failed (see non-2xx)");
    }
    Ok(())
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| Path::new(&d).join(tool).is_file()))
}

pub(crate) fn wrk(
    url: &str,
    header: Option<&str>,
    connections: u32,
    seconds: u64,
) -> anyhow::Result<Run> {
    let mut cmd = Command::new("wrk");
    let threads = connections.clamp(1, 2);
    cmd.args(["-t", &threads.to_string(), "-c", &connections.to_string()])
        .args([
            "-d",
            &format!("{seconds}s"),
            "--latency",
            "--timeout",
            "10s",
        ]);
    if let Some(h) = header {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().context("cannot run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let field = |prefix: &str| -> Option<String> {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix).map(|r| r.trim().to_string()))
    };
    let rps: f64 = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .context("no Requests/sec in wrk's output")?;
    let p50 = field("50%").and_then(|v| wrk_ms(&v)).context("no p50")?;
    let p99 = field("99%").and_then(|v| wrk_ms(&v)).context("no p99")?;
    let non_2xx = field("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok(Run {
        target: "",
        connections,
        rps,
        p50_ms: p50,
        p99_ms: p99,
        non_2xx,
    })
}

/// wrk's `123.45us`, `1.20ms`, `2.00s` as milliseconds.
fn wrk_ms(v: &str) -> Option<f64> {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

fn oha(url: &str, header: Option<&str>, connections: u32, seconds: u64) -> anyhow::Result<Run> {
    let mut cmd = Command::new("oha");
    cmd.args(["--no-tui", "--json", "-c", &connections.to_string()])
        .args(["-z", &format!("{seconds}s")]);
    if let Some(h) = header {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).output().context("cannot run oha")?;
    if !out.status.success() {
        bail!("oha failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let ms = |k: &str| v["latencyPercentiles"][k].as_f64().unwrap_or(f64::NAN) * 1000.0;
    let ok = v["statusCodeDistribution"]["200"].as_u64().unwrap_or(0);
    let total: u64 = v["statusCodeDistribution"]
        .as_object()
        .map(|m| m.values().filter_map(|c| c.as_u64()).sum())
        .unwrap_or(0);
    Ok(Run {
        target: "",
        connections,
        rps: v["summary"]["requestsPerSec"].as_f64().unwrap_or(0.0),
        p50_ms: ms("p50"),
        p99_ms: ms("p99"),
        non_2xx: total - ok,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn wrk_units_become_milliseconds() {
        assert_eq!(super::wrk_ms("250.00us"), Some(0.25));
        assert_eq!(super::wrk_ms("1.50ms"), Some(1.5));
        assert_eq!(super::wrk_ms("2.00s"), Some(2000.0));
        assert_eq!(super::wrk_ms("fast"), None);
    }
}
