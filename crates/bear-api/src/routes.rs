//! The handlers: `/health`, and under `/api/v1`: `hw`, `pii/detect`, `pii/scrub`, `workflows`
//! (create and run, list, status, cancel) and `agents` (list, show).

use bear_app::agents::{self, AgentView, AgentsQuery, CreateAgent};
use bear_app::control::RunAction;
use bear_app::docs::Removed;
use bear_app::watch::{RunEvent, RunWatch};
use bear_app::workflows::{self, RunsQuery, WorkflowRow, WorkflowRun, WorkflowStatus};
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bear_agents::Workflow;
use bear_app::pii::{
    DetectRequest, DetectResponse, RestoreRequest, RestoreResponse, ScrubRequest, ScrubResponse,
};
use bear_security::access::Permission;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AppState;
use crate::error::ApiError;
use crate::gateway::Caller;

type Api<T> = Result<T, ApiError>;
type St = State<Arc<AppState>>;

/// The route table.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/health", get(health))
        .route("/api/v1/hw", get(hw))
        .route("/api/v1/pii/detect", post(pii_detect))
        .route("/api/v1/pii/scrub", post(pii_scrub))
        .route("/api/v1/pii/restore", post(pii_restore))
        .route(
            "/api/v1/workflows",
            post(create_workflow).get(list_workflows),
        )
        .route(
            "/api/v1/workflows/{id}",
            get(get_workflow).delete(cancel_workflow),
        )
        .route("/api/v1/workflows/{id}/events", get(watch_workflow))
        .route("/api/v1/workflows/{id}/pause", post(pause_workflow))
        .route("/api/v1/workflows/{id}/resume", post(resume_workflow))
        .route("/api/v1/agents", get(list_agents).post(create_agent))
        .route("/api/v1/agents/{id}", get(get_agent).delete(remove_agent))
        .fallback(crate::web::fallback)
}

/// `GET /health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// Always `ok`: the server answers.
    status: &'static str,
    /// BEAR's version.
    version: &'static str,
}

#[utoipa::path(get, path = "/health", tag = "system", responses((status = 200, description = "The server is up: status and version", body = Health)))]
pub(crate) async fn health() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[utoipa::path(get, path = "/api/v1/hw", tag = "system", responses((status = 200, description = "The machine report and recommendations, as `bear hw --json`", body = bear_app::hw::HwReport)))]
pub(crate) async fn hw(State(s): St, caller: Caller) -> Api<Json<Value>> {
    caller.require(Permission::Read)?;
    Ok(Json(s.hw.clone()))
}

/// A JSON body, with serde's errors turned into structured ones.
pub(crate) struct Body<T>(pub(crate) T);

impl<T, S> axum::extract::FromRequest<S> for Body<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let Json(v) = Json::<T>::from_request(req, state).await?;
        Ok(Self(v))
    }
}

#[utoipa::path(post, path = "/api/v1/pii/detect", tag = "pii", request_body = DetectRequest, responses((status = 200, description = "PII findings with positions, counts per entity and the risk level; values only when asked for", body = DetectResponse)))]
pub(crate) async fn pii_detect(
    State(s): St,
    caller: Caller,
    Body(b): Body<DetectRequest>,
) -> Api<Json<DetectResponse>> {
    caller.require(Permission::Write)?;
    Ok(Json(crate::models::app(&s)?.detect(&b)?))
}

#[utoipa::path(post, path = "/api/v1/pii/scrub", tag = "pii", request_body = ScrubRequest, responses((status = 200, description = "The scrubbed text (the replace policy unless another is asked for), counts per entity and the risk level", body = ScrubResponse)))]
pub(crate) async fn pii_scrub(
    State(s): St,
    caller: Caller,
    Body(b): Body<ScrubRequest>,
) -> Api<Json<ScrubResponse>> {
    caller.require(Permission::Write)?;
    Ok(Json(crate::models::app(&s)?.scrub(&b)?))
}

/// `POST /api/v1/pii/restore` (admin): the vault holds every matter's tokens, so restoring is
/// an administrator's act, and it is audited like every change.
#[utoipa::path(post, path = "/api/v1/pii/restore", tag = "pii", request_body = RestoreRequest, responses((status = 200, description = "The text with its vault tokens restored", body = RestoreResponse)))]
pub(crate) async fn pii_restore(
    State(s): St,
    caller: Caller,
    Body(b): Body<RestoreRequest>,
) -> Api<Json<RestoreResponse>> {
    caller.require(Permission::Admin)?;
    Ok(Json(crate::models::app(&s)?.restore(&b)?))
}

/// A run the caller may see; another key's run is a 404, as if it did not exist.
async fn owned_run(s: &AppState, caller: &Caller, id: &str) -> Api<bear_agents::Progress> {
    Ok(workflows::run_for(&s.engine, &caller.viewer(), id).await?)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct WaitQuery {
    /// Run to completion within the request and answer with the results (200); otherwise
    /// answer at once (202) and let the run go on in the background.
    #[serde(default)]
    wait: bool,
}

/// `POST /api/v1/workflows`: the seed's body (`name`, `description`, `steps`, plus BEAR's
/// `inputs` declarations and `on_failure`), and `input_values` for the run. Validation errors
/// come back all at once with their paths (422). With `?wait=true` the run completes within
/// the request (200); otherwise it continues in the background (202; poll `GET
/// /workflows/{id}`). A client that goes away while waiting leaves the run going.
#[utoipa::path(post, path = "/api/v1/workflows", tag = "workflows", request_body = Object, params(WaitQuery), responses((status = 200, description = "With wait: the run finished; its status, results and execution_time", body = WorkflowRun), (status = 202, description = "The run started and goes on in the background", body = WorkflowRun)))]
pub(crate) async fn create_workflow(
    State(s): St,
    caller: Caller,
    q: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
    Body(mut body): Body<serde_json::Map<String, Value>>,
) -> Api<(StatusCode, Json<WorkflowRun>)> {
    caller.require(Permission::Write)?;
    let Query(q) = q?;
    let values: BTreeMap<String, Value> = match body.remove("input_values") {
        None => BTreeMap::new(),
        Some(v) => serde_json::from_value(v)
            .map_err(|_| ApiError::invalid("input_values: expected an object of inputs"))?,
    };
    let workflow = Workflow::from_json(&Value::Object(body).to_string())?;
    let run = workflows::start(&s.engine, &caller.viewer(), workflow, values, q.wait).await?;
    let code = if q.wait {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((code, Json(run)))
}

#[utoipa::path(get, path = "/api/v1/workflows", tag = "workflows", params(RunsQuery), responses((status = 200, description = "The caller's runs", body = Vec<WorkflowRow>)))]
pub(crate) async fn list_workflows(
    State(s): St,
    caller: Caller,
    q: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Api<Json<Vec<WorkflowRow>>> {
    caller.require(Permission::Read)?;
    let Query(q) = q?;
    let rows = workflows::list(&s.engine, &caller.viewer(), &q).await;
    Ok(Json(rows.map_err(ApiError::from_query)?))
}

#[utoipa::path(get, path = "/api/v1/workflows/{id}", tag = "workflows", params(("id" = String, Path, description = "The run id")), responses((status = 200, description = "Status, progress per step and results", body = WorkflowStatus)))]
pub(crate) async fn get_workflow(
    State(s): St,
    caller: Caller,
    Path(id): Path<String>,
) -> Api<Json<WorkflowStatus>> {
    caller.require(Permission::Read)?;
    let p = owned_run(&s, &caller, &id).await?;
    Ok(Json(WorkflowStatus::of(p)))
}

/// `GET /api/v1/workflows/{id}/events`: the run live, as server-sent events named after
/// their `event` field: a `snapshot` first (status, steps, results), a `step` per step change,
/// a `snapshot` again after falling behind and when the run ends, then `end`.
#[utoipa::path(get, path = "/api/v1/workflows/{id}/events", tag = "workflows", params(("id" = String, Path, description = "The run id")), responses((status = 200, description = "Server-sent events, each data a RunEvent", content((RunEvent = "text/event-stream")))))]
pub(crate) async fn watch_workflow(
    State(s): St,
    caller: Caller,
    Path(id): Path<String>,
) -> Api<axum::response::Response> {
    use axum::response::IntoResponse as _;
    use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
    caller.require(Permission::Read)?;
    let watch = RunWatch::open(&s.engine, &caller.viewer(), &id).await?;
    let stream = futures::stream::unfold(watch, |mut w| async move {
        let event = w.next().await?;
        let name = match &event {
            RunEvent::Snapshot { .. } => "snapshot",
            RunEvent::Step { .. } => "step",
            RunEvent::End { .. } => "end",
        };
        let sse = SseEvent::default()
            .event(name)
            .data(serde_json::to_string(&event).unwrap_or_default());
        Some((Ok::<_, std::convert::Infallible>(sse), w))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// What a `DELETE` did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Done {
    /// What it was done to.
    id: String,
    /// `cancelling`, `pausing`, `resuming` or `removed`.
    status: &'static str,
}

#[utoipa::path(delete, path = "/api/v1/workflows/{id}", tag = "workflows", params(("id" = String, Path, description = "The run id")), responses((status = 200, description = "Cancelling", body = Done)))]
pub(crate) async fn cancel_workflow(
    State(s): St,
    caller: Caller,
    Path(id): Path<String>,
) -> Api<Json<Done>> {
    act(&s, &caller, &id, RunAction::Cancel, "cancelling").await
}

/// `POST /api/v1/workflows/{id}/pause`: no new step starts; running ones finish.
#[utoipa::path(post, path = "/api/v1/workflows/{id}/pause", tag = "workflows", params(("id" = String, Path, description = "The run id")), responses((status = 200, description = "Pausing", body = Done)))]
pub(crate) async fn pause_workflow(
    State(s): St,
    caller: Caller,
    Path(id): Path<String>,
) -> Api<Json<Done>> {
    act(&s, &caller, &id, RunAction::Pause, "pausing").await
}

/// `POST /api/v1/workflows/{id}/resume`: a paused run goes on (an interrupted one is taken
/// over by this server).
#[utoipa::path(post, path = "/api/v1/workflows/{id}/resume", tag = "workflows", params(("id" = String, Path, description = "The run id")), responses((status = 200, description = "Resuming", body = Done)))]
pub(crate) async fn resume_workflow(
    State(s): St,
    caller: Caller,
    Path(id): Path<String>,
) -> Api<Json<Done>> {
    act(&s, &caller, &id, RunAction::Resume, "resuming").await
}

/// Carries out `action` on the caller's run `id`; a run in the wrong state is a conflict.
async fn act(
    s: &AppState,
    caller: &Caller,
    id: &str,
    action: RunAction,
    status: &'static str,
) -> Api<Json<Done>> {
    caller.require(Permission::Write)?;
    let run = owned_run(s, caller, id).await?.id;
    workflows::act(&s.engine, &run, action)
        .await
        .map_err(|e| match e {
            bear_app::Error::Agents(e @ bear_agents::Error::RunState { .. }) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            other => other.into(),
        })?;
    Ok(Json(Done {
        id: run.to_string(),
        status,
    }))
}

#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", params(("type" = Option<String>, Query, description = "coordinator, executor, validator, monitor or specialist"), ("status" = Option<String>, Query, description = "active, idle, busy or failed")), responses((status = 200, description = "Agents with their current task and metrics", body = Vec<AgentView>)))]
pub(crate) async fn list_agents(
    State(s): St,
    caller: Caller,
    q: Result<Query<AgentsQuery>, axum::extract::rejection::QueryRejection>,
) -> Api<Json<Vec<AgentView>>> {
    caller.require(Permission::Read)?;
    let Query(q) = q?;
    Ok(Json(agents::list(s.engine.registry(), &q)))
}

#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = String, Path, description = "The agent id")), responses((status = 200, description = "The agent, its current task and metrics", body = AgentView)))]
pub(crate) async fn get_agent(
    State(s): St,
    caller: Caller,
    Path(id): Path<String>,
) -> Api<Json<AgentView>> {
    caller.require(Permission::Read)?;
    Ok(Json(agents::get(s.engine.registry(), &id)?))
}

/// `POST /api/v1/agents` (admin): registers an agent; its id is minted here.
#[utoipa::path(post, path = "/api/v1/agents", tag = "agents", request_body = CreateAgent, responses((status = 201, description = "The agent is registered", body = AgentView)))]
pub(crate) async fn create_agent(
    State(s): St,
    caller: Caller,
    Body(b): Body<CreateAgent>,
) -> Api<(StatusCode, Json<AgentView>)> {
    caller.require(Permission::Admin)?;
    let view = agents::create(s.engine.registry(), b)?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `DELETE /api/v1/agents/{id}` (admin): attempts it runs finish; it gets no new work.
#[utoipa::path(delete, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = String, Path, description = "The agent id")), responses((status = 200, description = "Removed", body = Removed)))]
pub(crate) async fn remove_agent(
    State(s): St,
    caller: Caller,
    Path(id): Path<String>,
) -> Api<Json<Removed>> {
    caller.require(Permission::Admin)?;
    Ok(Json(agents::remove(s.engine.registry(), &id)?))
}
