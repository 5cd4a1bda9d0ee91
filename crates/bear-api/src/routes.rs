//! The handlers: `/health`, and under `/api/v1`: `hw`, `pii/detect`, `pii/scrub`, `workflows`
//! (create and run, list, status, cancel) and `agents` (list, show).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bear_agents::{AgentKind, AgentStatus, Workflow};
use bear_core::{AgentId, RunId, RunStatus};
use bear_security::access::Permission;
use serde::Deserialize;
use serde_json::{Value, json};

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
        .route(
            "/api/v1/workflows",
            post(create_workflow).get(list_workflows),
        )
        .route(
            "/api/v1/workflows/{id}",
            get(get_workflow).delete(cancel_workflow),
        )
        .route("/api/v1/agents", get(list_agents).post(create_agent))
        .route("/api/v1/agents/{id}", get(get_agent).delete(remove_agent))
        .fallback(|| async { ApiError::not_found("no such route; see /api/v1/openapi.json") })
}

#[utoipa::path(get, path = "/health", tag = "system", responses((status = 200, description = "The server is up: status and version", body = Object)))]
pub(crate) async fn health() -> Json<Value> {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

#[utoipa::path(get, path = "/api/v1/hw", tag = "system", responses((status = 200, description = "The machine report and recommendations", body = Object)))]
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TextBody {
    text: String,
}

#[utoipa::path(post, path = "/api/v1/pii/detect", tag = "pii", request_body = TextBody, responses((status = 200, description = "PII findings: entity types and positions, never the values", body = Object)))]
pub(crate) async fn pii_detect(
    State(s): St,
    caller: Caller,
    Body(b): Body<TextBody>,
) -> Api<Json<Value>> {
    caller.require(Permission::Write)?;
    let findings = s.scrubber.detector().detect(&b.text);
    // Positions and types only: the values are the PII.
    let items: Vec<Value> = findings
        .iter()
        .map(|f| {
            json!({"entity": f.entity.name(), "start": f.start, "end": f.end,
                   "char_start": f.char_start, "char_end": f.char_end, "score": f.score})
        })
        .collect();
    Ok(Json(json!({"count": items.len(), "findings": items})))
}

#[utoipa::path(post, path = "/api/v1/pii/scrub", tag = "pii", request_body = TextBody, responses((status = 200, description = "The scrubbed text, counts per entity and the risk level", body = Object)))]
pub(crate) async fn pii_scrub(
    State(s): St,
    caller: Caller,
    Body(b): Body<TextBody>,
) -> Api<Json<Value>> {
    caller.require(Permission::Write)?;
    let out = bear_core::PiiScrubber::scrub(&*s.scrubber, &b.text)?;
    let counts: BTreeMap<String, u32> = out
        .counts
        .iter()
        .map(|(k, v)| (k.name().into_owned(), *v))
        .collect();
    Ok(Json(
        json!({"text": out.text.expose(), "counts": counts, "risk": out.risk}),
    ))
}

fn run_id(id: &str) -> Api<RunId> {
    RunId::new(id).map_err(|e| ApiError::not_found(e.to_string()))
}

/// A run the caller may see; another key's run is a 404, as if it did not exist.
async fn owned_run(s: &AppState, caller: &Caller, id: &str) -> Api<bear_agents::Progress> {
    let id = run_id(id)?;
    match s.engine.progress(&id).await {
        Ok(p) if caller.may_see(p.owner.as_deref()) => Ok(p),
        Ok(_) => Err(ApiError::not_found(format!("no workflow run `{id}`"))),
        Err(e) => Err(e.into()),
    }
}

/// `POST /api/v1/workflows`: the seed's body (`name`, `description`, `steps`, plus BEAR's
/// `inputs` declarations and `on_failure`), and `input_values` for the run. Validation errors
/// come back all at once with their paths (422). The run continues in the background.
#[utoipa::path(post, path = "/api/v1/workflows", tag = "workflows", request_body = Object, responses((status = 201, description = "The run started: workflow_id, status, progress", body = Object)))]
pub(crate) async fn create_workflow(
    State(s): St,
    caller: Caller,
    Body(mut body): Body<serde_json::Map<String, Value>>,
) -> Api<(StatusCode, Json<Value>)> {
    caller.require(Permission::Write)?;
    let values: BTreeMap<String, Value> = match body.remove("input_values") {
        None => BTreeMap::new(),
        Some(v) => serde_json::from_value(v)
            .map_err(|_| ApiError::invalid("input_values: expected an object of inputs"))?,
    };
    let workflow = Workflow::from_json(&Value::Object(body).to_string())?;
    let handle = s
        .engine
        .start_as(workflow, values, Some(caller.key_id.clone()))
        .await?;
    let id = handle.id.clone();
    // The handle is dropped: the run goes on in the background; poll GET /workflows/{id}.
    drop(handle);
    let p = s.engine.progress(&id).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"workflow_id": id, "status": p.status, "progress": {"completed": p.completed, "total": p.total}}),
        ),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    status: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/workflows", tag = "workflows", params(ListQuery), responses((status = 200, description = "The caller's runs", body = Vec<Object>)))]
pub(crate) async fn list_workflows(
    State(s): St,
    caller: Caller,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Api<Json<Value>> {
    caller.require(Permission::Read)?;
    let Query(q) = q?;
    let status = match q.status.as_deref() {
        None | Some("all") => None,
        Some(other) => Some(RunStatus::parse(other).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "status: expected all, pending, running, paused, completed, failed or cancelled",
            )
        })?),
    };
    let runs = s.engine.list(status).await?;
    let rows: Vec<Value> = runs
        .iter()
        .filter(|p| caller.may_see(p.owner.as_deref()))
        .map(|p| {
            json!({"id": p.id, "name": p.name, "status": p.status, "interrupted": p.interrupted,
                   "created_at": chrono_ms(p.created_ms),
                   "progress": {"completed": p.completed, "total": p.total}})
        })
        .collect();
    Ok(Json(Value::Array(rows)))
}

/// RFC 3339 UTC from Unix milliseconds.
fn chrono_ms(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[utoipa::path(get, path = "/api/v1/workflows/{id}", tag = "workflows", params(("id" = String, Path, description = "The run id")), responses((status = 200, description = "Status, progress per step and results", body = Object)))]
pub(crate) async fn get_workflow(
    State(s): St,
    caller: Caller,
    Path(id): Path<String>,
) -> Api<Json<Value>> {
    caller.require(Permission::Read)?;
    let p = owned_run(&s, &caller, &id).await?;
    Ok(Json(json!({
        "id": p.id, "name": p.name, "status": p.status, "interrupted": p.interrupted,
        "progress": {"completed": p.completed, "total": p.total, "steps": p.steps},
        "results": p.results, "execution_time": p.execution_time,
    })))
}

#[utoipa::path(delete, path = "/api/v1/workflows/{id}", tag = "workflows", params(("id" = String, Path, description = "The run id")), responses((status = 200, description = "Cancelling", body = Object)))]
pub(crate) async fn cancel_workflow(
    State(s): St,
    caller: Caller,
    Path(id): Path<String>,
) -> Api<Json<Value>> {
    caller.require(Permission::Write)?;
    let id = owned_run(&s, &caller, &id).await?.id;
    s.engine.cancel(&id).await.map_err(|e| match e {
        bear_agents::Error::RunState { .. } => {
            ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
        }
        other => other.into(),
    })?;
    Ok(Json(json!({"id": id, "status": "cancelling"})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentQuery {
    #[serde(rename = "type")]
    kind: Option<AgentKind>,
    status: Option<AgentStatus>,
}

#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", params(("type" = Option<String>, Query, description = "coordinator, executor or monitor"), ("status" = Option<String>, Query, description = "idle, busy or offline")), responses((status = 200, description = "Agents with their current task and metrics", body = Vec<Object>)))]
pub(crate) async fn list_agents(
    State(s): St,
    caller: Caller,
    q: Result<Query<AgentQuery>, axum::extract::rejection::QueryRejection>,
) -> Api<Json<Value>> {
    caller.require(Permission::Read)?;
    let Query(q) = q?;
    let agents: Vec<_> = s
        .engine
        .registry()
        .list()
        .into_iter()
        .filter(|a| q.kind.is_none_or(|k| a.spec.kind == k))
        .filter(|a| q.status.is_none_or(|st| a.status == st))
        .collect();
    Ok(Json(serde_json::to_value(agents).unwrap_or_default()))
}

#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = String, Path, description = "The agent id")), responses((status = 200, description = "The agent, its current task and metrics", body = Object)))]
pub(crate) async fn get_agent(
    State(s): St,
    caller: Caller,
    Path(id): Path<String>,
) -> Api<Json<Value>> {
    caller.require(Permission::Read)?;
    let id = AgentId::new(id).map_err(|e| ApiError::not_found(e.to_string()))?;
    let agent = s
        .engine
        .registry()
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("no agent `{id}`")))?;
    Ok(Json(serde_json::to_value(agent).unwrap_or_default()))
}

/// The seed's `POST /agents` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentBody {
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "executor")]
    kind: AgentKind,
    name: String,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    config: bear_agents::AgentConfig,
    #[serde(default)]
    max_concurrent: Option<usize>,
}

/// `POST /api/v1/agents` (admin): registers an agent; its id is minted here.
#[utoipa::path(post, path = "/api/v1/agents", tag = "agents", request_body = AgentBody, responses((status = 201, description = "The agent is registered", body = Object)))]
pub(crate) async fn create_agent(
    State(s): St,
    caller: Caller,
    Body(b): Body<AgentBody>,
) -> Api<(StatusCode, Json<Value>)> {
    caller.require(Permission::Admin)?;
    if b.name.trim().is_empty() || b.name.len() > 128 {
        return Err(ApiError::invalid("name: 1 to 128 characters"));
    }
    for (i, c) in b.capabilities.iter().enumerate() {
        if c != "*" && bear_agents::StepKind::parse(c).is_none() {
            return Err(ApiError::invalid(format!(
                "capabilities[{i}]: expected a step type or `*`"
            )));
        }
    }
    let max_concurrent = b.max_concurrent.unwrap_or(4);
    if !(1..=256).contains(&max_concurrent) {
        return Err(ApiError::invalid("max_concurrent: 1 to 256"));
    }
    let id = AgentId::new(format!(
        "agent-{}",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    ))
    .map_err(|e| ApiError::from_kind(bear_core::ErrorKind::Internal, e.to_string()))?;
    let spec = bear_agents::AgentSpec {
        id: id.clone(),
        name: b.name,
        kind: b.kind,
        capabilities: b.capabilities.into_iter().collect(),
        max_concurrent,
        config: b.config,
    };
    s.engine.registry().register(spec)?;
    let info =
        s.engine.registry().get(&id).ok_or_else(|| {
            ApiError::from_kind(bear_core::ErrorKind::Internal, "the agent vanished")
        })?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": id, "name": info.spec.name, "type": info.spec.kind, "status": info.status}),
        ),
    ))
}

/// `DELETE /api/v1/agents/{id}` (admin): attempts it runs finish; it gets no new work.
#[utoipa::path(delete, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = String, Path, description = "The agent id")), responses((status = 200, description = "Removed", body = Object)))]
pub(crate) async fn remove_agent(
    State(s): St,
    caller: Caller,
    Path(id): Path<String>,
) -> Api<Json<Value>> {
    caller.require(Permission::Admin)?;
    let id = AgentId::new(id).map_err(|e| ApiError::not_found(e.to_string()))?;
    s.engine
        .registry()
        .remove(&id)
        .map_err(|_| ApiError::not_found(format!("no agent `{id}`")))?;
    Ok(Json(json!({"id": id, "status": "removed"})))
}
