//! `bear review DOC --task ...`: one document reviewed by bear-app, whole or section by
//! section on a workflow engine in this process, with each section's progress on stderr and
//! the checked result on stdout. `bear grid`: a matter's documents against questions or
//! schema fields, as a listing, JSON or CSV.

use std::io::Write;

use bear_app::Viewer;
use bear_app::review::{ReviewMode, ReviewRequest, ReviewResponse, ReviewTask};
use bear_app::watch::{RunEvent, RunWatch};
use bear_core::{EventBus, RunStatus, StepStatus};

use crate::cli::{GridArgs, ReviewArgs, TaskChoice};
use crate::error::{Error, Result};
use crate::write_json;
use bear_app::LoadedConfig;

fn task(t: TaskChoice) -> ReviewTask {
    match t {
        TaskChoice::Summary => ReviewTask::Summary,
        TaskChoice::Deadlines => ReviewTask::Deadlines,
        TaskChoice::Parties => ReviewTask::Parties,
        TaskChoice::Obligations => ReviewTask::Obligations,
        TaskChoice::Custom => ReviewTask::Custom,
    }
}

/// Runs `bear review`.
pub(crate) fn run(
    loaded: &LoadedConfig,
    args: ReviewArgs,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let rt = crate::runtime()?;
    let app = crate::app(loaded)?;
    let result = rt.block_on(async {
        let engine = app.review_engine(EventBus::new(4096)).await?;
        let first = match args.run {
            Some(id) => app.review_result(&Viewer::Local, &engine, &id).await?,
            None => {
                let request = ReviewRequest {
                    document: args.document.unwrap_or_default(),
                    collection: args.collection,
                    task: task(args.task),
                    instruction: args.instruction,
                    model: args.model,
                    max_tokens: args.max_tokens,
                    strict: Some(!args.no_strict),
                    section_tokens: args.section_tokens,
                    wait: Some(false),
                };
                app.review(&Viewer::Local, request, &engine).await?
            }
        };
        match (&first.run_id, first.status) {
            (Some(id), RunStatus::Running | RunStatus::Pending) => {
                eprintln!(
                    "reviewing in {} sections as workflow run {id} (`bear workflow cancel {id}` \
                     stops it; `bear review --run {id}` shows it later)",
                    first.sections
                );
                follow(&engine, id).await?;
                Ok(app.review_result(&Viewer::Local, &engine, id).await?)
            }
            _ => Ok::<_, Error>(first),
        }
    });
    // A step stuck in blocking code must not keep the process alive.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    let review = result?;
    if json {
        return write_json(out, &review);
    }
    render(out, &review)
}

/// Reports each section as it completes until the run ends.
async fn follow(engine: &bear_agents::Engine, id: &str) -> Result<()> {
    let mut watch = RunWatch::open(engine, &Viewer::Local, id).await?;
    let (mut done, mut total) = (0, 0);
    while let Some(event) = watch.next().await {
        match event {
            RunEvent::Snapshot { run } => {
                (done, total) = (run.progress.completed, run.progress.total)
            }
            RunEvent::Step {
                step,
                status: StepStatus::Completed,
            } => {
                done += 1;
                eprintln!("  {step} done ({done} of {total} steps)");
            }
            RunEvent::Step {
                step,
                status: StepStatus::Failed,
            } => {
                eprintln!("  {step} failed");
            }
            _ => {}
        }
    }
    Ok(())
}

fn render(out: &mut dyn Write, r: &ReviewResponse) -> Result<()> {
    if r.status != RunStatus::Completed {
        let id = r.run_id.as_deref().unwrap_or("-");
        if let Some(e) = &r.error {
            eprintln!("{e}");
        }
        return Err(Error::RunEnded {
            run: id.to_string(),
            status: match r.status {
                RunStatus::Cancelled => "cancelled",
                RunStatus::Failed => "failed",
                _ => "not finished (resume it with `bear workflow resume`)",
            },
        });
    }
    let how = match r.mode {
        ReviewMode::Whole => "read whole".to_string(),
        ReviewMode::MapReduce => format!("read in {} sections", r.sections),
    };
    writeln!(out, "{}  ({how})\n", r.path)?;
    writeln!(out, "{}", r.text.trim_end())?;
    crate::rag::write_checks(
        out,
        &r.text,
        &r.citations,
        &r.unsupported_sentences,
        r.removed_sentences,
    )
}

/// Runs `bear grid`.
pub(crate) fn grid(
    loaded: &LoadedConfig,
    args: GridArgs,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let rt = crate::runtime()?;
    let app = crate::app(loaded)?;
    let request = bear_app::grid::GridRequest {
        collection: args.collection,
        questions: args.questions,
        schema: args
            .schema
            .as_deref()
            .map(crate::models::read_schema)
            .transpose()?,
        documents: args.documents,
        model: args.model,
        max_tokens: args.max_tokens,
    };
    let progress = |done: usize, all: usize| eprintln!("  {done} of {all} documents");
    let grid = rt.block_on(app.grid(&Viewer::Local, request, &progress))?;
    if let Some(path) = &args.csv {
        let to = (path.as_os_str() != "-").then_some(path.as_path());
        let mut sink = crate::security::Sink::new(to)?;
        sink.writer()
            .write_all(grid.to_csv()?.as_bytes())
            .map_err(Error::Output)?;
        sink.commit()?;
        if to.is_none() {
            return Ok(());
        }
    }
    if json {
        return write_json(out, &grid);
    }
    for row in &grid.rows {
        writeln!(out, "{}  ({})", row.path, row.document_id)?;
        if let Some(e) = &row.error {
            writeln!(out, "  error: {e}")?;
        }
        for (c, cell) in grid.columns.iter().zip(&row.cells) {
            let value = match &cell.value {
                serde_json::Value::String(s) => s.split_whitespace().collect::<Vec<_>>().join(" "),
                v => v.to_string(),
            };
            match cell.verified {
                true => {
                    let page = cell.page.map(|p| format!("  (p. {p})")).unwrap_or_default();
                    writeln!(out, "  ✓ {}: {value}{page}", c.label)?;
                }
                false => {
                    let why = cell.reason.as_deref().unwrap_or("not found");
                    writeln!(out, "  ✗ {}: {why}", c.label)?;
                }
            }
        }
    }
    Ok(())
}
