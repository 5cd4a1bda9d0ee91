//! Document routes on bear-rag: collections (create, list, delete), documents (upload and
//! ingest in the background, list, show, delete), ingest jobs (poll), `/search` and `/ask`
//! (cited answers, JSON or SSE).
//!
//! Ownership: a collection created over the API belongs to the key that created it, and its
//! documents with it. Other keys get 404 for it, as if it did not exist; admins see every
//! collection, including those made locally with `bear ingest`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bear_core::config::RagConfig;
use bear_core::{CancellationToken, ModelId, PiiPolicy, PiiScrubber, SamplingParams};
use bear_rag::{Collection, Filter, IngestOptions, IngestReport, Pipeline, SearchMode, Store};
use bear_security::PolicyScrubbers;
use bear_security::access::Permission;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::AppState;
use crate::error::ApiError;
use crate::gateway::Caller;
use crate::models::{Piece, check_max_tokens, collect, error_event, sse_stream};
use crate::routes::Body;

type Api<T> = Result<T, ApiError>;
type St = State<Arc<AppState>>;

/// Ingest jobs remembered for polling; the oldest finished ones are forgotten first.
const KEPT_JOBS: usize = 1000;

/// What the document routes need: the store, the scrubbers by policy, the models to use.
pub struct RagState {
    /// The collections.
    pub store: Store,
    /// Chunking, limits and retrieval defaults.
    pub config: RagConfig,
    /// Where uploaded files are kept, one folder per collection.
    pub uploads: PathBuf,
    /// Scrubbers for each collection's PII policy.
    pub scrubbers: Arc<PolicyScrubbers>,
    /// The embedder new collections use.
    pub default_embedder: ModelId,
    /// The generator `/ask` uses when the request names none.
    pub default_generator: ModelId,
    /// The generator's context length, tokens.
    pub context_tokens: usize,
    jobs: Mutex<Jobs>,
    /// One ingest at a time per collection (LanceDB commits are not merged across writers).
    writers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl RagState {
    /// The document routes over `store`, keeping uploads under `uploads`.
    pub fn new(
        store: Store,
        config: RagConfig,
        uploads: PathBuf,
        scrubbers: Arc<PolicyScrubbers>,
        default_embedder: ModelId,
        default_generator: ModelId,
        context_tokens: usize,
    ) -> Self {
        Self {
            store,
            config,
            uploads,
            scrubbers,
            default_embedder,
            default_generator,
            context_tokens,
            jobs: Mutex::new(Jobs::default()),
            writers: Mutex::new(HashMap::new()),
        }
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
#[derive(Debug, Clone, Serialize)]
struct Job {
    id: String,
    #[serde(skip)]
    owner: Option<String>,
    collection: String,
    filename: String,
    document_id: String,
    /// `running`, `completed` or `failed`.
    status: &'static str,
    events: Vec<bear_rag::Progress>,
    report: Option<IngestReport>,
    error: Option<Value>,
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
        .route("/api/v1/ingest/{job}", get(get_job))
        .route("/api/v1/search", post(search))
        .route("/api/v1/ask", post(ask))
}

fn rag(s: &AppState) -> Api<&RagState> {
    s.rag.as_ref().ok_or_else(|| {
        ApiError::from_kind(
            bear_core::ErrorKind::Unavailable,
            "this server runs without document collections",
        )
    })
}

fn rag_err(e: bear_rag::Error) -> ApiError {
    ApiError::from_kind(e.kind(), e.to_string())
}

fn no_collection(name: &str) -> ApiError {
    ApiError::not_found(format!("no collection `{name}`"))
}

/// The collection, if the caller may see it; otherwise 404 as if it did not exist.
async fn owned(r: &RagState, caller: &Caller, name: &str) -> Api<Collection> {
    bear_rag::store::check_name(name).map_err(|_| no_collection(name))?;
    if !r.store.exists(name) {
        return Err(no_collection(name));
    }
    let c = r.store.open(name).await.map_err(rag_err)?;
    if caller.may_see(c.meta().owner.as_deref()) {
        Ok(c)
    } else {
        Err(no_collection(name))
    }
}

async fn embedder_for(s: &AppState, id: &str) -> Api<Arc<dyn bear_core::Embedder>> {
    let m = crate::models::manager(s)?.clone();
    let id = ModelId::new(id).map_err(|e| ApiError::invalid(e.to_string()))?;
    tokio::task::spawn_blocking(move || m.embedder(&id))
        .await
        .map_err(|_| ApiError::from_kind(bear_core::ErrorKind::Internal, "the model load failed"))?
        .map_err(|e| ApiError::from_kind(e.kind(), e.to_string()))
}

/// The scrubber for a collection's policy; a policy this server cannot apply (tokenize
/// without a keyring) is the request's problem to route around: 422 saying what to do.
fn scrubber_for(r: &RagState, policy: PiiPolicy) -> Api<Arc<dyn PiiScrubber>> {
    match r.scrubbers.get(policy) {
        Ok(s) => Ok(s),
        Err(e @ bear_security::Error::Setting { .. }) => {
            Err(ApiError::invalid(format!("pii_policy: {e}")))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Serialize)]
struct CollectionView {
    name: String,
    pii_policy: PiiPolicy,
    embedder: String,
    dimension: usize,
    created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    documents: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chunks: Option<usize>,
}

impl CollectionView {
    fn of(m: &bear_rag::CollectionMeta, counts: Option<(usize, usize)>) -> Self {
        Self {
            name: m.name.clone(),
            pii_policy: m.pii_policy,
            embedder: m.embedder.clone(),
            dimension: m.dimension,
            created_at: m.created_at,
            documents: counts.map(|c| c.0),
            chunks: counts.map(|c| c.1),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/collections", tag = "documents", responses((status = 200, description = "The caller's collections with counts", body = Vec<Object>)))]
pub(crate) async fn list_collections(State(s): St, caller: Caller) -> Api<Json<Value>> {
    caller.require(Permission::Read)?;
    let r = rag(&s)?;
    let all = r.store.list().await.map_err(rag_err)?;
    let rows: Vec<CollectionView> = all
        .iter()
        .filter(|c| caller.may_see(c.meta.owner.as_deref()))
        .map(|c| CollectionView::of(&c.meta, Some((c.documents, c.chunks))))
        .collect();
    Ok(Json(serde_json::to_value(rows).unwrap_or_default()))
}

#[utoipa::path(get, path = "/api/v1/collections/{name}", tag = "documents", params(("name" = String, Path, description = "The collection")), responses((status = 200, description = "The collection with counts", body = Object)))]
pub(crate) async fn get_collection(
    State(s): St,
    caller: Caller,
    Path(name): Path<String>,
) -> Api<Json<Value>> {
    caller.require(Permission::Read)?;
    let r = rag(&s)?;
    let c = owned(r, &caller, &name).await?;
    let docs = c.documents().await.map_err(rag_err)?;
    let chunks = docs.iter().map(|d| d.chunks as usize).sum();
    Ok(Json(
        serde_json::to_value(CollectionView::of(c.meta(), Some((docs.len(), chunks))))
            .unwrap_or_default(),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateCollection {
    name: String,
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "replace")]
    pii_policy: Option<PiiPolicy>,
}

async fn create(
    s: &AppState,
    caller: &Caller,
    name: &str,
    policy: Option<PiiPolicy>,
) -> Api<Collection> {
    let r = rag(s)?;
    bear_rag::store::check_name(name).map_err(|e| ApiError::invalid(format!("name: {e}")))?;
    let policy = policy.unwrap_or(r.config.pii_policy);
    // Refuse a policy this server cannot apply before anything is written.
    scrubber_for(r, policy)?;
    let embedder = embedder_for(s, r.default_embedder.as_str()).await?;
    r.store
        .create_owned(
            name,
            policy,
            embedder.model().as_str(),
            embedder.dimension(),
            Some(&caller.key_id),
        )
        .await
        .map_err(|e| match e {
            bear_rag::Error::CollectionExists { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("collection `{name}` exists already"),
            ),
            other => rag_err(other),
        })
}

#[utoipa::path(post, path = "/api/v1/collections", tag = "documents", request_body = CreateCollection, responses((status = 201, description = "Created, owned by the caller", body = Object)))]
pub(crate) async fn create_collection(
    State(s): St,
    caller: Caller,
    Body(b): Body<CreateCollection>,
) -> Api<(StatusCode, Json<Value>)> {
    caller.require(Permission::Write)?;
    let c = create(&s, &caller, &b.name, b.pii_policy).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(CollectionView::of(c.meta(), Some((0, 0)))).unwrap_or_default()),
    ))
}

#[utoipa::path(delete, path = "/api/v1/collections/{name}", tag = "documents", params(("name" = String, Path, description = "The collection")), responses((status = 200, description = "Removed with its documents and uploads", body = Object)))]
pub(crate) async fn remove_collection(
    State(s): St,
    caller: Caller,
    Path(name): Path<String>,
) -> Api<Json<Value>> {
    caller.require(Permission::Write)?;
    let r = rag(&s)?;
    let c = owned(r, &caller, &name).await?;
    let writer = r.writer(&name);
    let _held = writer.lock().await;
    drop(c);
    r.store.remove(&name).map_err(rag_err)?;
    let dir = r.uploads.join(&name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| {
            ApiError::from_kind(
                bear_core::ErrorKind::Storage,
                format!("the collection is removed but its uploads folder is not: {e}"),
            )
        })?;
    }
    Ok(Json(json!({"name": name, "status": "removed"})))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct UploadQuery {
    filename: String,
}

/// A file name for an upload: one plain path component, a format BEAR reads.
fn check_filename(name: &str) -> Api<()> {
    let plain = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && !name.chars().any(char::is_control);
    if !plain {
        return Err(ApiError::invalid(
            "filename: one plain file name (no folders, no leading dot, at most 255 bytes)",
        ));
    }
    if bear_rag::extract::Format::from_path(std::path::Path::new(name)).is_none() {
        return Err(ApiError::invalid(
            "filename: BEAR reads .txt, .md, .html, .pdf and .docx files",
        ));
    }
    Ok(())
}

/// `POST /api/v1/collections/{name}/documents?filename=NAME`: the body is the file. It is
/// kept in the server's uploads folder and ingested in the background (202 with a job id to
/// poll at `/api/v1/ingest/{job}`). The collection is created, owned by the caller, if it does
/// not exist. Uploading the same name again replaces the document.
#[utoipa::path(post, path = "/api/v1/collections/{name}/documents", tag = "documents", request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes"), params(("name" = String, Path, description = "The collection (created if absent)"), UploadQuery), responses((status = 202, description = "Stored; the ingest runs in the background: poll /api/v1/ingest/{job}", body = Object)))]
pub(crate) async fn upload(
    State(s): St,
    caller: Caller,
    Path(name): Path<String>,
    q: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Api<(StatusCode, Json<Value>)> {
    caller.require(Permission::Write)?;
    let Query(q) = q?;
    check_filename(&q.filename)?;
    let body = body?;
    if body.is_empty() {
        return Err(ApiError::invalid(
            "the body is empty: send the file's bytes",
        ));
    }
    let r = rag(&s)?;
    let collection = if r.store.exists(&name) {
        owned(r, &caller, &name).await?
    } else {
        create(&s, &caller, &name, None).await?
    };
    let embedder = embedder_for(&s, &collection.meta().embedder).await?;
    let scrubber = scrubber_for(r, collection.meta().pii_policy)?;
    let dir = r.uploads.join(&name);
    let storage = |e: std::io::Error| {
        ApiError::from_kind(
            bear_core::ErrorKind::Storage,
            format!("cannot store the upload: {e}"),
        )
    };
    std::fs::create_dir_all(&dir).map_err(storage)?;
    let path = dir.join(&q.filename);
    let tmp = dir.join(format!(".{}.part", uuid::Uuid::now_v7().simple()));
    tokio::fs::write(&tmp, &body).await.map_err(storage)?;
    tokio::fs::rename(&tmp, &path).await.map_err(storage)?;
    let canonical = path.canonicalize().map_err(storage)?;
    let document_id = bear_rag::ingest::document_id(&canonical);
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
    let pipeline = Pipeline {
        embedder,
        scrubber,
        config: r.config.clone(),
    };
    let state = s.clone();
    let id = job_id.clone();
    tokio::spawn(async move {
        let Some(r) = state.rag.as_ref() else { return };
        let writer = r.writer(&collection.meta().name);
        let _held = writer.lock().await;
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let mut on_progress = move |p: &bear_rag::Progress| {
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(p.clone());
        };
        let result = bear_rag::ingest(
            &collection,
            &pipeline,
            &[canonical],
            &IngestOptions::default(),
            &mut on_progress,
            &CancellationToken::new(),
        )
        .await;
        // New vault tokens are saved even if the ingest failed part-way: stored chunks use them.
        let persisted = r.scrubbers.persist();
        let mut jobs = r.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(job) = jobs.by_id.get_mut(&id) {
            job.events = std::mem::take(&mut *events.lock().unwrap_or_else(|e| e.into_inner()));
            match (result, persisted) {
                (Ok(report), Ok(())) => {
                    job.status = if report.failed.is_empty() {
                        "completed"
                    } else {
                        "failed"
                    };
                    job.report = Some(report);
                }
                (Err(e), _) => {
                    job.status = "failed";
                    job.error = Some(json!({"kind": e.kind().as_str(), "message": e.to_string()}));
                }
                (Ok(report), Err(e)) => {
                    job.status = "failed";
                    job.report = Some(report);
                    job.error = Some(json!({"kind": e.kind().as_str(), "message": e.to_string()}));
                }
            }
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(
            json!({"job_id": job_id, "collection": name, "filename": q.filename,
                    "document_id": document_id, "status": "running"}),
        ),
    ))
}

#[utoipa::path(get, path = "/api/v1/ingest/{job}", tag = "documents", params(("job" = String, Path, description = "The job id from the upload")), responses((status = 200, description = "running, completed or failed, with progress events and the report", body = Object)))]
pub(crate) async fn get_job(
    State(s): St,
    caller: Caller,
    Path(job): Path<String>,
) -> Api<Json<Value>> {
    caller.require(Permission::Read)?;
    let r = rag(&s)?;
    let jobs = r.jobs.lock().unwrap_or_else(|e| e.into_inner());
    let j = jobs
        .by_id
        .get(&job)
        .filter(|j| caller.may_see(j.owner.as_deref()))
        .ok_or_else(|| ApiError::not_found("no such ingest job"))?;
    Ok(Json(serde_json::to_value(j).unwrap_or_default()))
}

#[utoipa::path(get, path = "/api/v1/collections/{name}/documents", tag = "documents", params(("name" = String, Path, description = "The collection")), responses((status = 200, description = "Its documents", body = Vec<Object>)))]
pub(crate) async fn list_documents(
    State(s): St,
    caller: Caller,
    Path(name): Path<String>,
) -> Api<Json<Value>> {
    caller.require(Permission::Read)?;
    let r = rag(&s)?;
    let c = owned(r, &caller, &name).await?;
    let docs = c.documents().await.map_err(rag_err)?;
    Ok(Json(serde_json::to_value(docs).unwrap_or_default()))
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

/// Document `id` of collection `name`, or 404.
async fn document_in(c: &Collection, name: &str, id: &str) -> Api<bear_rag::DocumentRecord> {
    c.document(id)
        .await
        .map_err(rag_err)?
        .ok_or_else(|| ApiError::not_found(format!("no document `{id}` in `{name}`")))
}

#[utoipa::path(get, path = "/api/v1/collections/{name}/documents/{id}", tag = "documents", params(("name" = String, Path, description = "The collection"), ("id" = String, Path, description = "The document id, 32 hex digits")), responses((status = 200, description = "The document record", body = Object)))]
pub(crate) async fn get_document(
    State(s): St,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> Api<Json<Value>> {
    caller.require(Permission::Read)?;
    check_doc_id(&id)?;
    let r = rag(&s)?;
    let c = owned(r, &caller, &name).await?;
    let d = document_in(&c, &name, &id).await?;
    Ok(Json(serde_json::to_value(d).unwrap_or_default()))
}

/// Deletes the document's chunks and row, and the uploaded file if it came through the API.
#[utoipa::path(delete, path = "/api/v1/collections/{name}/documents/{id}", tag = "documents", params(("name" = String, Path, description = "The collection"), ("id" = String, Path, description = "The document id, 32 hex digits")), responses((status = 200, description = "Removed with its chunks and uploaded file", body = Object)))]
pub(crate) async fn remove_document(
    State(s): St,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> Api<Json<Value>> {
    caller.require(Permission::Write)?;
    check_doc_id(&id)?;
    let r = rag(&s)?;
    let c = owned(r, &caller, &name).await?;
    let writer = r.writer(&name);
    let _held = writer.lock().await;
    let d = document_in(&c, &name, &id).await?;
    c.delete_documents(std::slice::from_ref(&id))
        .await
        .map_err(rag_err)?;
    let file = PathBuf::from(&d.path);
    if let Ok(uploads) = r.uploads.join(&name).canonicalize()
        && file.parent() == Some(uploads.as_path())
    {
        let _ = std::fs::remove_file(&file);
    }
    Ok(Json(json!({"id": id, "status": "removed"})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchBody {
    query: String,
    collection: String,
    #[serde(default)]
    k: Option<usize>,
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "hybrid")]
    mode: Option<SearchMode>,
    #[serde(default)]
    document: Option<String>,
    #[serde(default)]
    modified_after: Option<i64>,
    #[serde(default)]
    modified_before: Option<i64>,
}

/// `POST /api/v1/search`: hybrid (default), vector, exact (every vector compared) or full-text
/// search in one collection.
#[utoipa::path(post, path = "/api/v1/search", tag = "documents", request_body = SearchBody, responses((status = 200, description = "Hits with scores, pages and texts", body = Object)))]
pub(crate) async fn search(
    State(s): St,
    caller: Caller,
    Body(b): Body<SearchBody>,
) -> Api<Json<Value>> {
    caller.require(Permission::Read)?;
    let r = rag(&s)?;
    let c = owned(r, &caller, &b.collection).await?;
    let k = b.k.unwrap_or(r.config.top_k);
    if !(1..=100).contains(&k) {
        return Err(ApiError::invalid("k: from 1 to 100"));
    }
    let embedder = embedder_for(&s, &c.meta().embedder).await?;
    let scrubber = scrubber_for(r, c.meta().pii_policy)?;
    let retriever = bear_rag::RagRetriever::new(r.store.clone(), embedder, scrubber.clone());
    let filter = Filter {
        document: b.document,
        modified_after: b.modified_after,
        modified_before: b.modified_before,
    };
    let mut hits = retriever
        .search(&c, &b.query, b.mode.unwrap_or_default(), k, &filter)
        .await
        .map_err(rag_err)?;
    for h in &mut hits {
        h.text = scrubber.restore(&h.text)?;
    }
    Ok(Json(json!({"collection": b.collection, "hits": hits})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AskBody {
    question: String,
    collection: String,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    k: Option<usize>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    stream: bool,
}

/// `POST /api/v1/ask`: a cited answer from one collection. `"stream": true` answers with SSE:
/// `token` events (`{"text"}`), then one `done` event with the whole answer, its numbered
/// `sources` and the markers it `cited`.
#[utoipa::path(post, path = "/api/v1/ask", tag = "documents", request_body = AskBody, responses((status = 200, description = "A cited answer; with stream, SSE `token` events and one `done` event", content((Object = "application/json"), (String = "text/event-stream")))))]
pub(crate) async fn ask(State(s): St, caller: Caller, Body(b): Body<AskBody>) -> Api<Response> {
    caller.require(Permission::Read)?;
    let r = rag(&s)?;
    let c = owned(r, &caller, &b.collection).await?;
    let k = b.k.unwrap_or(r.config.top_k);
    if !(1..=50).contains(&k) {
        return Err(ApiError::invalid("k: from 1 to 50"));
    }
    let model = match &b.model {
        Some(m) => ModelId::new(m).map_err(|e| ApiError::invalid(format!("model: {e}")))?,
        None => r.default_generator.clone(),
    };
    let params = SamplingParams {
        max_tokens: check_max_tokens(b.max_tokens.or(Some(256)))?,
        temperature: b.temperature.unwrap_or(0.0),
        ..SamplingParams::default()
    };
    params.validate()?;
    let embedder = embedder_for(&s, &c.meta().embedder).await?;
    let scrubber = scrubber_for(r, c.meta().pii_policy)?;
    let generator = crate::models::manager(&s)?.clone();
    let options = bear_rag::AskOptions {
        model: model.clone(),
        params,
        k,
        context_tokens: r.context_tokens,
        min_similarity: r.config.min_similarity,
        filter: Filter::default(),
    };
    let slot = s.queue_slot(&model)?;
    let (tx, rx) = mpsc::unbounded_channel::<Piece<bear_rag::Result<bear_rag::Answer>>>();
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    let sink_tx = tx.clone();
    let question = b.question;
    tokio::spawn(async move {
        let sink = Box::new(move |p: &str| sink_tx.send(Piece::Text(p.to_string())).is_ok());
        let result = bear_rag::ask(
            &c,
            embedder.as_ref(),
            scrubber,
            generator.as_ref(),
            &question,
            &options,
            sink,
            token,
        )
        .await;
        drop(slot);
        let _ = tx.send(Piece::Done(result));
    });
    if !b.stream {
        let answer = collect(rx, cancel).await?;
        return Ok(Json(answer_json(&answer)).into_response());
    }
    let stream = sse_stream(rx, cancel, |p| match p {
        Piece::Text(t) => vec![
            SseEvent::default()
                .event("token")
                .data(json!({"text": t}).to_string()),
        ],
        Piece::Done(Ok(a)) => vec![
            SseEvent::default()
                .event("done")
                .data(answer_json(&a).to_string()),
        ],
        Piece::Done(Err(e)) => vec![error_event(&e.into())],
    });
    Ok(Sse::new(stream).into_response())
}

fn answer_json(a: &bear_rag::Answer) -> Value {
    let sources: Vec<Value> = a
        .sources
        .iter()
        .enumerate()
        .map(|(i, h)| {
            json!({"marker": i + 1, "citation": bear_rag::answer::citation(h),
                   "document_id": h.document_id, "title": h.title, "page": h.page,
                   "text": h.text, "score": h.score, "cited": a.cited.contains(&(i + 1))})
        })
        .collect();
    let mut v = json!({
        "answer": a.text, "sources": sources, "cited": a.cited, "relevant": a.relevant,
        "prompt_tokens": a.prompt_tokens, "completion_tokens": a.completion_tokens,
        "time_to_first_token_ms": a.time_to_first_token_ms, "elapsed_ms": a.elapsed_ms,
    });
    if let Some(f) = a.finish_reason {
        v["finish_reason"] = serde_json::to_value(f).unwrap_or_default();
    }
    v
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
