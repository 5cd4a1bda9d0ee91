//! `bear ingest`, `bear search`, `bear ask`, `bear docs` and `bear collections`: the RAG
//! commands, wiring bear-rag to the real embedder, generator and scrubber.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bear_core::{CancellationToken, PiiPolicy, SamplingParams};
use bear_rag::{
    Collection, Filter, IngestOptions, Pipeline, Progress, RagRetriever, SearchMode, Store,
};

use crate::cli::{
    AskArgs, CollectionsCommand, DocsCommand, FilterArgs, IngestArgs, ModeChoice, PolicyChoice,
    SearchArgs,
};
use crate::config::LoadedConfig;
use crate::error::{Error, Result};
use crate::security::ScrubSetup;
use crate::write_json;

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

/// `YYYY-MM-DD` to Unix seconds at the start (or end) of that day, UTC.
fn day(s: &str, flag: &str, end: bool) -> Result<i64> {
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        Error::Rag(bear_rag::Error::InvalidRequest(format!(
            "{flag} expects a date as YYYY-MM-DD"
        )))
    })?;
    let t = if end {
        d.and_hms_opt(23, 59, 59)
    } else {
        d.and_hms_opt(0, 0, 0)
    };
    Ok(t.map_or(0, |t| t.and_utc().timestamp()))
}

fn filter(args: &FilterArgs) -> Result<Filter> {
    Ok(Filter {
        document: args.document.clone(),
        modified_after: args
            .after
            .as_deref()
            .map(|s| day(s, "--after", false))
            .transpose()?,
        modified_before: args
            .before
            .as_deref()
            .map(|s| day(s, "--before", true))
            .transpose()?,
    })
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
    let embedder = crate::models::load_embedder(loaded, None)?;
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

/// Opens the collection and the scrubber for reading commands.
fn open_for_reading(
    loaded: &LoadedConfig,
    rt: &tokio::runtime::Runtime,
    name: Option<&str>,
) -> Result<(Collection, ScrubSetup)> {
    let name = collection_name(loaded, name);
    let collection = rt.block_on(store(loaded).open(&name))?;
    let setup = ScrubSetup::new(loaded, collection.meta().pii_policy)?;
    Ok((collection, setup))
}

/// Runs `bear search`.
pub(crate) fn search(
    loaded: &LoadedConfig,
    args: SearchArgs,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let rt = runtime()?;
    let (collection, setup) = open_for_reading(loaded, &rt, args.filter.collection.as_deref())?;
    let embedder = crate::models::load_embedder(loaded, Some(&collection.meta().embedder))?;
    let scrubber: Arc<dyn bear_core::PiiScrubber> = setup.scrubber.clone();
    let retriever = RagRetriever::new(store(loaded), embedder, scrubber.clone());
    let mode = match args.mode {
        ModeChoice::Vector => SearchMode::Vector,
        ModeChoice::Exact => SearchMode::Exact,
        ModeChoice::Fulltext => SearchMode::FullText,
        ModeChoice::Hybrid => SearchMode::Hybrid,
    };
    let filter = filter(&args.filter)?;
    let mut hits =
        rt.block_on(retriever.search(&collection, &args.query, mode, args.k, &filter))?;
    for h in &mut hits {
        h.text = scrubber.restore(&h.text)?;
    }
    if json {
        return write_json(out, &hits);
    }
    if hits.is_empty() {
        writeln!(out, "no results")?;
    }
    for (i, h) in hits.iter().enumerate() {
        writeln!(
            out,
            "[{}] {:.4}  {}  (document {})",
            i + 1,
            h.score,
            bear_rag::answer::citation(h),
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
    let (collection, setup) = open_for_reading(loaded, &rt, args.filter.collection.as_deref())?;
    let embedder = crate::models::load_embedder(loaded, Some(&collection.meta().embedder))?;
    let generator = crate::models::load_generator(loaded, args.model.as_deref())?;
    let mut params = crate::models::params(&args.sampling);
    if args.sampling.temperature.is_none() {
        params.temperature = 0.0;
    }
    if args.sampling.max_tokens.is_none() {
        params.max_tokens = SamplingParams::default().max_tokens;
    }
    let options = bear_rag::AskOptions {
        model: generator.id().clone(),
        params,
        k: args.k.unwrap_or(loaded.config.rag.top_k),
        context_tokens: loaded.config.models.context_length as usize,
        min_similarity: loaded.config.rag.min_similarity,
        filter: filter(&args.filter)?,
    };
    // The answer is computed on the runtime; its pieces come back over a channel and are
    // written here, on the thread that holds stdout.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let sink = move |piece: &str| {
        // A closed channel means the caller went away; generation finishes regardless.
        let _ = tx.send(piece.to_string());
        true
    };
    let scrubber: Arc<dyn bear_core::PiiScrubber> = setup.scrubber.clone();
    let question = args.question.clone();
    let task = rt.spawn(async move {
        bear_rag::ask(
            &collection,
            embedder.as_ref(),
            scrubber,
            &generator,
            &question,
            &options,
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
        Error::Core(bear_core::Error::backend(
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
        for (i, h) in answer.sources.iter().enumerate() {
            let mark = if answer.cited.contains(&(i + 1)) {
                "*"
            } else {
                " "
            };
            writeln!(out, "{mark}[{}] {}", i + 1, bear_rag::answer::citation(h))?;
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
    match cmd {
        DocsCommand::List { collection } => {
            let name = collection_name(loaded, collection.as_deref());
            let c = rt.block_on(store(loaded).open(&name))?;
            let docs = rt.block_on(c.documents())?;
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
                writeln!(out, "no documents in `{name}`")?;
            }
            Ok(())
        }
        DocsCommand::Rm {
            document,
            collection,
        } => {
            let name = collection_name(loaded, collection.as_deref());
            let c = rt.block_on(store(loaded).open(&name))?;
            let docs = rt.block_on(c.documents())?;
            let canonical = std::fs::canonicalize(Path::new(&document))
                .ok()
                .map(|p| p.display().to_string());
            let found = docs
                .iter()
                .find(|d| {
                    d.id == document || d.path == document || Some(&d.path) == canonical.as_ref()
                })
                .ok_or_else(|| bear_rag::Error::NoDocument {
                    collection: name.clone(),
                    what: document.clone(),
                })?;
            let setup = ScrubSetup::new(loaded, PiiPolicy::Redact)?;
            rt.block_on(c.delete_documents(std::slice::from_ref(&found.id)))?;
            rt.block_on(c.optimize(loaded.config.rag.ann_threshold))?;
            setup.audit("rag.docs.rm", "ok", 1, 0)?;
            if json {
                write_json(
                    out,
                    &serde_json::json!({ "removed": found.id, "path": found.path }),
                )
            } else {
                writeln!(out, "removed {} ({})", found.path, found.id)?;
                Ok(())
            }
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
    let store = store(loaded);
    match cmd {
        CollectionsCommand::List => {
            let list = rt.block_on(store.list())?;
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
                    c.meta.name,
                    c.documents,
                    c.chunks,
                    serde_json::to_value(c.meta.pii_policy)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    c.meta.embedder
                )?;
            }
            Ok(())
        }
        CollectionsCommand::Create { name, pii_policy } => {
            bear_rag::store::check_name(&name)?;
            let embedder = crate::models::load_embedder(loaded, None)?;
            let setup = ScrubSetup::new(loaded, PiiPolicy::Redact)?;
            let c = rt.block_on(store.create(
                &name,
                policy(pii_policy, loaded),
                embedder.model().as_str(),
                embedder.dimension(),
            ))?;
            setup.audit("rag.collections.create", "ok", 0, 0)?;
            if json {
                write_json(out, c.meta())
            } else {
                writeln!(out, "created collection `{name}`")?;
                Ok(())
            }
        }
        CollectionsCommand::Rm { name } => {
            let setup = ScrubSetup::new(loaded, PiiPolicy::Redact)?;
            store.remove(&name)?;
            setup.audit("rag.collections.rm", "ok", 0, 0)?;
            if json {
                write_json(out, &serde_json::json!({ "removed": name }))
            } else {
                writeln!(out, "removed collection `{name}`")?;
                Ok(())
            }
        }
    }
}
