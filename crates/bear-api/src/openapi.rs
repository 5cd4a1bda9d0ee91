//! The OpenAPI 3.1 description, generated from the handlers' `#[utoipa::path]` attributes and
//! the request types (utoipa), served at `/api/v1/openapi.json`. Every operation but
//! `/health` requires a key (`Authorization: Bearer` or `X-Api-Key`), and every error is the
//! structured [`ErrorBody`](bear_app::ErrorBody).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use bear_security::access::Permission;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, ResponseBuilder, SecurityRequirement};
use utoipa::{Modify, OpenApi};

use crate::AppState;
use crate::error::ApiError;
use crate::gateway::Caller;
use crate::{admin, chats, docs, metrics, models, openai, openai_chat, plugins, routes, session};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "BEAR API",
        description = "BEAR's REST API: workflows, agents, models, documents, search and ask, \
                       PII, plugins; OpenAI-compatible routes under /v1. Local only: nothing \
                       here opens an outgoing connection."
    ),
    paths(
        routes::health, routes::hw, routes::pii_detect, routes::pii_scrub, routes::pii_restore,
        routes::create_workflow, routes::list_workflows, routes::get_workflow,
        routes::cancel_workflow, routes::pause_workflow, routes::resume_workflow,
        routes::watch_workflow, routes::list_agents, routes::get_agent, routes::create_agent,
        routes::remove_agent,
        models::list, models::manage, models::generate, openai::openai_models,
        openai_chat::chat_completions, openai::completions, openai::embeddings,
        docs::list_collections, docs::create_collection, docs::get_collection,
        docs::remove_collection, docs::list_documents, docs::upload, docs::get_document,
        docs::get_document_text, docs::get_document_file,
        docs::list_history, docs::get_history, docs::remove_history,
        docs::remove_document, docs::get_job, docs::search, docs::ask, docs::extract,
        docs::review, docs::get_review, docs::grid, docs::redact,
        plugins::list, plugins::invoke,
        chats::list, chats::create, chats::open, chats::replace, chats::remove,
        session::sign_in, session::current, session::sign_out,
        admin::list_keys, admin::create_key, admin::revoke_key, admin::verify_audit,
        metrics::serve, serve,
    ),
    components(schemas(
        bear_app::ErrorBody,
        bear_app::ErrorDetail,
        openai::OpenAiErrorBody,
        openai::OpenAiError
    )),
    modifiers(&Gateway)
)]
struct ApiDoc;

/// Adds the key schemes, a key requirement on every operation but `/health`, and the
/// structured error responses.
struct Gateway;

impl Modify for Gateway {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))),
        );
        let error = |what: &str, shape: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(what)
                    .content(
                        "application/json",
                        utoipa::openapi::ContentBuilder::new()
                            .schema(Some(utoipa::openapi::Ref::from_schema_name(shape)))
                            .build(),
                    )
                    .build(),
            )
        };
        for (path, item) in api.paths.paths.iter_mut() {
            // The OpenAI-compatible routes answer errors in OpenAI's shape.
            let shape = match path.starts_with("/v1/") {
                true => "OpenAiErrorBody",
                false => "ErrorBody",
            };
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                op.responses.responses.insert(
                    "4XX".into(),
                    error(
                        "A structured error: 400/422 invalid (with the field path), 401 no \
                           or bad key, 403 role, 404 unknown or not yours, 413 too large, 429 \
                           rate limited (Retry-After)",
                        shape,
                    ),
                );
                op.responses.responses.insert(
                    "5XX".into(),
                    error(
                        "A structured error: 503 unavailable or queue full, 500 internal",
                        shape,
                    ),
                );
                if path != "/health" {
                    op.security = Some(vec![
                        SecurityRequirement::new("bearer", Vec::<String>::new()),
                        SecurityRequirement::new("api_key", Vec::<String>::new()),
                    ]);
                }
            }
        }
    }
}

/// The description as a value.
pub fn spec() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The top of an OpenAPI 3.1 document (what `/api/v1/openapi.json` answers); its parts are
/// defined by the OpenAPI specification itself.
pub(crate) struct OpenApiDocument;

impl utoipa::PartialSchema for OpenApiDocument {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let object = |what: &str| {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .description(Some(what))
        };
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("An OpenAPI 3.1 document"))
            .property(
                "openapi",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("`3.1.0`")),
            )
            .property("info", object("Title and version"))
            .property("paths", object("Every route, by path and method"))
            .property(
                "components",
                object("The named schemas and security schemes"),
            )
            .required("openapi")
            .required("info")
            .required("paths")
            .into()
    }
}

impl utoipa::ToSchema for OpenApiDocument {}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "system", responses((status = 200, description = "The OpenAPI 3.1 description", body = OpenApiDocument)))]
pub(crate) async fn serve(
    State(s): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<utoipa::openapi::OpenApi>, ApiError> {
    caller.require(Permission::Read)?;
    let _ = &s;
    Ok(Json(spec()))
}
