//! `bear workflow validate|run|list|status|cancel|pause|resume` and `bear agents list`: the
//! workflow engine over the SQLite run database, with the real generator, scrubber, retriever
//! and plugin tools wired in as each definition needs them.

use bear_app::control::{Client, RunAction, RunDone, RunRequest};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use bear_agents::{Engine, Progress, SqlStore, Workflow};
use bear_app::runs::read_definition;
use bear_core::{Event, EventBus, RunId, RunStatus, StepStatus};
use serde_json::Value;

use crate::cli::{AgentsCommand, WorkflowCommand, WorkflowRunArgs};
use crate::error::{Error, Result};
use crate::write_json;
use bear_app::LoadedConfig;

/// The run database and an engine in this process over it, with the backends `workflow`
/// needs.
fn local(
    app: &bear_app::App,
    rt: &tokio::runtime::Runtime,
    workflow: Option<&Workflow>,
    bus: EventBus,
) -> Result<(Arc<SqlStore>, Engine)> {
    rt.block_on(async {
        let runs = app.open_runs().await?;
        let engine = app.local_engine(runs.clone(), workflow, bus).await?;
        Ok((runs, engine))
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
    let rt = crate::runtime()?;
    let app = crate::app(loaded)?;
    let result = command(&app, &rt, cmd, json, out);
    // A step stuck in blocking code (cut off by its timeout) must not keep the process alive.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

fn command(
    app: &bear_app::App,
    rt: &tokio::runtime::Runtime,
    cmd: WorkflowCommand,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    match cmd {
        WorkflowCommand::Validate { file } => {
            let workflow = read_definition(&file)?;
            let v = app.validate_workflow(&workflow)?;
            if json {
                return write_json(out, &v);
            }
            writeln!(out, "{}: valid, {} step(s)", v.name, v.steps)?;
            Ok(())
        }
        WorkflowCommand::Run(args) => run_workflow(app, rt, args, json, out),
        WorkflowCommand::List { status } => {
            let (_, engine) = local(app, rt, None, EventBus::default())?;
            let query = bear_app::workflows::RunsQuery { status };
            let runs = rt.block_on(bear_app::workflows::list(
                &engine,
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
            let (_, engine) = local(app, rt, None, EventBus::default())?;
            let p = rt.block_on(engine.progress(&run_id(&id)?))?;
            if json {
                write_json(out, &bear_app::workflows::WorkflowStatus::of(p))
            } else {
                print_progress(out, &p)
            }
        }
        WorkflowCommand::Cancel { id } => {
            if let Some(d) = through_server(app.config(), &id, RunAction::Cancel)? {
                return done(out, json, &d.id, &d.result);
            }
            let (_, engine) = local(app, rt, None, EventBus::default())?;
            rt.block_on(engine.cancel(&run_id(&id)?))?;
            done(out, json, &id, "cancel requested")
        }
        WorkflowCommand::Pause { id } => {
            if let Some(d) = through_server(app.config(), &id, RunAction::Pause)? {
                return done(out, json, &d.id, &d.result);
            }
            let (_, engine) = local(app, rt, None, EventBus::default())?;
            rt.block_on(engine.pause(&run_id(&id)?))?;
            done(out, json, &id, "pause requested")
        }
        WorkflowCommand::Recover { watch } => {
            let (store, probe) = local(app, rt, None, EventBus::default())?;
            let interrupted = rt.block_on(app.interrupted_runs(&probe))?;
            if interrupted.is_empty() {
                return done(out, json, "-", "no interrupted runs");
            }
            let mut failed = 0;
            for p in interrupted {
                eprintln!("recovering run {} ({})", p.id, p.name);
                if let Err(e) = resume(app, rt, &store, &p.id, watch, json, out) {
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
            if let Some(d) = through_server(app.config(), &id, RunAction::Resume)? {
                return done(out, json, &d.id, &d.result);
            }
            let id = run_id(&id)?;
            let (store, _) = local(app, rt, None, EventBus::default())?;
            resume(app, rt, &store, &id, watch, json, out)
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
    app: &bear_app::App,
    rt: &tokio::runtime::Runtime,
    store: &Arc<SqlStore>,
    id: &RunId,
    watch: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let stored = rt.block_on(bear_app::runs::stored_run(store, id))?;
    let bus = EventBus::new(4096);
    let engine =
        rt.block_on(app.local_engine(store.clone(), Some(&stored.workflow), bus.clone()))?;
    let events = bus.subscribe();
    match rt.block_on(engine.resume(id))? {
        None => done(out, json, id.as_str(), "resume requested"),
        Some(handle) => {
            eprintln!("resuming interrupted run {id}");
            let counts = (stored.completed, stored.workflow.steps.len());
            finish(rt, &engine, handle, events, counts, watch, json, out)
        }
    }
}

fn done(out: &mut dyn Write, json: bool, id: &str, what: &str) -> Result<()> {
    if json {
        let d = RunDone {
            id: id.to_string(),
            result: what.to_string(),
        };
        write_json(out, &d)
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
    app: &bear_app::App,
    rt: &tokio::runtime::Runtime,
    args: WorkflowRunArgs,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let workflow = read_definition(&args.file)?;
    let inputs = parse_inputs(&args.input)?;
    let bus = EventBus::new(4096);
    let (_, engine) = local(app, rt, Some(&workflow), bus.clone())?;
    let stranded = rt
        .block_on(engine.list(Some(RunStatus::Running)))?
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
    let handle = rt.block_on(engine.start(workflow, inputs))?;
    eprintln!("run {} started", handle.id);
    finish(
        rt,
        &engine,
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
    let mut steps = StepLines {
        run: id.clone(),
        completed: counts.0,
        total: counts.1,
        watch,
    };
    let status = rt.block_on(async {
        let wait = handle.wait();
        tokio::pin!(wait);
        let mut interrupted = false;
        loop {
            tokio::select! {
                status = &mut wait => {
                    // The run's last step changes may still be queued: print them first.
                    while let Ok(event) = events.try_recv() {
                        steps.print(&event);
                    }
                    return status;
                }
                _ = tokio::signal::ctrl_c(), if !interrupted => {
                    interrupted = true;
                    eprintln!("cancelling run {id} (Ctrl-C again to leave it interrupted)");
                    let _ = engine.cancel(&id).await;
                }
                event = events.recv() => {
                    if let Ok(event) = event {
                        steps.print(&event);
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
            let registry = bear_app::agents::default_registry();
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

/// `--watch`'s progress lines on stderr: `[done/all] step status`.
struct StepLines {
    run: bear_core::RunId,
    completed: usize,
    total: usize,
    watch: bool,
}

impl StepLines {
    fn print(&mut self, event: &Event) {
        let Event::StepChanged { run, step, status } = event else {
            return;
        };
        if *run != self.run || !self.watch {
            return;
        }
        if *status == StepStatus::Completed {
            self.completed += 1;
        }
        eprintln!(
            "[{}/{}] {step} {}",
            self.completed,
            self.total,
            status.as_str()
        );
    }
}
