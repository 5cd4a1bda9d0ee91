//! `bear workflow validate|run|list|status|cancel|pause|resume` and `bear agents list`: the
//! workflow engine over the SQLite run database, with the real generator, scrubber, retriever
//! and plugin tools wired in as each definition needs them.

use bear_app::control::{Client, RunAction, RunDone, RunRequest};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use bear_agents::{Engine, MemoryStore, Progress, Registry, SqliteStore, Workflow};
use bear_core::{Event, EventBus, RunId, RunStatus, StepStatus, WorkflowStateStore};
use serde_json::Value;

use crate::cli::{AgentsCommand, WorkflowCommand, WorkflowRunArgs};
use crate::error::{Error, Result};
use crate::write_json;
use bear_app::LoadedConfig;

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn read_definition(path: &Path) -> Result<Workflow> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::from(bear_agents::Error::Parse {
            path: path.display().to_string(),
            message: format!("cannot read the file: {}", e.kind()),
        })
    })?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    Ok(if is_json {
        Workflow::from_json(&text)?
    } else {
        Workflow::parse(&text)?
    })
}

struct Wiring {
    engine: Engine,
}

/// The run database of `[workflows]`.
fn open_store(loaded: &LoadedConfig, rt: &tokio::runtime::Runtime) -> Result<Arc<SqliteStore>> {
    let wf = &loaded.config.workflows;
    Ok(Arc::new(rt.block_on(SqliteStore::open(
        &wf.database_path(&loaded.dirs),
        wf.fsync,
    ))?))
}

/// Builds the engine over `store`; backends are loaded only when `workflow` needs them. File
/// steps are confined to `workflows.files_root`, or else to the current directory.
fn wire(
    loaded: &LoadedConfig,
    store: Arc<dyn WorkflowStateStore>,
    workflow: Option<&Workflow>,
    bus: EventBus,
) -> Result<Wiring> {
    let needs = workflow.map(Workflow::needs).unwrap_or_default();
    let mut backends = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(crate::app(loaded)?.workflow_backends(&needs, None))?;
    if backends.files_root.is_none() {
        backends.files_root = Some(std::env::current_dir()?);
    }
    Ok(Wiring {
        engine: bear_app::workflows::engine(loaded, store, backends, bus),
    })
}

fn run_id(s: &str) -> Result<RunId> {
    Ok(RunId::new(s)?)
}

/// Runs `bear workflow ...`.
pub(crate) fn run(
    loaded: &LoadedConfig,
    cmd: WorkflowCommand,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let rt = runtime()?;
    let result = command(loaded, &rt, cmd, json, out);
    // A step stuck in blocking code (cut off by its timeout) must not keep the process alive.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

fn command(
    loaded: &LoadedConfig,
    rt: &tokio::runtime::Runtime,
    cmd: WorkflowCommand,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    match cmd {
        WorkflowCommand::Validate { file } => {
            let workflow = read_definition(&file)?;
            // Validation touches no database.
            let w = wire(
                loaded,
                Arc::new(MemoryStore::new()),
                None,
                EventBus::default(),
            )?;
            // Validation assumes every backend is present: it checks the definition, not the
            // machine; tools are checked against the plugin directories.
            let mut catalog = w.engine.catalog();
            catalog.has_generator = true;
            catalog.has_retriever = true;
            catalog.has_scrubber = true;
            catalog.tools = bear_app::workflows::tool_names(loaded);
            let plan = workflow.validate(&catalog)?;
            if json {
                write_json(
                    out,
                    &serde_json::json!({"valid": true, "name": workflow.name, "steps": plan.steps.len()}),
                )?;
            } else {
                writeln!(
                    out,
                    "{}: valid, {} step(s)",
                    workflow.name,
                    plan.steps.len()
                )?;
            }
            Ok(())
        }
        WorkflowCommand::Run(args) => run_workflow(loaded, rt, args, json, out),
        WorkflowCommand::List { status } => {
            let w = wire(loaded, open_store(loaded, rt)?, None, EventBus::default())?;
            let query = bear_app::workflows::RunsQuery { status };
            let runs = rt.block_on(bear_app::workflows::list(
                &w.engine,
                &bear_app::Viewer::Local,
                &query,
            ))?;
            if json {
                return write_json(out, &runs);
            }
            if runs.is_empty() {
                writeln!(
                    out,
                    "no workflow runs yet; start one with `bear workflow run FILE`"
                )?;
            }
            for r in runs {
                writeln!(
                    out,
                    "{}  {:<10} {:>3}/{:<3} {}",
                    r.id,
                    label(r.status, r.interrupted),
                    r.progress.completed,
                    r.progress.total,
                    r.name
                )?;
            }
            Ok(())
        }
        WorkflowCommand::Status { id } => {
            let w = wire(loaded, open_store(loaded, rt)?, None, EventBus::default())?;
            let p = rt.block_on(w.engine.progress(&run_id(&id)?))?;
            if json {
                write_json(out, &bear_app::workflows::WorkflowStatus::of(p))
            } else {
                print_progress(out, &p)
            }
        }
        WorkflowCommand::Cancel { id } => {
            if let Some(d) = through_server(loaded, &id, RunAction::Cancel)? {
                return done(out, json, &d.id, &d.result);
            }
            let w = wire(loaded, open_store(loaded, rt)?, None, EventBus::default())?;
            rt.block_on(w.engine.cancel(&run_id(&id)?))?;
            done(out, json, &id, "cancel requested")
        }
        WorkflowCommand::Pause { id } => {
            if let Some(d) = through_server(loaded, &id, RunAction::Pause)? {
                return done(out, json, &d.id, &d.result);
            }
            let w = wire(loaded, open_store(loaded, rt)?, None, EventBus::default())?;
            rt.block_on(w.engine.pause(&run_id(&id)?))?;
            done(out, json, &id, "pause requested")
        }
        WorkflowCommand::Recover { watch } => {
            let store = open_store(loaded, rt)?;
            let probe = wire(loaded, store.clone(), None, EventBus::default())?;
            let interrupted: Vec<Progress> = rt
                .block_on(probe.engine.list(None))?
                .into_iter()
                .filter(|p| p.interrupted)
                .collect();
            if interrupted.is_empty() {
                return done(out, json, "-", "no interrupted runs");
            }
            let mut failed = 0;
            for p in interrupted {
                eprintln!("recovering run {} ({})", p.id, p.name);
                if let Err(e) = resume(loaded, rt, &store, &p.id, watch, json, out) {
                    eprintln!("run {}: {e}", p.id);
                    failed += 1;
                }
            }
            if failed > 0 {
                return Err(Error::RunEnded {
                    run: format!("{failed} recovered run(s)"),
                    status: "did not complete",
                });
            }
            Ok(())
        }
        WorkflowCommand::Resume { id, watch } => {
            if let Some(d) = through_server(loaded, &id, RunAction::Resume)? {
                return done(out, json, &d.id, &d.result);
            }
            let id = run_id(&id)?;
            resume(loaded, rt, &open_store(loaded, rt)?, &id, watch, json, out)
        }
    }
}

/// Sends a run request to the running bear-server, whose engine acts at once on a run it
/// runs and passes the request on to the process that runs it otherwise. `None` when no
/// server is running: this process acts on the run itself.
fn through_server(loaded: &LoadedConfig, id: &str, action: RunAction) -> Result<Option<RunDone>> {
    let run = run_id(id)?.to_string();
    let client = Client::new(&loaded.dirs.data_dir);
    Ok(client.workflow(
        RunRequest { run, action },
        std::time::Duration::from_secs(60),
    )?)
}

/// `bear workflow resume`: a paused run in another process is sent a request; an interrupted
/// one is continued here, with the backends its definition needs.
fn resume(
    loaded: &LoadedConfig,
    rt: &tokio::runtime::Runtime,
    store: &Arc<SqliteStore>,
    id: &RunId,
    watch: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    // The definition decides which backends to load for a takeover.
    let record = rt
        .block_on(store.load_run(id))?
        .ok_or_else(|| Error::from(bear_agents::Error::RunNotFound(id.clone())))?;
    let done_before = record
        .steps
        .values()
        .filter(|s| s.status == StepStatus::Completed)
        .count();
    let workflow: Workflow = serde_json::from_value(record.definition).map_err(|_| {
        bear_core::Error::backend(
            bear_core::ErrorKind::Storage,
            "the stored definition cannot be read",
        )
    })?;
    let bus = EventBus::new(4096);
    let w = wire(loaded, store.clone(), Some(&workflow), bus.clone())?;
    let events = bus.subscribe();
    match rt.block_on(w.engine.resume(id))? {
        None => done(out, json, id.as_str(), "resume requested"),
        Some(handle) => {
            eprintln!("resuming interrupted run {id}");
            let counts = (done_before, workflow.steps.len());
            finish(rt, &w.engine, handle, events, counts, watch, json, out)
        }
    }
}

fn done(out: &mut dyn Write, json: bool, id: &str, what: &str) -> Result<()> {
    if json {
        write_json(out, &serde_json::json!({"id": id, "result": what}))
    } else {
        writeln!(out, "{id}: {what}")?;
        Ok(())
    }
}

fn parse_inputs(pairs: &[String]) -> Result<BTreeMap<String, Value>> {
    let mut inputs = BTreeMap::new();
    for pair in pairs {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(Error::from(bear_agents::Error::Input {
                name: pair.chars().take(40).collect(),
                message: "write inputs as NAME=VALUE".into(),
            }));
        };
        // A value that is JSON (a number, an object) is taken as JSON, anything else as text.
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        inputs.insert(k.to_string(), value);
    }
    Ok(inputs)
}

fn run_workflow(
    loaded: &LoadedConfig,
    rt: &tokio::runtime::Runtime,
    args: WorkflowRunArgs,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let workflow = read_definition(&args.file)?;
    let inputs = parse_inputs(&args.input)?;
    let bus = EventBus::new(4096);
    let w = wire(
        loaded,
        open_store(loaded, rt)?,
        Some(&workflow),
        bus.clone(),
    )?;
    let stranded = rt
        .block_on(w.engine.list(Some(RunStatus::Running)))?
        .into_iter()
        .filter(|p| p.interrupted)
        .count();
    if stranded > 0 {
        eprintln!(
            "note: {stranded} earlier run(s) were interrupted; `bear workflow recover` continues them"
        );
    }
    // Subscribed before the start, so no transition of a fast run is missed.
    let events = bus.subscribe();
    let total = workflow.steps.len();
    let handle = rt.block_on(w.engine.start(workflow, inputs))?;
    eprintln!("run {} started", handle.id);
    finish(
        rt,
        &w.engine,
        handle,
        events,
        (0, total),
        args.watch,
        json,
        out,
    )
}

/// Waits for a run in this process, printing step transitions with `watch` (`counts`: steps
/// completed before, and in all), cancelling it on Ctrl-C, then prints the result.
#[allow(clippy::too_many_arguments)]
fn finish(
    rt: &tokio::runtime::Runtime,
    engine: &Engine,
    handle: bear_agents::RunHandle,
    mut events: tokio::sync::broadcast::Receiver<Event>,
    counts: (usize, usize),
    watch: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let id = handle.id.clone();
    let (mut completed, total) = counts;
    let status = rt.block_on(async {
        let wait = handle.wait();
        tokio::pin!(wait);
        let mut interrupted = false;
        loop {
            tokio::select! {
                status = &mut wait => return status,
                _ = tokio::signal::ctrl_c(), if !interrupted => {
                    interrupted = true;
                    eprintln!("cancelling run {id} (Ctrl-C again to leave it interrupted)");
                    let _ = engine.cancel(&id).await;
                }
                event = events.recv() => {
                    if let Ok(Event::StepChanged { run, step, status }) = event {
                        if run != id || !watch {
                            continue;
                        }
                        if status == StepStatus::Completed {
                            completed += 1;
                        }
                        eprintln!("[{completed}/{total}] {step} {}", status.as_str());
                    }
                }
            }
        }
    })?;
    let p = rt.block_on(engine.progress(&id))?;
    if json {
        write_json(out, &bear_app::workflows::WorkflowStatus::of(p))?;
    } else {
        print_progress(out, &p)?;
    }
    match status {
        RunStatus::Completed => Ok(()),
        other => Err(Error::RunEnded {
            run: id.to_string(),
            status: other.as_str(),
        }),
    }
}

fn status_label(p: &Progress) -> &'static str {
    label(p.status, p.interrupted)
}

fn label(status: RunStatus, interrupted: bool) -> &'static str {
    if interrupted {
        "interrupted"
    } else {
        status.as_str()
    }
}

fn print_progress(out: &mut dyn Write, p: &Progress) -> Result<()> {
    writeln!(
        out,
        "run {} ({}): {}, {}/{} steps completed, {:.1} s",
        p.id,
        p.name,
        status_label(p),
        p.completed,
        p.total,
        p.execution_time
    )?;
    if p.interrupted {
        writeln!(
            out,
            "  its process stopped; continue it with `bear workflow resume {}`",
            p.id
        )?;
    }
    for s in &p.steps {
        let time = s
            .duration_ms
            .map(|ms| format!("{:.2} s", ms as f64 / 1000.0))
            .unwrap_or_default();
        let agent = s.agent.as_ref().map(|a| a.as_str()).unwrap_or("-");
        writeln!(
            out,
            "  {:<24} {:<16} {:<10} {:>2} attempt(s) {:>9}  {agent}",
            s.id.as_str(),
            s.kind,
            s.status.as_str(),
            s.attempts,
            time
        )?;
        if let Some(e) = &s.error {
            writeln!(out, "      {e}")?;
        }
        if let Some(o) = &s.output {
            let text = match o.get("text").and_then(Value::as_str) {
                Some(t) => t.to_string(),
                None => match o {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            };
            let short: String = text.chars().take(300).collect();
            let more = if text.chars().count() > 300 {
                " …"
            } else {
                ""
            };
            for line in short.lines() {
                writeln!(out, "      | {line}")?;
            }
            if !more.is_empty() {
                writeln!(out, "      |{more}")?;
            }
        }
    }
    Ok(())
}

/// Runs `bear agents ...`.
pub(crate) fn agents(cmd: AgentsCommand, json: bool, out: &mut dyn Write) -> Result<()> {
    match cmd {
        AgentsCommand::List => {
            let registry = Registry::with_default_agents();
            let agents = bear_app::agents::list(&registry, &Default::default());
            if json {
                return write_json(out, &agents);
            }
            for a in agents {
                let caps: Vec<&str> = a.capabilities.iter().map(String::as_str).collect();
                writeln!(
                    out,
                    "{:<18} {:<12} {:<7} capacity {}  {}",
                    a.id,
                    a.kind,
                    a.status,
                    a.max_concurrent,
                    if caps.is_empty() {
                        "(observes only)".to_string()
                    } else {
                        caps.join(", ")
                    }
                )?;
            }
            Ok(())
        }
    }
}
