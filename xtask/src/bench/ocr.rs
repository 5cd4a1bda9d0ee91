//! `cargo xtask bench ocr`: BEAR's OCR against the `tesseract` command-line tool on the same
//! generated pages (`benches/benches/ocr.rs`), and the peak RSS of `bear ingest` on a 200-page
//! scanned PDF.

use std::process::Command;

use anyhow::{Context, bail};

use super::{cell, criterion, report, target_dir};

/// Runs the bench and the 200-page ingest, and publishes the block in docs/benchmarks.md.
pub(crate) fn ocr() -> anyhow::Result<()> {
    if std::env::var_os("BEAR_BENCH_REPORT_ONLY").is_none() {
        criterion(Some("ocr"))?;
        let v = read()?;
        let (rss, secs) = ingest_rss(v["scan_pdf"].as_str().context("no scan_pdf")?)?;
        let mut v = v;
        v["scan_peak_rss_bytes"] = rss.into();
        v["scan_ingest_s"] = secs.into();
        std::fs::write(target_dir().join("bench-ocr.json"), v.to_string())?;
    }
    report::publish("ocr", &block(&read()?))
}

fn read() -> anyhow::Result<serde_json::Value> {
    let path = target_dir().join("bench-ocr.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// `bear ingest` of the scan in a fresh home: (peak RSS in bytes, seconds), through GNU time.
fn ingest_rss(pdf: &str) -> anyhow::Result<(u64, f64)> {
    let home = tempfile::tempdir()?;
    let docs = home.path().join("scan");
    std::fs::create_dir_all(&docs)?;
    std::fs::copy(pdf, docs.join("scan-200-pages.pdf"))?;
    let config = home.path().join("config/bear");
    std::fs::create_dir_all(&config)?;
    std::fs::write(
        config.join("config.toml"),
        "[rag]\nmax_file_bytes = 134217728\n",
    )?;
    let started = std::time::Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "maxrss_kb=%M"])
        .arg(crate::bear_binary()?)
        .args(["--json", "ingest"])
        .arg(&docs)
        .envs(super::web::env(home.path()))
        .env_remove("BEAR_CONFIG")
        .output()
        .context("cannot run /usr/bin/time (Debian: time)")?;
    let secs = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("bear ingest of the 200-page scan failed: {}", out.status);
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    if report["ingested"].as_array().map(Vec::len) != Some(1) {
        bail!("the 200-page scan was not ingested: {report}");
    }
    let kb: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kb="))
        .and_then(|v| v.trim().parse().ok())
        .context("GNU time printed no maximum RSS")?;
    Ok((kb * 1024, secs))
}

fn block(v: &serde_json::Value) -> String {
    let f = |x: &serde_json::Value| x.as_f64().unwrap_or(f64::NAN);
    let median = |x: &serde_json::Value| {
        let mut a: Vec<f64> = x.as_array().into_iter().flatten().map(f).collect();
        a.sort_by(f64::total_cmp);
        match a.len() {
            0 => f64::NAN,
            n if n % 2 == 0 => (a[n / 2 - 1] + a[n / 2]) / 2.0,
            n => a[n / 2],
        }
    };
    let mut out = format!(
        "### OCR: BEAR against the tesseract CLI, {} pages at 300 dpi, {}\n\n\
         Generated pages of known text in four sets; the CLI reads each page's PNG one after \
         another; BEAR reads the same PNGs (BEAR CER, same images: the accuracy goal) and one \
         scanned PDF of those images (rendered, then read on both cores: BEAR CER, PDF, and \
         the speed). Character error rate is the edit distance over the text's length, \
         whitespace collapsed; speed is pages over wall time, the median of the rounds.\n\n\
         | pages | BEAR CER, same images | BEAR CER, PDF | CLI CER | goal | BEAR pages/s | CLI pages/s | speed ratio |\n\
         |---|---|---|---|---|---|---|---|\n",
        v["pages"],
        v["languages"].as_str().unwrap_or("")
    );
    let (mut worst_gap, mut worst_pdf_gap) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for (set, m) in v["sets"].as_object().into_iter().flatten() {
        let (b, pdf, c) = (f(&m["bear_png_cer"]), f(&m["bear_cer"]), f(&m["cli_cer"]));
        worst_gap = worst_gap.max(b - c);
        worst_pdf_gap = worst_pdf_gap.max(pdf - c);
        let goal = if set.ends_with("clean") {
            cell("ocr.clean_cer", b.max(pdf))
        } else {
            "(reported)".into()
        };
        let (bs, cs) = (
            median(&m["bear_pages_per_s"]),
            median(&m["cli_pages_per_s"]),
        );
        out.push_str(&format!(
            "| {set} | {:.2}% | {:.2}% | {:.2}% | {goal} | {bs:.2} | {cs:.2} | {:.2}x |\n",
            b * 100.0,
            pdf * 100.0,
            c * 100.0,
            bs / cs
        ));
    }
    let ratio = median(&v["speed_ratios"]);
    let rss_mib = f(&v["scan_peak_rss_bytes"]) / (1024.0 * 1024.0);
    out.push_str(&format!(
        "\nBEAR's CER minus the CLI's on the same images, worst set: {:+.2} points ({}); \
         through the PDF, worst set: {:+.2} points.\n\n\
         Speed, all {} pages: BEAR {:.2} pages/s, CLI {:.2} pages/s (medians of {} \
         alternating rounds); ratio {ratio:.2}x, rounds {} ({}).\n\n\
         `bear ingest` of a {}-page scanned PDF (1-bit Flate pages, {:.1} MB): {:.0} s, \
         peak RSS {rss_mib:.0} MiB ({}).\n",
        worst_gap * 100.0,
        cell("ocr.cer_gap_points", worst_gap * 100.0),
        worst_pdf_gap * 100.0,
        v["pages"],
        median(&v["bear_pages_per_s"]),
        median(&v["cli_pages_per_s"]),
        v["speed_ratios"].as_array().map_or(0, Vec::len),
        v["speed_ratios"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| format!("{:.2}", f(r)))
            .collect::<Vec<_>>()
            .join(", "),
        cell("ocr.speed_ratio", ratio),
        v["scan_pages"],
        f(&v["scan_bytes"]) / 1e6,
        f(&v["scan_ingest_s"]),
        cell("ocr.scan_rss_mib", rss_mib),
    ));
    out
}
