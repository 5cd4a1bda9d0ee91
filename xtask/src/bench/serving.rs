//! The serving part of `cargo xtask bench models`: bear-server against llama-server (built
//! from the same llama.cpp tree with the same switches), each serving 4 requests at once, on
//! the same OpenAI-compatible requests from one client (`benches/peers/serving_bench.py`):
//! aggregate generation throughput with 1, 2, 4 and 8 concurrent streams (128 tokens each,
//! different prompts) with each stream's time to first token, bear-server's peak RSS against
//! its model and KV cache, and the time to first token of a request sharing a ~1,000-token
//! prefix with the one before.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use super::goals::cell;
use super::web::{Server, bear, median, start};
use crate::workspace_root;

/// Requests each server serves at once.
const PARALLEL: u32 = 4;
/// Context per request.
const CONTEXT: u32 = 4096;
/// Tokens each stream generates.
const TOKENS: u32 = 128;
/// Alternating pairs per stream count.
const PAIRS: usize = 3;
const MODEL: &str = "SmolLM2-135M-Instruct.Q4_1";

/// llama-server on a free loopback port; killed when dropped.
struct LlamaServer {
    child: Child,
    base: String,
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.0 GET's status line, or `None` while nothing listens.
fn get_status(base: &str, path: &str) -> Option<String> {
    let addr = base.strip_prefix("http://")?;
    let mut s = TcpStream::connect(addr).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    reply.lines().next().map(str::to_string)
}

fn llama_server(gguf: &Path, threads: usize) -> anyhow::Result<LlamaServer> {
    let bin = super::llama_tool("llama-server")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(bin)
        .arg("-m")
        .arg(gguf)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--jinja",
        ])
        .args(["-c", &(PARALLEL * CONTEXT).to_string()])
        .args(["-np", &PARALLEL.to_string(), "-t", &threads.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start llama-server")?;
    let server = LlamaServer {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    // Polling, in a benchmark driver only: llama-server says nothing on a pipe when ready.
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if get_status(&server.base, "/health").is_some_and(|l| l.contains(" 200")) {
            return Ok(server);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("llama-server did not become ready within 120 s")
}

/// bear-server over a fresh home with `models` as its `[models]` table, and an API key.
fn bear_server(home: &Path, models: &str, threads: usize) -> anyhow::Result<(Server, String)> {
    let config = home.join("config/bear");
    std::fs::create_dir_all(&config)?;
    std::fs::write(
        config.join("config.toml"),
        format!("[models]\n{models}\n[hw]\nthreads = {threads}\n"),
    )?;
    let created: Value = serde_json::from_str(&bear(
        home,
        &["--json", "keys", "api-create", "--label", "bench"],
    )?)?;
    let key = created["key"].as_str().context("no API key")?.to_string();
    Ok((start(home)?, key))
}

/// One run of the client against `base`.
fn client(base: &str, key: &str, args: &[String]) -> anyhow::Result<Value> {
    let out = Command::new("python3")
        .arg(workspace_root().join("benches/peers/serving_bench.py"))
        .args([base, key, MODEL])
        .args(args)
        .current_dir(workspace_root())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run python3")?;
    if !out.status.success() {
        bail!("serving_bench.py against {base} failed: {}", out.status);
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// A process's peak resident memory (VmHWM), in bytes.
fn peak_rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .context("no VmHWM")?;
    Ok(kb * 1024)
}

/// Bytes of KV cache for `cells` positions of the model, from bear's own model metadata.
fn kv_bytes(home: &Path, cells: u64) -> anyhow::Result<u64> {
    let list: Value = serde_json::from_str(&bear(home, &["--json", "models", "list"])?)?;
    let shape = list
        .as_array()
        .and_then(|l| l.iter().find(|m| m["id"] == MODEL))
        .map(|m| &m["meta"]["kv_shape"])
        .context("no KV shape for the model")?;
    let (layers, dim) = (
        shape["layers"].as_u64().unwrap_or(0),
        shape["kv_dim"].as_u64().unwrap_or(0),
    );
    // Keys and values, f16.
    Ok(cells * layers * 2 * dim * 2)
}

/// [`PAIRS`] runs of the client with `args` against BEAR (`ours`: base and key) and the peer,
/// in alternating order; (BEAR's result, the peer's) per pair.
fn alternate(
    ours: (&str, &str),
    peer: &str,
    args: &[String],
    what: &str,
) -> anyhow::Result<Vec<(Value, Value)>> {
    let mut runs = Vec::new();
    for i in 0..PAIRS {
        eprintln!("pair      {what}, {} of {PAIRS}", i + 1);
        runs.push(if i % 2 == 0 {
            let b = client(ours.0, ours.1, args)?;
            (b, client(peer, "", args)?)
        } else {
            let p = client(peer, "", args)?;
            (client(ours.0, ours.1, args)?, p)
        });
    }
    Ok(runs)
}

/// `key` of each side of `runs`, as numbers.
fn each(runs: &[(Value, Value)], key: &str) -> Vec<(f64, f64)> {
    let f = |v: &Value| v[key].as_f64().unwrap_or(f64::NAN);
    runs.iter().map(|(b, p)| (f(b), f(p))).collect()
}

/// The serving section of the models report.
pub(super) fn serving(gguf: &Path, threads: usize) -> anyhow::Result<String> {
    let peer = llama_server(gguf, threads)?;
    // Free sequences keep their tokens (as llama-server's slots do), but no state is saved
    // to host memory (1 MiB holds none): the RSS is the batching's own, the prompt cache's
    // host bytes being configured on their own.
    let home = tempfile::tempdir()?;
    let (server, key) = bear_server(
        home.path(),
        &format!(
            "parallel = {PARALLEL}\ncontext_length = {CONTEXT}\nprompt_cache_bytes = {}",
            1 << 20
        ),
        threads,
    )?;
    let ours = (server.base.as_str(), key.as_str());
    let warm = vec!["1".to_string(), "8".to_string(), "1".to_string()];
    client(ours.0, ours.1, &warm)?;
    client(&peer.base, "", &warm)?;

    let mut r = format!(
        "### Serving: bear-server against llama-server, {PARALLEL} parallel sequences of \
         {CONTEXT} tokens, {threads} threads\n\n\
         Concurrent `/v1/chat/completions` streams of {TOKENS} tokens, each its own prompt, \
         greedy, from one client; {PAIRS} runs each in alternating order. Aggregate is \
         generated tokens over the wall time; TTFT is each stream's time to its first \
         token (p50 / p99 over the runs).\n\n\
         | streams | BEAR t/s | llama-server t/s | ratio (95% CI) | BEAR TTFT p50 / p99 | \
         llama-server TTFT p50 / p99 | goal |\n|---|---|---|---|---|---|---|\n"
    );
    for streams in [1, 2, 4, 8] {
        let args = [streams.to_string(), TOKENS.to_string(), "1".to_string()];
        let runs = alternate(ours, &peer.base, &args, &format!("{streams} streams"))?;
        let pairs = each(&runs, "tokens_per_second");
        let (ratio, low, high) = super::ratio_with_interval(&pairs);
        let mean = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| {
            v.iter().map(f).sum::<f64>() / v.len() as f64
        };
        let (p50, p99) = (each(&runs, "ttft_p50_ms"), each(&runs, "ttft_p99_ms"));
        let ttft = |side: fn(&(f64, f64)) -> f64| {
            let worst = p99.iter().map(side).fold(f64::NAN, f64::max);
            let mid = median(p50.iter().map(side).collect());
            format!("{mid:.0} / {worst:.0} ms")
        };
        r.push_str(&format!(
            "| {streams} | {:.1} | {:.1} | {ratio:.3}× ({low:.3}-{high:.3}) | {} | {} | {} |\n",
            mean(&pairs, |p| p.0),
            mean(&pairs, |p| p.1),
            ttft(|p| p.0),
            ttft(|p| p.1),
            if streams == 4 {
                cell("models.serving_4_streams", ratio)
            } else {
                "(reported)".into()
            },
        ));
    }
    let rss = peak_rss(server.child.id())?;
    let model = std::fs::metadata(gguf)?.len();
    let kv = kv_bytes(home.path(), u64::from(PARALLEL * CONTEXT))?;
    let over = (rss as f64 - model as f64 - kv as f64) / 1e6;
    r.push_str(&format!(
        "\nbear-server's peak RSS after these runs: {:.1} MB = model file {:.1} MB + KV cache \
         {:.1} MB ({PARALLEL} × {CONTEXT} positions) + {over:.1} MB (goal {}).\n\n",
        rss as f64 / 1e6,
        model as f64 / 1e6,
        kv as f64 / 1e6,
        cell("models.serving_rss_over_kv", over),
    ));
    drop(server);
    r.push_str(&prefix(&peer, threads)?);
    Ok(r)
}

/// Time to first token of a request sharing a ~1,000-token prefix with the one before.
fn prefix(peer: &LlamaServer, threads: usize) -> anyhow::Result<String> {
    let home = tempfile::tempdir()?;
    let (server, key) = bear_server(
        home.path(),
        &format!("parallel = {PARALLEL}\ncontext_length = {CONTEXT}"),
        threads,
    )?;
    let args = ["prefix".to_string()];
    let ours = (server.base.as_str(), key.as_str());
    let runs = alternate(ours, &peer.base, &args, "repeated prefix")?;
    let pairs = each(&runs, "second_ms_median");
    let (ratio, low, high) = super::ratio_with_interval(&pairs);
    let (b, p) = (&runs[0].0["rows"][0], &runs[0].1["rows"][0]);
    Ok(format!(
        "Repeated prefix: a chat request sharing a ~1,000-token prefix with the one just before \
         (one token generated): time to first token BEAR {:.1} ms, llama-server {:.1} ms \
         (`cache_prompt`), ratio {ratio:.3}× (95% CI {low:.3}-{high:.3}; {PAIRS} runs of 6 \
         pairs, medians) (goal {}). Prompt tokens processed for the second request: BEAR {} \
         of {}, llama-server {} of {}.\n\n",
        pairs.iter().map(|p| p.0).sum::<f64>() / pairs.len() as f64,
        pairs.iter().map(|p| p.1).sum::<f64>() / pairs.len() as f64,
        cell("models.prefix_ttft", ratio),
        b["processed"],
        b["prompt_tokens"],
        p["processed"],
        p["prompt_tokens"],
    ))
}
