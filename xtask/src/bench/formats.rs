//! `cargo xtask bench formats`: how fast `bear ingest` takes e-mail and office files, in
//! documents per second and megabytes per second, on a generated corpus: e-mails with
//! attachments (one per message, a mailbox of them, a ZIP of them) and copies of the office
//! fixtures (docx, xlsx, pptx, odt, ods) with a line of their own added so no two are alike.
//! Each set is ingested into a fresh home three times, the runs alternating, after one
//! untimed warm-up run; the whole pipeline is timed (extraction, chunking, scrubbing,
//! embedding with the default embedder, the store).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use base64::Engine;

use super::{report, web};

/// E-mails per set, and copies of each office fixture.
const MESSAGES: usize = 80;
const COPIES: usize = 16;
const ROUNDS: usize = 3;

/// One timed ingest of a set.
struct Run {
    documents: u64,
    bytes: u64,
    secs: f64,
}

/// Builds the sets, ingests each `ROUNDS` times and publishes the block in docs/benchmarks.md.
pub(crate) fn formats() -> anyhow::Result<()> {
    let corpus = tempfile::tempdir()?;
    let mail = corpus.path().join("mail");
    let office = corpus.path().join("office");
    write_mail(&mail)?;
    write_office(&office)?;
    // One untimed run first: the first ingest on a machine also pays for reading the model
    // files from disk, which is not what this measures.
    ingest(&office)?;
    let mut runs: Vec<(&str, Run)> = Vec::new();
    for round in 0..ROUNDS {
        eprintln!("round {} of {ROUNDS}", round + 1);
        runs.push(("e-mail", ingest(&mail)?));
        runs.push(("office", ingest(&office)?));
    }
    report::publish("formats", &block(&runs))
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/bear-rag/tests/fixtures")
}

/// `MESSAGES` e-mails, each with a text body and a DOCX attachment; the same messages as one
/// mailbox and as one ZIP archive of .eml files.
fn write_mail(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let docx = std::fs::read(fixtures().join("letter.docx"))?;
    let attachment = base64::engine::general_purpose::STANDARD.encode(&docx);
    let mut mbox = Vec::new();
    let zipped = std::fs::File::create(dir.join("archive.zip"))?;
    let mut zip = zip::ZipWriter::new(zipped);
    for i in 0..MESSAGES {
        let eml = message(i, &attachment);
        std::fs::write(dir.join(format!("message-{i:04}.eml")), &eml)?;
        mbox.extend_from_slice(
            format!("From sender{i}@example.org Mon Mar  4 10:00:00 2024\n").as_bytes(),
        );
        mbox.extend_from_slice(eml.replace("\r\n", "\n").as_bytes());
        mbox.push(b'\n');
        zip.start_file(
            format!("sent/message-{i:04}.eml"),
            zip::write::SimpleFileOptions::default(),
        )?;
        zip.write_all(eml.as_bytes())?;
    }
    zip.finish()?;
    std::fs::write(dir.join("all.mbox"), mbox)?;
    Ok(())
}

fn message(i: usize, attachment: &str) -> String {
    let body = format!(
        "Dear colleague,\r\n\r\nIn matter {i} the hearing moves to {} March. The draft settlement \
         is attached; the claim stands at EUR {} and the other side answers within {} days.\r\n\r\n\
         Kind regards,\r\nThe litigation team\r\n",
        1 + i % 28,
        10_000 + 250 * i,
        7 + i % 21
    );
    let mut lines = String::new();
    for chunk in attachment.as_bytes().chunks(76) {
        lines.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        lines.push_str("\r\n");
    }
    format!(
        "From: Counsel {i} <counsel{i}@example.org>\r\nTo: client@example.org\r\n\
         Subject: Matter {i}: hearing and settlement\r\nDate: Mon, 4 Mar 2024 10:{:02}:00 +0100\r\n\
         Message-ID: <m{i}@example.org>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n--b{i}\r\n\
         Content-Type: application/vnd.openxmlformats-officedocument.wordprocessingml.document; \
         name=\"draft-{i}.docx\"\r\nContent-Disposition: attachment; filename=\"draft-{i}.docx\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{lines}--b{i}--\r\n",
        i % 60
    )
}

/// `COPIES` copies of each office fixture, each with one more file of its own inside (a
/// different package, so the ingest cannot skip it as unchanged).
fn write_office(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for name in [
        "letter.docx",
        "damages.xlsx",
        "hearing.pptx",
        "settlement.odt",
        "hours.ods",
    ] {
        let bytes = std::fs::read(fixtures().join(name))?;
        for i in 0..COPIES {
            let copy = with_marker(&bytes, i)?;
            std::fs::write(dir.join(format!("{i:03}-{name}")), copy)?;
        }
    }
    Ok(())
}

fn with_marker(package: &[u8], i: usize) -> anyhow::Result<Vec<u8>> {
    let mut src = zip::ZipArchive::new(std::io::Cursor::new(package))?;
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for k in 0..src.len() {
        out.raw_copy_file(src.by_index(k)?)?;
    }
    out.start_file(
        format!("bench/copy-{i}.txt"),
        zip::write::SimpleFileOptions::default(),
    )?;
    out.write_all(format!("copy {i}").as_bytes())?;
    Ok(out.finish()?.into_inner())
}

/// `bear --json ingest dir` in a fresh home: documents ingested, input bytes, seconds.
fn ingest(dir: &Path) -> anyhow::Result<Run> {
    let home = tempfile::tempdir()?;
    let bytes: u64 = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    let started = Instant::now();
    let out = web::bear(
        home.path(),
        &["--json", "ingest", &dir.display().to_string()],
    )?;
    let secs = started.elapsed().as_secs_f64();
    let report: serde_json::Value = serde_json::from_str(&out).context("ingest report")?;
    let documents = report["ingested"].as_array().map_or(0, Vec::len) as u64;
    if documents == 0 {
        bail!("nothing was ingested from {}: {report}", dir.display());
    }
    Ok(Run {
        documents,
        bytes,
        secs,
    })
}

fn block(runs: &[(&str, Run)]) -> String {
    let mut out = format!(
        "### E-mail and office ingestion throughput\n\n\
         `bear ingest` of a generated corpus into a fresh home, the whole pipeline (extraction, \
         chunking, scrubbing, embedding with the default embedder, LanceDB): e-mail = {MESSAGES} \
         .eml files with a DOCX attachment each, the same messages as one mbox and as one ZIP \
         of .eml files; office = {COPIES} copies each of a docx, xlsx, pptx, odt and ods. \
         Documents counts every message, attachment and archive listing; one untimed run \
         comes first.\n\n\
         | set | round | documents | MB in | seconds | documents/s | MB/s |\n|---|---|---|---|---|---|---|\n"
    );
    for (i, (set, r)) in runs.iter().enumerate() {
        let round = i / 2 + 1;
        out.push_str(&format!(
            "| {set} | {round} | {} | {:.2} | {:.1} | {:.1} | {:.2} |\n",
            r.documents,
            r.bytes as f64 / 1e6,
            r.secs,
            r.documents as f64 / r.secs,
            r.bytes as f64 / 1e6 / r.secs
        ));
    }
    for set in ["e-mail", "office"] {
        let mut rates: Vec<(f64, f64)> = runs
            .iter()
            .filter(|(s, _)| *s == set)
            .map(|(_, r)| (r.documents as f64 / r.secs, r.bytes as f64 / 1e6 / r.secs))
            .collect();
        rates.sort_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((docs, mb)) = rates.get(rates.len() / 2) {
            out.push_str(&format!(
                "\n{set}, median of {} rounds: {docs:.1} documents/s, {mb:.2} MB/s.",
                rates.len()
            ));
        }
    }
    out.push('\n');
    out
}
