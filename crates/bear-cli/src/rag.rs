//! `bear ingest`, `bear search`, `bear ask`, `bear docs` and `bear collections`: the RAG
//! commands, wiring bear-rag to the real embedder, generator and scrubber.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use bear_app::Viewer;
use bear_core::{CancellationToken, PiiPolicy};
use bear_rag::{IngestOptions, Pipeline, Progress, Store};

use crate::cli::{AskArgs, CollectionsCommand, DocsCommand, IngestArgs, PolicyChoice, SearchArgs};
use crate::error::{Error, Result};
use crate::security::ScrubSetup;
use crate::write_json;
use bear_app::LoadedConfig;

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn store(loaded: &LoadedConfig) -> Store {
    Store::from_config(&loaded.config.rag, &loaded.dirs)
}

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
    let mut config = loaded.config.rag.clone();
    config.include.extend(args.include.iter().cloned());
    config.exclude.extend(args.exclude.iter().cloned());
    let name = collection_name(loaded, args.collection.as_deref());
    bear_rag::store::check_name(&name)?;
    let store = store(loaded);
    let rt = runtime()?;
    let app = crate::app(loaded)?;
    let embedder = rt.block_on(app.embedder(&loaded.config.models.default_embedder))?;
    let collection = rt.block_on(async {
        if store.exists(&name) {
            return store.open(&name).await;
        }
        match store
            .create(
                &name,
                policy(args.pii_policy, loaded),
                embedder.model().as_str(),
                embedder.dimension(),
            )
            .await
        {
            // Another run created it meanwhile.
            Err(bear_rag::Error::CollectionExists { .. }) => store.open(&name).await,
            r => r,
        }
    })?;
    let mut setup = ScrubSetup::new(loaded, collection.meta().pii_policy)?;
    let pipeline = Pipeline {
        embedder,
        scrubber: setup.scrubber.clone(),
        config,
    };
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
    let mut chunks = 0usize;
    let started = std::time::Instant::now();
    let mut on_progress = |p: &Progress| {
        if json && !quiet && bar.is_none() {
            // Machine-readable progress on stderr, one event per line.
            eprintln!("{}", serde_json::to_string(p).unwrap_or_default());
        }
        let Some(bar) = &bar else {
            if !json && !quiet {
                match p {
                    Progress::Ingested { path, chunks } => {
                        eprintln!("ingested {path} ({chunks} chunks)")
                    }
                    Progress::Failed { path, reason } => eprintln!("failed   {path}: {reason}"),
                    _ => {}
                }
            }
            return;
        };
        match p {
            Progress::Found { files } => bar.set_length(*files as u64),
            Progress::Ingested { chunks: n, .. } => {
                chunks += n;
                let rate = chunks as f64 / started.elapsed().as_secs_f64().max(1e-3);
                bar.set_message(format!("{chunks} chunks ({rate:.0}/s)"));
                bar.inc(1);
            }
            Progress::Unchanged { .. } => bar.inc(1),
            Progress::Failed { path, reason } => {
                bar.println(format!("failed {path}: {reason}"));
                bar.inc(1);
            }
        }
    };
    let cancel = CancellationToken::new();
    let ctrl_c = cancel.clone();
    let report = rt.block_on(async {
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                ctrl_c.cancel();
            }
        });
        bear_rag::ingest(
            &collection,
            &pipeline,
            &args.paths,
            &IngestOptions { sync: args.sync },
            &mut on_progress,
            &cancel,
        )
        .await
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    // New vault tokens are saved even when the ingest failed part-way: stored chunks use them.
    setup.save()?;
    let report = report?;
    setup.audit(
        "rag.ingest",
        if report.failed.is_empty() {
            "ok"
        } else {
            "partial"
        },
        report.ingested.len() as u64,
        report.chunks as u64,
    )?;
    if json {
        write_json(out, &report)?;
    } else {
        writeln!(
            out,
            "{}: {} ingested ({} chunks), {} unchanged, {} failed{}{} in {:.1} s",
            collection.meta().name,
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
    }
    Ok(())
}

/// Runs `bear search`.
pub(crate) fn search(
    loaded: &LoadedConfig,
    args: SearchArgs,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let rt = runtime()?;
    let app = crate::app(loaded)?;
    let f = args.filter;
    let request = bear_app::rag::SearchRequest {
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
    let rt = runtime()?;
    let app = crate::app(loaded)?;
    let (f, sampling) = (args.filter, args.sampling);
    let request = bear_app::rag::AskRequest {
        question: args.question,
        k: args.k,
        model: args.model,
        collection: f.collection,
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
    if !answer.sources.is_empty() {
        writeln!(out, "\nSources:")?;
        for s in &answer.sources {
            let mark = if s.cited { "*" } else { " " };
            writeln!(out, "{mark}[{}] {}", s.marker, s.hit.citation)?;
        }
    }
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

/// Runs `bear docs ...`.
pub(crate) fn docs(
    loaded: &LoadedConfig,
    cmd: DocsCommand,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let rt = runtime()?;
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
            let setup = ScrubSetup::new(loaded, PiiPolicy::Redact)?;
            let removed =
                rt.block_on(app.remove_document(&Viewer::Local, collection.as_deref(), &document))?;
            setup.audit("rag.docs.rm", "ok", 1, 0)?;
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
    let rt = runtime()?;
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
                    "{:<20} {:>6} documents {:>8} chunks  pii: {}  embedder: {}",
                    c.name,
                    c.documents,
                    c.chunks,
                    serde_json::to_value(c.pii_policy)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    c.embedder
                )?;
            }
            Ok(())
        }
        CollectionsCommand::Create { name, pii_policy } => {
            let setup = ScrubSetup::new(loaded, PiiPolicy::Redact)?;
            let request = bear_app::docs::CreateCollection {
                name,
                pii_policy: pii_policy.map(|p| policy(Some(p), loaded)),
            };
            let c = rt.block_on(app.create_collection(&Viewer::Local, &request))?;
            setup.audit("rag.collections.create", "ok", 0, 0)?;
            if json {
                write_json(out, &c)
            } else {
                writeln!(out, "created collection `{}`", c.name)?;
                Ok(())
            }
        }
        CollectionsCommand::Rm { name } => {
            let setup = ScrubSetup::new(loaded, PiiPolicy::Redact)?;
            let removed = rt.block_on(app.remove_collection(&Viewer::Local, &name))?;
            setup.audit("rag.collections.rm", "ok", 0, 0)?;
            if json {
                write_json(out, &removed)
            } else {
                writeln!(out, "removed collection `{name}`")?;
                Ok(())
            }
        }
    }
}
