//! `bear ingest`, `bear search`, `bear ask`, `bear docs` and `bear collections`: the RAG
//! commands, wiring bear-rag to the real embedder, generator and scrubber.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use bear_app::Viewer;
use bear_core::{CancellationToken, PiiPolicy};
use bear_rag::Progress;

use crate::cli::{
    AskArgs, CollectionsCommand, DocsCommand, ExtractArgs, IngestArgs, PolicyChoice, SearchArgs,
};
use crate::error::{Error, Result};
use crate::write_json;
use bear_app::LoadedConfig;

fn collection_name(loaded: &LoadedConfig, given: Option<&str>) -> String {
    given
        .unwrap_or(&loaded.config.rag.default_collection)
        .to_string()
}

fn policy(choice: Option<PolicyChoice>, loaded: &LoadedConfig) -> PiiPolicy {
    match choice {
        None => loaded.config.rag.pii_policy,
        Some(PolicyChoice::Tokenize) => PiiPolicy::Tokenize,
        Some(PolicyChoice::Replace) => PiiPolicy::Replace,
        Some(PolicyChoice::Mask) => PiiPolicy::Mask,
        Some(PolicyChoice::Hash) => PiiPolicy::Hash,
        Some(PolicyChoice::Redact) => PiiPolicy::Redact,
    }
}

/// Runs `bear ingest`.
pub(crate) fn ingest(
    loaded: &LoadedConfig,
    args: IngestArgs,
    json: bool,
    quiet: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let request = bear_app::ingest::IngestRequest {
        collection: args.collection,
        paths: args.paths,
        include: args.include,
        exclude: args.exclude,
        sync: args.sync,
        pii_policy: args.pii_policy.map(|p| policy(Some(p), loaded)),
    };
    let name = request
        .collection
        .clone()
        .unwrap_or_else(|| loaded.config.rag.default_collection.clone());
    let rt = crate::runtime()?;
    let app = crate::app(loaded)?;
    let mut shown = IngestProgress::new(json, quiet);
    let cancel = CancellationToken::new();
    let ctrl_c = cancel.clone();
    let report = rt.block_on(async {
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                ctrl_c.cancel();
            }
        });
        app.ingest(&Viewer::Local, request, &mut |p| shown.show(p), &cancel)
            .await
    });
    shown.finish();
    let report = report?;
    if json {
        return write_json(out, &report);
    }
    writeln!(
        out,
        "{name}: {} ingested ({} chunks), {} unchanged, {} failed{}{} in {:.1} s",
        report.ingested.len(),
        report.chunks,
        report.unchanged.len(),
        report.failed.len(),
        if report.removed.is_empty() {
            String::new()
        } else {
            format!(", {} removed", report.removed.len())
        },
        if report.cancelled { " (cancelled)" } else { "" },
        report.elapsed_ms as f64 / 1000.0
    )?;
    for f in &report.failed {
        writeln!(out, "  failed {}: {}", f.path, f.reason)?;
    }
    if let Some(before) = &report.built_with_runtime {
        writeln!(
            out,
            "  note: the collection's earlier vectors came from {before}; the model is the same, \
             so the vectors agree within the tested tolerance (cosine 0.9999)"
        )?;
    }
    Ok(())
}

/// How ingest progress is shown on stderr: a bar on a terminal, a line per file otherwise,
/// one JSON event per line with `--json`, nothing with `--quiet`.
struct IngestProgress {
    bar: Option<indicatif::ProgressBar>,
    json: bool,
    quiet: bool,
    chunks: usize,
    started: std::time::Instant,
}

impl IngestProgress {
    fn new(json: bool, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} files  {msg}  {per_sec}  ETA {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            bar,
            json,
            quiet,
            chunks: 0,
            started: std::time::Instant::now(),
        }
    }

    fn show(&mut self, p: &Progress) {
        if self.quiet {
            return;
        }
        let Some(bar) = &self.bar else {
            if self.json {
                // Machine-readable progress on stderr, one event per line.
                eprintln!("{}", serde_json::to_string(p).unwrap_or_default());
                return;
            }
            match p {
                Progress::Ingested { path, chunks } => {
                    eprintln!("ingested {path} ({chunks} chunks)")
                }
                Progress::Failed { path, reason } => eprintln!("failed   {path}: {reason}"),
                Progress::Page { path, done, pages } if done % 10 == 0 || done == pages => {
                    eprintln!("OCR      {path}: {done} of {pages} pages")
                }
                _ => {}
            }
            return;
        };
        match p {
            Progress::Found { files } => bar.set_length(*files as u64),
            Progress::Ingested { chunks, .. } => {
                self.chunks += chunks;
                let rate = self.chunks as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
                bar.set_message(format!("{} chunks ({rate:.0}/s)", self.chunks));
                bar.inc(1);
            }
            Progress::Unchanged { .. } => bar.inc(1),
            Progress::Page { path, done, pages } => {
                bar.set_message(format!("OCR {path}: page {done} of {pages}"));
            }
            Progress::Failed { path, reason } => {
                bar.println(format!("failed {path}: {reason}"));
                bar.inc(1);
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Runs `bear search`.
pub(crate) fn search(
    loaded: &LoadedConfig,
    args: SearchArgs,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let rt = crate::runtime()?;
    let app = crate::app(loaded)?;
    let f = args.filter;
    let mail = f.mail();
    let request = bear_app::rag::SearchRequest {
        mail,
        query: args.query,
        k: args.k,
        mode: Some(args.mode.into()),
        collection: f.collection,
        document: f.document,
        after: f.after,
        before: f.before,
    };
    let found = rt.block_on(app.search(&Viewer::Local, request))?;
    if json {
        return write_json(out, &found);
    }
    if found.hits.is_empty() {
        writeln!(out, "no results")?;
    }
    for (i, h) in found.hits.iter().enumerate() {
        writeln!(
            out,
            "[{}] {:.4}  {}  (document {})",
            i + 1,
            h.score,
            h.citation,
            h.document_id
        )?;
        let text: String = h.text.split_whitespace().collect::<Vec<_>>().join(" ");
        let short: String = text.chars().take(240).collect();
        writeln!(
            out,
            "    {short}{}",
            if short.len() < text.len() { "…" } else { "" }
        )?;
    }
    Ok(())
}

/// Runs `bear ask`.
pub(crate) fn ask(
    loaded: &LoadedConfig,
    args: AskArgs,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let rt = crate::runtime()?;
    let app = crate::app(loaded)?;
    let (f, sampling) = (args.filter, args.sampling);
    let mail = f.mail();
    let request = bear_app::rag::AskRequest {
        mail,
        question: args.question,
        k: args.k,
        model: args.model,
        collection: f.collection,
        collections: None,
        document: f.document,
        after: f.after,
        before: f.before,
        max_tokens: sampling.max_tokens,
        temperature: sampling.temperature,
        top_p: sampling.top_p,
        top_k: sampling.top_k,
        repeat_penalty: sampling.repeat_penalty,
        seed: sampling.seed,
        stop_sequences: sampling.stop,
        stream: !json,
        strict: Some(!args.no_strict),
    };
    // The answer is computed on the runtime; its pieces come back over a channel and are
    // written here, on the thread that holds stdout.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let sink = move |piece: &str| {
        // A closed channel means the caller went away; generation finishes regardless.
        let _ = tx.send(piece.to_string());
        true
    };
    let task = rt.spawn(async move {
        app.ask(
            &Viewer::Local,
            request,
            Box::new(sink),
            CancellationToken::new(),
        )
        .await
    });
    for piece in rx {
        if !json {
            out.write_all(piece.as_bytes())?;
            out.flush()?;
        }
    }
    let answer = rt.block_on(task).map_err(|_| {
        Error::from(bear_core::Error::backend(
            bear_core::ErrorKind::Internal,
            "the answer task failed",
        ))
    })??;
    if json {
        return write_json(out, &answer);
    }
    writeln!(out)?;
    write_sources(out, &answer)?;
    if let Some(t) = answer.time_to_first_token_ms {
        eprintln!(
            "time to first token {t} ms; {} prompt + {} answer tokens in {:.1} s",
            answer.prompt_tokens,
            answer.completion_tokens,
            answer.elapsed_ms as f64 / 1000.0
        );
    }
    Ok(())
}

/// The sources of an answer (`✓` cited and verified, `✗` cited but not verified), each
/// citation's check, and what strict mode removed.
fn write_sources(out: &mut dyn Write, answer: &bear_app::rag::AskResponse) -> Result<()> {
    if answer.sources.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nSources:")?;
    for s in &answer.sources {
        let mark = match (s.cited, s.verified) {
            (_, true) => "✓",
            (true, false) => "✗",
            _ => " ",
        };
        writeln!(out, "{mark} [{}] {}", s.marker, s.hit.citation)?;
    }
    write_checks(
        out,
        &answer.answer,
        &answer.citations,
        &answer.unsupported_sentences,
        answer.removed_sentences,
    )
}

/// Each citation's check of `text`, the sentences no source supports, and what strict mode
/// removed.
pub(crate) fn write_checks(
    out: &mut dyn Write,
    text: &str,
    citations: &[bear_app::rag::Citation],
    unsupported: &[[usize; 2]],
    removed: usize,
) -> Result<()> {
    if !citations.is_empty() {
        writeln!(out, "\nCitations:")?;
    }
    for c in citations {
        let sentence = text.get(c.sentence[0]..c.sentence[1]).unwrap_or_default();
        let short = shorten(sentence, 70);
        match (&c.span, &c.reason) {
            (Some(span), _) => {
                let page = span.page.map(|p| format!("p. {p}: ")).unwrap_or_default();
                let by = if c.added {
                    " (citation added by BEAR)"
                } else {
                    ""
                };
                writeln!(out, "✓ [{}] {short}{by}", c.marker)?;
                writeln!(out, "      {page}“{}”", shorten(&span.text, 90))?;
            }
            (None, reason) => {
                let why = reason.as_deref().unwrap_or("not verified");
                writeln!(out, "✗ [{}] {short}", c.marker)?;
                writeln!(out, "      NOT VERIFIED: {why}")?;
            }
        }
    }
    if !unsupported.is_empty() {
        writeln!(out, "\nNOT VERIFIED (no source supports these):")?;
    }
    for [s, e] in unsupported {
        let sentence = text.get(*s..*e).unwrap_or_default();
        writeln!(out, "✗ {}", shorten(sentence, 100))?;
    }
    if removed > 0 {
        writeln!(
            out,
            "\n{removed} sentence(s) without a verified citation removed; --no-strict shows them, marked."
        )?;
    }
    Ok(())
}

/// `text` on one line, cut to `max` characters with `…`.
fn shorten(text: &str, max: usize) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}

/// Runs `bear extract`: each document's values, `✓` with the page they stand on, `✗` dropped
/// with the reason.
pub(crate) fn extract(
    loaded: &LoadedConfig,
    args: ExtractArgs,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let rt = crate::runtime()?;
    let app = crate::app(loaded)?;
    let request = bear_app::extract::ExtractRequest {
        schema: crate::models::read_schema(&args.schema)?,
        collection: args.collection,
        document: args.document,
        model: args.model,
        max_tokens: args.max_tokens,
    };
    let done = rt.block_on(app.extract(&Viewer::Local, request))?;
    if json {
        return write_json(out, &done);
    }
    for d in &done.documents {
        writeln!(out, "{}  ({})", d.path, d.document_id)?;
        if let Some(e) = &d.error {
            writeln!(out, "  error: {e}")?;
        }
        for l in &d.found {
            let page = l.page.map(|p| format!("  (p. {p})")).unwrap_or_default();
            writeln!(out, "  ✓ {} = {}{page}", l.pointer, l.value)?;
        }
        for l in &d.dropped {
            let why = l.reason.as_deref().unwrap_or_default();
            writeln!(out, "  ✗ {} = {}  DROPPED: {why}", l.pointer, l.value)?;
        }
    }
    if done.documents.is_empty() {
        writeln!(out, "no documents in `{}`", done.collection)?;
    }
    Ok(())
}

/// Runs `bear docs ...`.
pub(crate) fn docs(
    loaded: &LoadedConfig,
    cmd: DocsCommand,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let rt = crate::runtime()?;
    let app = crate::app(loaded)?;
    match cmd {
        DocsCommand::List { collection } => {
            let docs = rt.block_on(app.documents(&Viewer::Local, collection.as_deref()))?;
            if json {
                return write_json(out, &docs);
            }
            for d in &docs {
                writeln!(
                    out,
                    "{}  {:>4} chunks  {}{}",
                    d.id,
                    d.chunks,
                    d.path,
                    d.page_count
                        .map(|p| format!("  ({p} pages)"))
                        .unwrap_or_default()
                )?;
            }
            if docs.is_empty() {
                let name = collection_name(loaded, collection.as_deref());
                writeln!(out, "no documents in `{name}`")?;
            }
            Ok(())
        }
        DocsCommand::Rm {
            document,
            collection,
        } => {
            let removed =
                rt.block_on(app.remove_document(&Viewer::Local, collection.as_deref(), &document))?;
            if json {
                return write_json(out, &removed);
            }
            writeln!(
                out,
                "removed {} ({})",
                removed.path.as_deref().unwrap_or_default(),
                removed.id
            )?;
            Ok(())
        }
    }
}

/// Runs `bear collections ...`.
pub(crate) fn collections(
    loaded: &LoadedConfig,
    cmd: CollectionsCommand,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let rt = crate::runtime()?;
    let app = crate::app(loaded)?;
    match cmd {
        CollectionsCommand::List => {
            let list = rt.block_on(app.collections(&Viewer::Local))?;
            if json {
                return write_json(out, &list);
            }
            if list.is_empty() {
                writeln!(
                    out,
                    "no collections yet; `bear ingest PATH` creates `{}`",
                    loaded.config.rag.default_collection
                )?;
            }
            for c in &list {
                writeln!(
                    out,
                    "{:<20} {:>6} documents {:>8} chunks  pii: {}  embedder: {}{}",
                    c.name,
                    c.documents,
                    c.chunks,
                    serde_json::to_value(c.pii_policy)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    c.embedder,
                    c.embedder_runtime
                        .as_ref()
                        .map(|r| format!(" on {r}"))
                        .unwrap_or_default()
                )?;
            }
            Ok(())
        }
        CollectionsCommand::Create { name, pii_policy } => {
            let request = bear_app::docs::CreateCollection {
                name,
                pii_policy: pii_policy.map(|p| policy(Some(p), loaded)),
            };
            let c = rt.block_on(app.create_collection(&Viewer::Local, &request))?;
            if json {
                write_json(out, &c)
            } else {
                writeln!(out, "created collection `{}`", c.name)?;
                Ok(())
            }
        }
        CollectionsCommand::Rm { name } => {
            let removed = rt.block_on(app.remove_collection(&Viewer::Local, &name))?;
            if json {
                write_json(out, &removed)
            } else {
                writeln!(out, "removed collection `{name}`")?;
                Ok(())
            }
        }
        CollectionsCommand::Export { name, dir } => {
            let mut on_table = |table: &str, rows: u64| {
                if !json {
                    eprintln!("exported {table}: {rows} rows");
                }
            };
            let done =
                rt.block_on(app.export_collection(&Viewer::Local, &name, &dir, &mut on_table))?;
            if json {
                write_json(out, &done)
            } else {
                writeln!(
                    out,
                    "exported `{name}` unsealed to {} ({} documents, {} chunks); anyone who \
                     can read that folder can read them",
                    done.path.display(),
                    done.documents,
                    done.chunks
                )?;
                Ok(())
            }
        }
    }
}

/// Runs `bear migrate`: a bar per collection's tables, then the summary.
pub(crate) fn migrate(loaded: &LoadedConfig, json: bool, out: &mut dyn Write) -> Result<()> {
    let rt = crate::runtime()?;
    let app = crate::app(loaded)?;
    let bar = (!json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut progress = |step: &bear_app::migrate::MigrateStep| match (step, &bar) {
        (bear_app::migrate::MigrateStep::Collection { name, index, total }, Some(bar)) => {
            bar.set_length(*total as u64);
            bar.set_position(*index as u64 - 1);
            bar.set_prefix("sealing");
            bar.set_message(name.clone());
        }
        (bear_app::migrate::MigrateStep::Rows { table, rows }, Some(bar)) => {
            bar.println(format!("  {table}: {rows} rows sealed"));
        }
        (step, None) if json => {
            if let Ok(line) = serde_json::to_string(step) {
                eprintln!("{line}");
            }
        }
        (bear_app::migrate::MigrateStep::Collection { name, index, total }, None) => {
            eprintln!("sealing collection `{name}` ({index}/{total})");
        }
        (bear_app::migrate::MigrateStep::Rows { table, rows }, None) => {
            eprintln!("  {table}: {rows} rows sealed");
        }
    };
    let report = rt.block_on(app.migrate(&Viewer::Local, &mut progress));
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = report?;
    if json {
        return write_json(out, &report);
    }
    writeln!(
        out,
        "sealed {} collection(s), {} history file(s), {} upload(s) and {} workflow value(s); \
         moved {} PII token(s) to their matters' vaults{}",
        report.collections.len(),
        report.histories,
        report.uploads,
        report.workflow_values,
        report.vault_tokens,
        if report.cache_removed {
            "; the result cache starts empty"
        } else {
            ""
        }
    )?;
    Ok(())
}
