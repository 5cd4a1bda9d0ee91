//! Document routes on bear-rag: collections (create, list, delete), documents (upload and
//! ingest in the background, list, show, delete), ingest jobs (poll), `/search`, `/ask` (cited
//! answers, JSON or SSE), `/extract` (a JSON schema filled per document) and `/review` (a task
//! over one whole document, map-reduced as a workflow run when it is long), and `/redact` (a
//! redacted copy of a PDF or DOCX file).
//!
//! Ownership: a collection created over the API belongs to the key that created it, and its
//! documents with it. Other keys get 404 for it, as if it did not exist; admins see every
//! collection, including those made locally with `bear ingest`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bear_app::docs::{CollectionView, CreateCollection, DocumentView, Removed};
use bear_app::extract::{ExtractRequest, ExtractResponse};
use bear_app::grid::{Grid, GridRequest};
use bear_app::ingest::IngestRequest;
use bear_app::rag::{AskRequest, AskResponse, SearchRequest, SearchResponse};
use bear_app::redact::{RedactRequest, RedactResponse};
use bear_app::review::{ReviewRequest, ReviewResponse};
use bear_core::CancellationToken;
use bear_core::config::RagConfig;
use bear_rag::{IngestReport, Store};
use bear_security::access::Permission;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;

use crate::AppState;
use crate::error::ApiError;
use crate::gateway::Caller;
use crate::models::{Piece, collect, error_event, sse_stream};
use crate::routes::Body;

type Api<T> = Result<T, ApiError>;
type St = State<Arc<AppState>>;

/// Ingest jobs remembered for polling; the oldest finished ones are forgotten first.
const KEPT_JOBS: usize = 1000;

/// What the document routes need: the application (store, scrubbers, models, the search and
/// ask operations) and the uploads folder with its ingest jobs.
pub struct RagState {
    /// The application the operations run in.
    pub app: Arc<bear_app::App>,
    /// The collections.
    pub store: Store,
    /// Chunking, limits and retrieval defaults.
    pub config: RagConfig,
    jobs: Mutex<Jobs>,
    /// One ingest at a time per collection (LanceDB commits are not merged across writers).
    writers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl RagState {
    /// The document routes over `app`'s collections.
    pub fn new(app: Arc<bear_app::App>) -> bear_app::Result<Self> {
        let config = &app.config().config;
        Ok(Self {
            store: app.store().clone(),
            config: config.rag.clone(),
            jobs: Mutex::new(Jobs::default()),
            writers: Mutex::new(HashMap::new()),
            app,
        })
    }

    fn writer(&self, collection: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.writers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(collection.to_string())
            .or_default()
            .clone()
    }
}

#[derive(Default)]
struct Jobs {
    by_id: HashMap<String, Job>,
    order: VecDeque<String>,
}

/// An ingest job, as polled.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct Job {
    /// The job.
    id: String,
    #[serde(skip)]
    owner: Option<String>,
    /// The collection it ingests into.
    collection: String,
    /// The uploaded file's name.
    filename: String,
    /// The document's id once stored.
    document_id: String,
    /// `running`, `completed` or `failed`.
    status: &'static str,
    /// Progress events as they happen: found, page (OCR pages read so far), ingested,
    /// unchanged, failed.
    #[schema(value_type = Vec<Object>)]
    events: Vec<bear_rag::Progress>,
    /// The ingest report once done: ingested, unchanged, failed with reasons, chunks, time.
    #[schema(value_type = Option<Object>)]
    report: Option<IngestReport>,
    /// Why the job failed, if it did.
    error: Option<bear_app::ErrorDetail>,
}

impl Job {
    /// Adds a progress event; OCR page counts replace the one before them.
    fn record(&mut self, p: &bear_rag::Progress) {
        use bear_rag::Progress::Page;
        if let (Page { .. }, Some(Page { .. })) = (p, self.events.last()) {
            self.events.pop();
        }
        self.events.push(p.clone());
    }

    /// Records how the ingest ended.
    fn finish(&mut self, result: bear_app::Result<IngestReport>) {
        match result {
            Ok(report) => {
                self.status = if report.failed.is_empty() {
                    "completed"
                } else {
                    "failed"
                };
                self.report = Some(report);
            }
            Err(e) => {
                self.status = "failed";
                self.error = Some(bear_app::ErrorBody::new(e.kind(), e.to_string(), None).error);
            }
        }
    }
}

/// `202` for an upload: the job to poll.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Accepted {
    /// Poll `GET /api/v1/ingest/{job_id}`.
    job_id: String,
    /// The collection.
    collection: String,
    /// The file's name.
    filename: String,
    /// The document's id once stored.
    document_id: String,
    /// Always `running`.
    status: &'static str,
}

/// The routes; uploads may be up to `upload_limit` bytes.
pub(crate) fn routes(upload_limit: usize) -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/api/v1/collections",
            get(list_collections).post(create_collection),
        )
        .route(
            "/api/v1/collections/{name}",
            get(get_collection).delete(remove_collection),
        )
        .route(
            "/api/v1/collections/{name}/documents",
            get(list_documents)
                .post(upload)
                .layer(axum::extract::DefaultBodyLimit::max(upload_limit)),
        )
        .route(
            "/api/v1/collections/{name}/documents/{id}",
            get(get_document).delete(remove_document),
        )
        .route(
            "/api/v1/redact",
            // The file comes base64 in JSON: a third more than its size.
            post(redact).layer(axum::extract::DefaultBodyLimit::max(
                upload_limit
                    .saturating_add(upload_limit / 3)
                    .saturating_add(64 << 10),
            )),
        )
        .route(
            "/api/v1/collections/{name}/documents/{id}/text",
            get(get_document_text),
        )
        .route(
            "/api/v1/collections/{name}/documents/{id}/file",
            get(get_document_file),
        )
        .route("/api/v1/collections/{name}/history", get(list_history))
        .route(
            "/api/v1/collections/{name}/history/{id}",
            get(get_history).delete(remove_history),
        )
        .route("/api/v1/ingest/{job}", get(get_job))
        .route("/api/v1/search", post(search))
        .route("/api/v1/ask", post(ask))
        .route("/api/v1/extract", post(extract))
        .route("/api/v1/review", post(review))
        .route("/api/v1/grid", post(grid))
        .route("/api/v1/review/{run_id}", get(get_review))
}

fn rag(s: &AppState) -> Api<&RagState> {
    s.rag.as_ref().ok_or_else(|| {
        ApiError::from_kind(
            bear_core::ErrorKind::Unavailable,
            "this server runs without document collections",
        )
    })
}

#[utoipa::path(get, path = "/api/v1/collections", tag = "documents", responses((status = 200, description = "The caller's collections with counts", body = Vec<CollectionView>)))]
pub(crate) async fn list_collections(
    State(s): St,
    caller: Caller,
) -> Api<Json<Vec<CollectionView>>> {
    caller.require(Permission::Read)?;
    let r = rag(&s)?;
    Ok(Json(r.app.collections(&caller.viewer()).await?))
}

#[utoipa::path(get, path = "/api/v1/collections/{name}", tag = "documents", params(("name" = String, Path, description = "The collection")), responses((status = 200, description = "The collection with counts", body = CollectionView)))]
pub(crate) async fn get_collection(
    State(s): St,
    caller: Caller,
    Path(name): Path<String>,
) -> Api<Json<CollectionView>> {
    caller.require(Permission::Read)?;
    let r = rag(&s)?;
    Ok(Json(r.app.collection_view(&caller.viewer(), &name).await?))
}

/// Creates collection `req.name`, owned by the caller; 409 if it exists.
async fn create(r: &RagState, caller: &Caller, req: &CreateCollection) -> Api<CollectionView> {
    match r.app.create_collection(&caller.viewer(), req).await {
        Err(bear_app::Error::Rag(bear_rag::Error::CollectionExists { .. })) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("collection `{}` exists already", req.name),
        )),
        other => Ok(other?),
    }
}

#[utoipa::path(post, path = "/api/v1/collections", tag = "documents", request_body = CreateCollection, responses((status = 201, description = "Created, owned by the caller", body = CollectionView)))]
pub(crate) async fn create_collection(
    State(s): St,
    caller: Caller,
    Body(b): Body<CreateCollection>,
) -> Api<(StatusCode, Json<CollectionView>)> {
    caller.require(Permission::Write)?;
    let r = rag(&s)?;
    Ok((StatusCode::CREATED, Json(create(r, &caller, &b).await?)))
}

#[utoipa::path(delete, path = "/api/v1/collections/{name}", tag = "documents", params(("name" = String, Path, description = "The collection")), responses((status = 200, description = "Removed with its documents and uploads", body = Removed)))]
pub(crate) async fn remove_collection(
    State(s): St,
    caller: Caller,
    Path(name): Path<String>,
) -> Api<Json<Removed>> {
    caller.require(Permission::Write)?;
    let r = rag(&s)?;
    let writer = r.writer(&name);
    let _held = writer.lock().await;
    Ok(Json(
        r.app.remove_collection(&caller.viewer(), &name).await?,
    ))
}

/// `POST /api/v1/redact`: a redacted copy of a PDF or DOCX file sent base64 in JSON. Nothing
/// is stored; the log (type, page, count) goes to the audit trail.
#[utoipa::path(post, path = "/api/v1/redact", tag = "documents", request_body = RedactRequest, responses((status = 200, description = "The redacted copy (base64), what was removed where (no values) and what else was stripped", body = RedactResponse)))]
pub(crate) async fn redact(
    State(s): St,
    caller: Caller,
    Body(b): Body<RedactRequest>,
) -> Api<Json<RedactResponse>> {
    caller.require(Permission::Write)?;
    let app = crate::models::app(&s)?;
    Ok(Json(app.redact(&caller.viewer(), b).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct UploadQuery {
    filename: String,
}

/// `POST /api/v1/collections/{name}/documents?filename=NAME`: the body is the file. It is
/// kept in the server's uploads folder and ingested in the background (202 with a job id to
/// poll at `/api/v1/ingest/{job}`). The collection is created, owned by the caller, if it does
/// not exist. Uploading the same name again replaces the document.
#[utoipa::path(post, path = "/api/v1/collections/{name}/documents", tag = "documents", request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes"), params(("name" = String, Path, description = "The collection (created if absent)"), UploadQuery), responses((status = 202, description = "Stored; the ingest runs in the background: poll /api/v1/ingest/{job}", body = Accepted)))]
pub(crate) async fn upload(
    State(s): St,
    caller: Caller,
    Path(name): Path<String>,
    q: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Api<(StatusCode, Json<Accepted>)> {
    caller.require(Permission::Write)?;
    let Query(q) = q?;
    let body = body?;
    let r = rag(&s)?;
    let viewer = caller.viewer();
    let kept = r
        .app
        .store_upload(&viewer, &name, &q.filename, &body)
        .await?;
    let document_id = kept.document_id;
    let job_id = uuid::Uuid::now_v7().to_string();
    let job = Job {
        id: job_id.clone(),
        owner: Some(caller.key_id.clone()),
        collection: name.clone(),
        filename: q.filename.clone(),
        document_id: document_id.clone(),
        status: "running",
        events: Vec::new(),
        report: None,
        error: None,
    };
    {
        let mut jobs = r.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.by_id.insert(job_id.clone(), job);
        jobs.order.push_back(job_id.clone());
        while jobs.order.len() > KEPT_JOBS {
            if let Some(old) = jobs.order.pop_front() {
                jobs.by_id.remove(&old);
            }
        }
    }
    let state = s.clone();
    let id = job_id.clone();
    let request = IngestRequest {
        collection: Some(name.clone()),
        paths: vec![kept.path],
        ..IngestRequest::default()
    };
    let writing = name.clone();
    tokio::spawn(async move {
        let Some(r) = state.rag.as_ref() else { return };
        let writer = r.writer(&writing);
        let _held = writer.lock().await;
        // Progress lands in the job as it happens, so a poll sees a long scan's pages.
        let (watched, job_id) = (state.clone(), id.clone());
        let mut on_progress = move |p: &bear_rag::Progress| {
            let Some(r) = watched.rag.as_ref() else {
                return;
            };
            let mut jobs = r.jobs.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(job) = jobs.by_id.get_mut(&job_id) {
                job.record(p);
            }
        };
        let cancel = CancellationToken::new();
        let result = r
            .app
            .ingest(&viewer, request, &mut on_progress, &cancel)
            .await;
        let mut jobs = r.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(job) = jobs.by_id.get_mut(&id) {
            job.finish(result);
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            job_id,
            collection: name,
            filename: q.filename,
            document_id,
            status: "running",
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/ingest/{job}", tag = "documents", params(("job" = String, Path, description = "The job id from the upload")), responses((status = 200, description = "running, completed or failed, with progress events and the report", body = Job)))]
pub(crate) async fn get_job(
    State(s): St,
    caller: Caller,
    Path(job): Path<String>,
) -> Api<Json<Job>> {
    caller.require(Permission::Read)?;
    let r = rag(&s)?;
    let jobs = r.jobs.lock().unwrap_or_else(|e| e.into_inner());
    let j = jobs
        .by_id
        .get(&job)
        .filter(|j| caller.may_see(j.owner.as_deref()))
        .ok_or_else(|| ApiError::not_found("no such ingest job"))?;
    Ok(Json(j.clone()))
}

#[utoipa::path(get, path = "/api/v1/collections/{name}/documents", tag = "documents", params(("name" = String, Path, description = "The collection")), responses((status = 200, description = "Its documents", body = Vec<DocumentView>)))]
pub(crate) async fn list_documents(
    State(s): St,
    caller: Caller,
    Path(name): Path<String>,
) -> Api<Json<Vec<DocumentView>>> {
    caller.require(Permission::Read)?;
    let r = rag(&s)?;
    Ok(Json(r.app.documents(&caller.viewer(), Some(&name)).await?))
}

fn check_doc_id(id: &str) -> Api<()> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "no such document: a document id is 32 hexadecimal characters",
        ))
    }
}

#[utoipa::path(get, path = "/api/v1/collections/{name}/documents/{id}", tag = "documents", params(("name" = String, Path, description = "The collection"), ("id" = String, Path, description = "The document id, 32 hex digits")), responses((status = 200, description = "The document record", body = DocumentView)))]
pub(crate) async fn get_document(
    State(s): St,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> Api<Json<DocumentView>> {
    caller.require(Permission::Read)?;
    check_doc_id(&id)?;
    let r = rag(&s)?;
    Ok(Json(
        r.app.document(&caller.viewer(), Some(&name), &id).await?,
    ))
}

/// `GET .../documents/{id}/text`: the document's passages in order, restored (where a
/// citation is shown).
#[utoipa::path(get, path = "/api/v1/collections/{name}/documents/{id}/text", tag = "documents", params(("name" = String, Path, description = "The collection"), ("id" = String, Path, description = "The document id, 32 hex digits")), responses((status = 200, description = "The document's passages in order", body = bear_app::docs::DocumentText)))]
pub(crate) async fn get_document_text(
    State(s): St,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> Api<Json<bear_app::docs::DocumentText>> {
    caller.require(Permission::Read)?;
    check_doc_id(&id)?;
    let r = rag(&s)?;
    Ok(Json(
        r.app
            .document_text(&caller.viewer(), Some(&name), &id)
            .await?,
    ))
}

/// `GET .../documents/{id}/file`: the original file (for a PDF's pages), as an attachment, if
/// it is still the one ingested.
#[utoipa::path(get, path = "/api/v1/collections/{name}/documents/{id}/file", tag = "documents", params(("name" = String, Path, description = "The collection"), ("id" = String, Path, description = "The document id, 32 hex digits")), responses((status = 200, description = "The file's bytes, with its MIME type", content_type = "application/octet-stream", body = Vec<u8>)))]
pub(crate) async fn get_document_file(
    State(s): St,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> Api<axum::response::Response> {
    caller.require(Permission::Read)?;
    check_doc_id(&id)?;
    let r = rag(&s)?;
    let file = r
        .app
        .document_file(&caller.viewer(), Some(&name), &id)
        .await?;
    let mime = axum::http::HeaderValue::from_str(&file.mime).unwrap_or(
        axum::http::HeaderValue::from_static("application/octet-stream"),
    );
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, mime),
            (
                axum::http::header::CONTENT_DISPOSITION,
                axum::http::HeaderValue::from_static("attachment"),
            ),
            (
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("private, no-store"),
            ),
        ],
        file.bytes,
    )
        .into_response())
}

/// `GET .../history`: the matter's questions, newest first.
#[utoipa::path(get, path = "/api/v1/collections/{name}/history", tag = "documents", params(("name" = String, Path, description = "The collection")), responses((status = 200, description = "The questions asked of this matter, newest first", body = Vec<bear_app::history::HistoryItem>)))]
pub(crate) async fn list_history(
    State(s): St,
    caller: Caller,
    Path(name): Path<String>,
) -> Api<Json<Vec<bear_app::history::HistoryItem>>> {
    caller.require(Permission::Read)?;
    let r = rag(&s)?;
    Ok(Json(r.app.history(&caller.viewer(), &name).await?))
}

/// `GET .../history/{id}`: one question with its answer and sources, as given.
#[utoipa::path(get, path = "/api/v1/collections/{name}/history/{id}", tag = "documents", params(("name" = String, Path, description = "The collection"), ("id" = String, Path, description = "The history entry")), responses((status = 200, description = "The question and its answer", body = bear_app::history::HistoryEntry)))]
pub(crate) async fn get_history(
    State(s): St,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> Api<Json<bear_app::history::HistoryEntry>> {
    caller.require(Permission::Read)?;
    let r = rag(&s)?;
    Ok(Json(
        r.app.history_entry(&caller.viewer(), &name, &id).await?,
    ))
}

/// `DELETE .../history/{id}`: forgets one question and its answer.
#[utoipa::path(delete, path = "/api/v1/collections/{name}/history/{id}", tag = "documents", params(("name" = String, Path, description = "The collection"), ("id" = String, Path, description = "The history entry")), responses((status = 200, description = "Removed from the history", body = Removed)))]
pub(crate) async fn remove_history(
    State(s): St,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> Api<Json<Removed>> {
    caller.require(Permission::Write)?;
    let r = rag(&s)?;
    Ok(Json(r.app.forget(&caller.viewer(), &name, &id).await?))
}

/// Deletes the document's chunks and row, and the uploaded file if it came through the API.
#[utoipa::path(delete, path = "/api/v1/collections/{name}/documents/{id}", tag = "documents", params(("name" = String, Path, description = "The collection"), ("id" = String, Path, description = "The document id, 32 hex digits")), responses((status = 200, description = "Removed with its chunks and uploaded file", body = Removed)))]
pub(crate) async fn remove_document(
    State(s): St,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> Api<Json<Removed>> {
    caller.require(Permission::Write)?;
    check_doc_id(&id)?;
    let r = rag(&s)?;
    let writer = r.writer(&name);
    let _held = writer.lock().await;
    Ok(Json(
        r.app
            .remove_document(&caller.viewer(), Some(&name), &id)
            .await?,
    ))
}

/// `POST /api/v1/extract`: a JSON schema filled from one document or every document of a
/// collection, by schema-constrained generation; each value is checked against the
/// document's text and dropped (reported) when it is not there.
#[utoipa::path(post, path = "/api/v1/extract", tag = "documents", request_body = ExtractRequest, responses((status = 200, description = "Each document's values, where they stand, and what was dropped", body = ExtractResponse)))]
pub(crate) async fn extract(
    State(s): St,
    caller: Caller,
    Body(b): Body<ExtractRequest>,
) -> Api<Json<ExtractResponse>> {
    caller.require(Permission::Read)?;
    let r = rag(&s)?;
    Ok(Json(r.app.extract(&caller.viewer(), b).await?))
}

/// `POST /api/v1/review`: one document reviewed (a summary, deadlines, parties, obligations
/// or a custom instruction), each statement's citation checked. A document that fits one
/// pass answers at once; a longer one is map-reduced as a workflow run: 202 with its id
/// (follow it under `/api/v1/workflows/{id}`, cancel it there), unless `wait` is true.
#[utoipa::path(post, path = "/api/v1/review", tag = "documents", request_body = ReviewRequest, responses((status = 200, description = "The checked result", body = ReviewResponse), (status = 202, description = "A map-reduce run started; GET /api/v1/review/{run_id} gives the result", body = ReviewResponse)))]
pub(crate) async fn review(
    State(s): St,
    caller: Caller,
    Body(b): Body<ReviewRequest>,
) -> Api<(StatusCode, Json<ReviewResponse>)> {
    caller.require(Permission::Read)?;
    let r = rag(&s)?;
    let out = r.app.review(&caller.viewer(), b, &s.engine).await?;
    Ok((review_code(&out), Json(out)))
}

/// `GET /api/v1/review/{run_id}`: a map-reduce review's checked result once its run has
/// completed (200), or where the run stands (202 while it goes on).
#[utoipa::path(get, path = "/api/v1/review/{run_id}", tag = "documents", params(("run_id" = String, Path, description = "The review's workflow run")), responses((status = 200, description = "The checked result, or how the run ended", body = ReviewResponse), (status = 202, description = "The run goes on", body = ReviewResponse)))]
pub(crate) async fn get_review(
    State(s): St,
    caller: Caller,
    Path(run_id): Path<String>,
) -> Api<(StatusCode, Json<ReviewResponse>)> {
    caller.require(Permission::Read)?;
    let r = rag(&s)?;
    let out = r
        .app
        .review_result(&caller.viewer(), &s.engine, &run_id)
        .await?;
    Ok((review_code(&out), Json(out)))
}

/// How `POST /api/v1/grid` answers.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct GridQuery {
    /// `json` (the default) or `csv`.
    #[serde(default)]
    format: Option<String>,
}

/// `POST /api/v1/grid`: a matter's documents against questions or schema fields, a cell each,
/// checked against the document; JSON, or CSV with `?format=csv`.
#[utoipa::path(post, path = "/api/v1/grid", tag = "documents", request_body = GridRequest, params(GridQuery), responses((status = 200, description = "The grid: columns, and a row of cells per document (text/csv with format=csv)", body = Grid)))]
pub(crate) async fn grid(
    State(s): St,
    caller: Caller,
    q: Result<Query<GridQuery>, axum::extract::rejection::QueryRejection>,
    Body(b): Body<GridRequest>,
) -> Api<Response> {
    caller.require(Permission::Read)?;
    let Query(q) = q?;
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::invalid("format: `json` or `csv`")),
    };
    let r = rag(&s)?;
    let grid = r.app.grid(&caller.viewer(), b, &|_, _| {}).await?;
    if !csv {
        return Ok(Json(grid).into_response());
    }
    let text = grid.to_csv()?;
    let headers = [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")];
    Ok((headers, text).into_response())
}

/// 202 while a review's run has not ended, else 200.
fn review_code(r: &ReviewResponse) -> StatusCode {
    match r.status.is_terminal() {
        true => StatusCode::OK,
        false => StatusCode::ACCEPTED,
    }
}

/// `POST /api/v1/search`: hybrid (default), vector, exact (every vector compared) or full-text
/// search in one collection.
#[utoipa::path(post, path = "/api/v1/search", tag = "documents", request_body = SearchRequest, responses((status = 200, description = "Hits with scores, pages and restored texts", body = SearchResponse)))]
pub(crate) async fn search(
    State(s): St,
    caller: Caller,
    Body(b): Body<SearchRequest>,
) -> Api<Json<SearchResponse>> {
    caller.require(Permission::Read)?;
    let r = rag(&s)?;
    Ok(Json(r.app.search(&caller.viewer(), b).await?))
}

/// `POST /api/v1/ask`: a cited answer from one collection. `"stream": true` answers with SSE:
/// `token` events (`{"text"}`), then one `done` event with the whole answer, its numbered
/// `sources` and the markers it `cited`.
#[utoipa::path(post, path = "/api/v1/ask", tag = "documents", request_body = AskRequest, responses((status = 200, description = "A cited answer; with stream, SSE `token` events and one `done` event carrying the same body", content((AskResponse = "application/json"), (String = "text/event-stream")))))]
pub(crate) async fn ask(State(s): St, caller: Caller, Body(b): Body<AskRequest>) -> Api<Response> {
    caller.require(Permission::Read)?;
    let r = rag(&s)?;
    let slot = s.queue_slot(&r.app.answer_model(&b)?)?;
    let (tx, rx) = mpsc::unbounded_channel::<Piece<bear_app::Result<AskResponse>>>();
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    let sink_tx = tx.clone();
    let stream = b.stream;
    let app = r.app.clone();
    let viewer = caller.viewer();
    tokio::spawn(async move {
        let sink = Box::new(move |p: &str| sink_tx.send(Piece::Text(p.to_string())).is_ok());
        let result = app.ask(&viewer, b, sink, token).await;
        drop(slot);
        let _ = tx.send(Piece::Done(result));
    });
    if !stream {
        let answer = collect(rx, cancel).await?;
        return Ok(Json(answer).into_response());
    }
    let stream = sse_stream(rx, cancel, |p| match p {
        Piece::Text(t) => vec![
            SseEvent::default()
                .event("token")
                .data(json!({"text": t}).to_string()),
        ],
        Piece::Logprob(_) => Vec::new(),
        Piece::Done(Ok(a)) => vec![
            SseEvent::default()
                .event("done")
                .data(serde_json::to_string(&a).unwrap_or_default()),
        ],
        Piece::Done(Err(e)) => vec![error_event(&ApiError::from(e))],
    });
    Ok(Sse::new(stream).into_response())
}

/// Collections by name with the counts, for `/metrics`.
pub(crate) async fn collection_counts(s: &AppState) -> BTreeMap<String, (usize, usize)> {
    let Some(r) = s.rag.as_ref() else {
        return BTreeMap::new();
    };
    r.store
        .list()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.meta.name, (c.documents, c.chunks)))
        .collect()
}
