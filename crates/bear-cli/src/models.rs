//! `bear models ...`, `bear generate`, `bear chat` and `bear embed`.

use std::io::{BufRead, Write};
use std::time::Duration;

use bear_app::generate::Turn;
use bear_app::models::{ManageConfig, ManageRequest, ModelAction, ModelsQuery};
use bear_core::{CancellationToken, ChatRole, ModelId};
use bear_hw::human;
use bear_models::{ModelKind, ModelMeta};

use crate::cli::{ChatArgs, EmbedArgs, GenerateArgs, ModelsCommand, PinArgs};
use crate::error::{Error, Result};
use crate::security;
use crate::write_json;
use bear_app::LoadedConfig;

pub(crate) fn run(
    loaded: &LoadedConfig,
    cmd: ModelsCommand,
    json: bool,
    out: &mut impl Write,
) -> Result<()> {
    match cmd {
        ModelsCommand::Fit(args) => {
            let fit = bear_app::hw::fit(loaded, &args.path, args.ctx)?;
            let report = &fit.fit;
            if json {
                write_json(out, &fit)?;
            } else {
                writeln!(out, "{}: {}", args.path.display(), report.reason)?;
                writeln!(out, "  model file      {}", human(report.model_bytes))?;
                writeln!(
                    out,
                    "  KV cache        {} at {} tokens ({})",
                    human(report.kv_cache_bytes),
                    report.context_length,
                    report.kv_estimate
                )?;
                writeln!(out, "  overhead        {}", human(report.overhead_bytes))?;
                writeln!(out, "  required        {}", human(report.required_bytes))?;
                writeln!(out, "  available       {}", human(report.available_bytes))?;
                writeln!(
                    out,
                    "  kept free       {}",
                    human(report.safety_margin_bytes)
                )?;
                writeln!(out, "  threads         {}", report.threads)?;
                writeln!(
                    out,
                    "  mlock           {}: {}",
                    if report.mlock.recommended {
                        "yes"
                    } else {
                        "no"
                    },
                    report.mlock.reason
                )?;
                writeln!(out, "  GPU offload     {}", crate::hw::offload(&report.gpu))?;
            }
            Ok(())
        }
        ModelsCommand::Load(args) => manage(loaded, &args, ModelAction::Load, json, out),
        ModelsCommand::Unload(args) => manage(loaded, &args, ModelAction::Unload, json, out),
        ModelsCommand::List => list(loaded, json, out),
        ModelsCommand::Show { id } => {
            let m = crate::app(loaded)?.model_entry(&ModelId::new(&id)?)?;
            if json {
                write_json(out, &m)?;
            } else {
                writeln!(out, "id            {}", m.id)?;
                writeln!(out, "kind          {}", kind_name(m.kind))?;
                writeln!(out, "path          {}", m.path.display())?;
                writeln!(out, "size          {}", human(m.size_bytes))?;
                writeln!(out, "details       {}", describe(&m.meta))?;
                writeln!(
                    out,
                    "chat template {}",
                    if m.meta.has_chat_template {
                        "yes"
                    } else {
                        "no"
                    }
                )?;
            }
            Ok(())
        }
    }
}

/// `bear models list`: the running bear-server's view (what it has loaded) when one runs,
/// else this machine's models, all available. `--json` prints what `GET /api/v1/models` does.
fn list(loaded: &LoadedConfig, json: bool, out: &mut impl Write) -> Result<()> {
    let query = ModelsQuery::default();
    let local = || {
        crate::app(loaded)
            .map_err(security::into_app)?
            .model_list(&query)
    };
    let listing = bear_app::models::listing(loaded, &query, ANSWER_WITHIN, local)?;
    for (path, reason) in &listing.skipped {
        eprintln!("skipped {}: {reason}", path.display());
    }
    let (rows, server) = (listing.rows, listing.from_server);
    if json {
        return write_json(out, &rows);
    }
    if rows.is_empty() {
        writeln!(
            out,
            "no models in {}; run `cargo xtask models` or set BEAR_MODELS_DIR",
            loaded.dirs.models_dir.display()
        )?;
    }
    for m in &rows {
        let pinned = if m.pinned { ", pinned" } else { "" };
        writeln!(
            out,
            "{:<32} {:<12} {:>10}  {:<18} {}",
            m.id,
            m.kind,
            human(m.size),
            format!("{}{pinned}", m.status),
            describe(&m.meta)
        )?;
        if let Some(p) = &m.embedder_path {
            let note = p
                .note
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default();
            writeln!(out, "{:<32} embeds with {}{note}", "", p.runtime)?;
        }
    }
    if server {
        writeln!(out, "(loaded: in the running bear-server)")?;
    }
    Ok(())
}

/// How long `bear` waits for bear-server to answer a request that loads nothing.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// `bear models load|unload`: asks the running bear-server through the control socket and
/// returns when it has done it.
fn manage(
    loaded: &LoadedConfig,
    args: &PinArgs,
    action: ModelAction,
    json: bool,
    out: &mut impl Write,
) -> Result<()> {
    let id = ModelId::new(&args.id)?;
    let request = ManageRequest {
        action,
        model_id: id.to_string(),
        config: ManageConfig {
            pin: action == ModelAction::Load,
        },
    };
    let verb = if action == ModelAction::Load {
        "loading"
    } else {
        "unloading"
    };
    let wait = Duration::from_secs(args.wait);
    let result = with_progress(format!("bear-server is {verb} {id}"), || {
        bear_app::models::manage_in_server(loaded, request, wait)
    })?;
    if json {
        return write_json(out, &result);
    }
    match action {
        ModelAction::Load => writeln!(
            out,
            "loaded {id} in bear-server; it stays loaded until `bear models unload {id}`"
        )?,
        _ => writeln!(out, "unloaded {id} from bear-server")?,
    }
    Ok(())
}

fn kind_name(k: ModelKind) -> &'static str {
    match k {
        ModelKind::Gguf => "gguf",
        ModelKind::Onnx => "onnx",
        ModelKind::Safetensors => "safetensors",
    }
}

fn describe(meta: &ModelMeta) -> String {
    let mut parts = Vec::new();
    if let Some(a) = &meta.architecture {
        parts.push(a.clone());
    }
    if let Some(p) = meta.parameter_count {
        parts.push(format!("{:.0}M params", p as f64 / 1e6));
    }
    if let Some(q) = &meta.quantization {
        parts.push(q.clone());
    }
    if let Some(c) = meta.context_length {
        parts.push(format!("ctx {c}"));
    }
    parts.join(", ")
}

/// Shows a spinner on stderr if `f` takes more than a second, as model loads can.
pub(crate) fn with_progress<T>(what: String, f: impl FnOnce() -> T) -> T {
    use std::io::IsTerminal;
    use std::sync::mpsc::{RecvTimeoutError, channel};
    let (done, finished) = channel::<()>();
    let spinner = std::io::stderr().is_terminal().then(|| {
        std::thread::spawn(move || {
            // Quiet for the first second: most loads finish sooner.
            if finished.recv_timeout(Duration::from_secs(1)) != Err(RecvTimeoutError::Timeout) {
                return;
            }
            let bar = indicatif::ProgressBar::new_spinner().with_message(what);
            bar.enable_steady_tick(Duration::from_millis(100));
            let _ = finished.recv();
            bar.finish_and_clear();
        })
    });
    let result = f();
    drop(done);
    if let Some(s) = spinner {
        let _ = s.join();
    }
    result
}

pub(crate) fn generate(
    loaded: &LoadedConfig,
    args: GenerateArgs,
    json: bool,
    out: &mut impl Write,
) -> Result<()> {
    let prompt = if args.prompt == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        s
    } else {
        args.prompt.clone()
    };
    let app = crate::app(loaded)?;
    let s = args.sampling;
    let request = bear_app::generate::GenerateRequest {
        prompt,
        model: args.model,
        max_tokens: s.max_tokens,
        temperature: s.temperature,
        top_p: s.top_p,
        top_k: s.top_k,
        repeat_penalty: s.repeat_penalty,
        seed: s.seed,
        stop_sequences: s.stop,
        raw: args.raw,
        json_schema: args.json_schema.as_deref().map(read_schema).transpose()?,
        stream: !json,
    };
    // Loaded first, under a spinner if it takes a while; the generation itself streams.
    let (model, _) = app.generation_request(&request)?;
    with_progress(format!("loading {}", model.model), || {
        app.models().generator(&model.model)
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    // A closed channel (stdout closed: `bear generate ... | head`) stops the generation.
    let sink = move |piece: &str| json || tx.send(piece.to_string()).is_ok();
    let task = rt.spawn(async move {
        app.generate(request, Box::new(sink), CancellationToken::new())
            .await
    });
    for piece in rx {
        if let Err(e) = out.write_all(piece.as_bytes()).and_then(|()| out.flush()) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e.into());
        }
    }
    let g = rt.block_on(task).map_err(|_| {
        Error::from(bear_core::Error::backend(
            bear_core::ErrorKind::Internal,
            "the generation task failed",
        ))
    })??;
    if json {
        /// `bear generate --json`: the response every front end gives, and this process's
        /// peak memory (for `cargo xtask bench models`).
        #[derive(serde::Serialize)]
        struct Printed {
            #[serde(flatten)]
            response: bear_app::generate::GenerateResponse,
            peak_rss_bytes: Option<u64>,
        }
        write_json(
            out,
            &Printed {
                response: g,
                peak_rss_bytes: peak_rss_bytes(),
            },
        )?;
    } else {
        writeln!(out)?;
        tracing::info!(
            tokens = g.completion_tokens,
            tps = g.tokens_per_second,
            "generation finished"
        );
    }
    Ok(())
}

pub(crate) fn chat(loaded: &LoadedConfig, args: ChatArgs, out: &mut impl Write) -> Result<()> {
    use std::io::IsTerminal;
    let app = crate::app(loaded)?;
    let s = args.sampling;
    let mut request = bear_app::generate::ChatRequest {
        model: args.model,
        messages: Vec::new(),
        sampling: bear_app::generate::Sampling {
            max_tokens: s.max_tokens,
            temperature: s.temperature,
            top_p: s.top_p,
            top_k: s.top_k,
            repeat_penalty: s.repeat_penalty,
            seed: s.seed,
            stop: s.stop,
            ..bear_app::generate::Sampling::default()
        },
        ..bear_app::generate::ChatRequest::default()
    };
    if let Some(system) = args.system {
        request.messages.push(Turn::new(ChatRole::System, system));
    }
    // Loaded before the first prompt, under a spinner if it takes a while.
    let model = app.generator_id(request.model.as_deref())?;
    with_progress(format!("loading {model}"), || {
        app.models().generator(&model)
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let interactive = std::io::stdin().is_terminal();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            write!(out, "> ")?;
            out.flush()?;
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if matches!(trimmed, "/exit" | "/quit") {
            break;
        }
        request.messages.push(Turn::new(ChatRole::User, line));
        let text = stream_reply(&rt, &app, request.clone(), out)?;
        writeln!(out)?;
        request.messages.push(Turn::new(ChatRole::Assistant, text));
    }
    Ok(())
}

/// Runs one chat turn on `rt`, writing its pieces to `out` as they come; the whole reply.
fn stream_reply(
    rt: &tokio::runtime::Runtime,
    app: &std::sync::Arc<bear_app::App>,
    request: bear_app::generate::ChatRequest,
    out: &mut impl Write,
) -> Result<String> {
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let sink = move |piece: &str| tx.send(piece.to_string()).is_ok();
    let app = app.clone();
    let task = rt.spawn(async move {
        app.chat(request, Box::new(sink), CancellationToken::new())
            .await
    });
    for piece in rx {
        out.write_all(piece.as_bytes())?;
        out.flush()?;
    }
    let g = rt.block_on(task).map_err(|_| {
        Error::from(bear_core::Error::backend(
            bear_core::ErrorKind::Internal,
            "the generation task failed",
        ))
    })??;
    Ok(g.text)
}

pub(crate) fn embed(loaded: &LoadedConfig, args: EmbedArgs, out: &mut impl Write) -> Result<()> {
    let app = crate::app(loaded)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let request = bear_app::embed::EmbedRequest {
        model: args.model,
        texts: args.texts,
    };
    write_json(out, &rt.block_on(app.embed(&request))?)
}

/// This process's peak resident set (VmHWM), on Linux.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The JSON schema in file `path` (at most 64 KiB).
pub(crate) fn read_schema(path: &std::path::Path) -> Result<serde_json::Value> {
    let bad = |why: String| {
        Error::from(bear_app::Error::invalid(
            "json-schema",
            format!("{}: {why}", path.display()),
        ))
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if meta.len() > bear_core::MAX_JSON_SCHEMA_BYTES as u64 {
        return Err(bad("larger than 64 KiB".into()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))
}
