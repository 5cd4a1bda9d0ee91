//! The wire shapes, pinned: one example of each request and response type, as JSON, in insta
//! snapshots (`tests/it/snapshots/`). A changed field name, type or optionality shows up here
//! before a client of the REST API or of `bear --json` meets it.

use bear_app::docs::{CollectionView, CreateCollection, DocumentView, Removed};
use bear_app::embed::{EmbedRequest, EmbedResponse};
use bear_app::generate::{GenerateRequest, GenerateResponse, Timings};
use bear_app::pii::{DetectRequest, DetectResponse, PiiFinding, Risk, ScrubRequest, ScrubResponse};
use bear_app::rag::{
    AskRequest, AskResponse, Citation, Finish, Mode, SearchHit, SearchRequest, SearchResponse,
    Source, Span,
};
use bear_app::{Error, ErrorBody};
use bear_core::PiiPolicy;

fn hit() -> SearchHit {
    SearchHit {
        chunk_id: "c0ffee00c0ffee00c0ffee00c0ffee00-3".into(),
        document_id: "c0ffee00c0ffee00c0ffee00c0ffee00".into(),
        path: "/matters/acme/lease.pdf".into(),
        title: "Commercial Lease Agreement".into(),
        page: Some(3),
        ordinal: 3,
        byte_range: [1200, 1850],
        char_range: [1190, 1836],
        citation: "Commercial Lease Agreement (lease.pdf), p. 3".into(),
        ocr_confidence: None,
        text: "Either party may terminate the lease with six months' notice.".into(),
        score: 0.5,
    }
}

#[test]
fn search_shapes() {
    let req = SearchRequest {
        query: "notice to terminate".into(),
        k: Some(3),
        mode: Some(Mode::Hybrid),
        collection: Some("acme".into()),
        document: None,
        after: Some("2024-01-01".into()),
        before: None,
        mail: None,
    };
    insta::assert_json_snapshot!("search_request", req);
    let resp = SearchResponse {
        collection: "acme".into(),
        mode: Mode::Hybrid,
        hits: vec![hit()],
    };
    insta::assert_json_snapshot!("search_response", resp);
}

#[test]
fn ask_shapes() {
    let req = AskRequest {
        question: "How much notice ends the lease?".into(),
        k: Some(3),
        collection: Some("acme".into()),
        max_tokens: Some(64),
        ..AskRequest::default()
    };
    insta::assert_json_snapshot!("ask_request", req);
    let resp = AskResponse {
        answer: "Six months' notice [1].".into(),
        sources: vec![Source {
            marker: 1,
            cited: true,
            verified: true,
            collection: Some("acme".into()),
            hit: hit(),
        }],
        cited: vec![1],
        citations: vec![Citation {
            marker: 1,
            sentence: [0, 23],
            verified: true,
            added: false,
            span: Some(Span {
                document_id: "0123456789abcdef0123456789abcdef".into(),
                page: Some(3),
                text: "six months' written notice".into(),
                source_bytes: [60, 86],
                source_chars: [60, 86],
                document_bytes: Some([1260, 1286]),
                document_chars: Some([1250, 1276]),
            }),
            reason: None,
        }],
        strict: true,
        removed_sentences: 1,
        unsupported_sentences: Vec::new(),
        refusal: None,
        relevant: true,
        prompt_tokens: 300,
        completion_tokens: 8,
        time_to_first_token_ms: Some(400),
        elapsed_ms: 900,
        verification_us: 350,
        finish_reason: Some(Finish::Stop),
    };
    insta::assert_json_snapshot!("ask_response", resp);
}

#[test]
fn review_shapes() {
    use bear_app::review::{ReviewMode, ReviewRequest, ReviewResponse, ReviewTask};
    let req = ReviewRequest {
        document: "0123456789abcdef0123456789abcdef".into(),
        task: ReviewTask::Custom,
        instruction: Some("List every notice address.".into()),
        section_tokens: Some(1500),
        ..ReviewRequest::default()
    };
    insta::assert_json_snapshot!("review_request", req);
    let resp = ReviewResponse {
        collection: "acme".into(),
        document_id: "0123456789abcdef0123456789abcdef".into(),
        path: "/matters/acme/lease.pdf".into(),
        task: ReviewTask::Deadlines,
        mode: ReviewMode::MapReduce,
        sections: 3,
        run_id: Some("run-0123456789abcdef0123456789abcdef".into()),
        status: bear_core::RunStatus::Completed,
        progress: bear_app::workflows::RunCount {
            completed: 5,
            total: 5,
        },
        text: "Notice is due six months ahead [3].".into(),
        citations: vec![Citation {
            marker: 3,
            sentence: [0, 35],
            verified: true,
            added: false,
            span: None,
            reason: None,
        }],
        strict: true,
        removed_sentences: 2,
        unsupported_sentences: Vec::new(),
        nothing_verified: false,
        finish_reason: Some(Finish::Stop),
        verification_us: 120,
        error: None,
    };
    insta::assert_json_snapshot!("review_response", resp);
}

#[test]
fn grid_shapes() {
    use bear_app::grid::{Cell, Column, Grid, GridRequest};
    let req = GridRequest {
        collection: Some("acme".into()),
        questions: vec!["What is the monthly rent?".into()],
        ..GridRequest::default()
    };
    insta::assert_json_snapshot!("grid_request", req);
    let grid = Grid {
        collection: "acme".into(),
        columns: vec![Column {
            key: "q1".into(),
            label: "What is the monthly rent?".into(),
        }],
        rows: vec![bear_app::grid::Row {
            document_id: "0123456789abcdef0123456789abcdef".into(),
            path: "/matters/acme/lease.pdf".into(),
            cells: vec![Cell {
                value: serde_json::json!("EUR 4,250 per month [1]."),
                verified: true,
                page: Some(2),
                quote: Some("The rent is EUR 4,250 per month".into()),
                reason: None,
            }],
            error: None,
        }],
    };
    insta::assert_json_snapshot!("grid", grid);
}

#[test]
fn generate_shapes() {
    let req = GenerateRequest {
        prompt: "Name one colour.".into(),
        max_tokens: Some(12),
        temperature: Some(0.0),
        stop_sequences: vec!["###".into()],
        ..GenerateRequest::default()
    };
    insta::assert_json_snapshot!("generate_request", req);
    let resp = GenerateResponse {
        model: "SmolLM2-135M-Instruct.Q4_1".into(),
        text: "Blue.".into(),
        tokens_used: 20,
        prompt_tokens: 17,
        completion_tokens: 3,
        generation_time: 0.25,
        finish_reason: Finish::Stop,
        chat_template: true,
        tokens_per_second: 12.0,
        timings: Some(Timings {
            prompt_tokens: 17,
            prompt_seconds: 0.125,
            generated_tokens: 3,
            generation_seconds: 0.125,
            decode_seconds: 0.0625,
        }),
    };
    insta::assert_json_snapshot!("generate_response", resp);
}

#[test]
fn pii_shapes() {
    insta::assert_json_snapshot!(
        "detect_request",
        DetectRequest {
            text: "Mail jan@example.nl".into(),
            show_values: false,
        }
    );
    let finding = PiiFinding {
        entity: "EMAIL".into(),
        start: 5,
        end: 19,
        char_start: 5,
        char_end: 19,
        line: 1,
        column: 6,
        score: 0.75,
        recognizer: "email".into(),
        value: None,
    };
    let detected = DetectResponse {
        findings: vec![finding],
        counts: [("EMAIL".to_string(), 1)].into_iter().collect(),
        risk: Risk::Medium,
    };
    insta::assert_json_snapshot!("detect_response", detected);
    insta::assert_json_snapshot!(
        "scrub_request",
        ScrubRequest {
            text: "Mail jan@example.nl".into(),
            policy: None,
        }
    );
    insta::assert_json_snapshot!(
        "restore_request",
        bear_app::pii::RestoreRequest {
            text: "Mail [EMAIL_1a2b3c4d]".into(),
        }
    );
    insta::assert_json_snapshot!(
        "restore_response",
        bear_app::pii::RestoreResponse {
            text: "Mail jan@example.nl".into(),
        }
    );
    let scrubbed = ScrubResponse {
        text: "Mail [EMAIL_1]".into(),
        counts: [("EMAIL".to_string(), 1)].into_iter().collect(),
        risk: Risk::Medium,
    };
    insta::assert_json_snapshot!("scrub_response", scrubbed);
}

#[test]
fn collection_and_document_shapes() {
    insta::assert_json_snapshot!(
        "create_collection",
        CreateCollection {
            name: "acme".into(),
            pii_policy: Some(PiiPolicy::Tokenize),
        }
    );
    let view = CollectionView {
        name: "acme".into(),
        pii_policy: PiiPolicy::Tokenize,
        embedder: "all-MiniLM-L6-v2".into(),
        dimension: 384,
        created_at: 1_700_000_000,
        documents: 13,
        chunks: 40,
        sealed: true,
        embedder_runtime: Some("onnxruntime 1.22.0 (all-MiniLM-L6-v2-fused/model.onnx)".into()),
    };
    insta::assert_json_snapshot!("collection_view", view);
    let doc = DocumentView {
        id: "c0ffee00c0ffee00c0ffee00c0ffee00".into(),
        path: "/matters/acme/lease.pdf".into(),
        title: "Commercial Lease Agreement".into(),
        author: None,
        created: Some("2024-03-01".into()),
        modified: None,
        file_modified: 1_700_000_000,
        page_count: Some(4),
        mime: "application/pdf".into(),
        sha256: "ab".repeat(32),
        size: 20_000,
        chunks: 9,
        ingested_at: 1_700_000_100,
        mail: None,
    };
    insta::assert_json_snapshot!("document_view", doc);
    let removed = Removed {
        id: "c0ffee00c0ffee00c0ffee00c0ffee00".into(),
        path: Some("/matters/acme/lease.pdf".into()),
        status: "removed".into(),
    };
    insta::assert_json_snapshot!("removed", removed);
}

#[test]
fn embed_and_error_shapes() {
    insta::assert_json_snapshot!(
        "embed_request",
        EmbedRequest {
            model: None,
            texts: vec!["indemnity".into()],
        }
    );
    insta::assert_json_snapshot!(
        "embed_response",
        EmbedResponse {
            model: "all-MiniLM-L6-v2".into(),
            dimension: 2,
            embeddings: vec![vec![0.6, 0.8]],
        }
    );
    let body: ErrorBody = Error::invalid("k", "from 1 to 100").body();
    insta::assert_json_snapshot!("error_body", body);
}

#[test]
fn model_shapes() {
    let row = bear_app::models::ModelRow {
        id: "SmolLM2-135M-Instruct.Q4_1".into(),
        name: "SmolLM2-135M-Instruct.Q4_1".into(),
        size: 98_000_000,
        status: "loaded".into(),
        pinned: true,
        kind: "gguf".into(),
        meta: bear_models::ModelMeta {
            architecture: Some("llama".into()),
            parameter_count: Some(134_515_008),
            quantization: Some("q4_1".into()),
            context_length: Some(8192),
            has_chat_template: true,
            kv_shape: None,
        },
        performance_metrics: bear_models::ModelMetrics::default(),
        embedder_path: None,
    };
    insta::assert_json_snapshot!("model_row", row);
    let req = bear_app::models::ManageRequest {
        action: bear_app::models::ModelAction::Load,
        model_id: "all-MiniLM-L6-v2".into(),
        config: bear_app::models::ManageConfig { pin: true },
    };
    insta::assert_json_snapshot!("manage_request", req);
    let result = bear_app::models::ManageResult {
        model_id: "all-MiniLM-L6-v2".into(),
        status: "loaded".into(),
        pinned: true,
        message: "loaded and pinned: it stays resident until unloaded".into(),
    };
    insta::assert_json_snapshot!("manage_result", result);
}

#[test]
fn control_shapes() {
    use bear_app::control::{Reply, Request, RunAction, RunDone, RunRequest};
    let requests = vec![
        Request::Models(bear_app::models::ModelsQuery::default()),
        Request::Workflow(RunRequest {
            run: "0123456789abcdef".into(),
            action: RunAction::Pause,
        }),
        Request::KeysChanged,
    ];
    insta::assert_json_snapshot!("control_requests", requests);
    let replies = vec![
        Reply::Workflow(RunDone {
            id: "0123456789abcdef".into(),
            result: "pause requested".into(),
        }),
        Reply::Keys(3),
        Reply::Error(
            Error::invalid("model_id", "model `x` is not loaded")
                .body()
                .error,
        ),
    ];
    insta::assert_json_snapshot!("control_replies", replies);
}

#[test]
fn plugin_shapes() {
    let text = format!(
        r#"
name = "wordcount"
version = "1.0.0"
description = "Counts words"
wasm = "wordcount.wasm"
sha256 = "{}"

[capabilities]
memory_mb = 16
time_ms = 1000
max_output_kb = 64

[[tools]]
name = "count"
description = "Counts the words of a text"
input_schema = {{ type = "object", properties = {{ text = {{ type = "string" }} }}, required = ["text"] }}
output_schema = {{ type = "object", properties = {{ words = {{ type = "integer" }} }} }}
"#,
        "0".repeat(64)
    );
    let manifest =
        bear_plugins::Manifest::parse(&text, std::path::Path::new("plugin.toml")).unwrap();
    insta::assert_json_snapshot!("plugin_view", bear_app::plugins::PluginView::of(&manifest));
    let run = bear_app::plugins::ToolRun::from(bear_plugins::CallOutput {
        output: serde_json::json!({"words": 3}),
        logs: vec![bear_plugins::PluginLog {
            level: "info".into(),
            message: "counted".into(),
        }],
        logs_dropped: 0,
    });
    insta::assert_json_snapshot!("tool_run", run);
}

#[test]
fn agent_shape() {
    // The first default agent, as a fresh engine has it: idle, no metrics yet.
    let registry = bear_agents::Registry::with_default_agents();
    let agents = bear_app::agents::list(&registry, &bear_app::agents::AgentsQuery::default());
    insta::assert_json_snapshot!("agent_view", agents[0]);
}

#[test]
fn workflow_shapes() {
    use bear_app::workflows::{RunCount, StepsProgress, WorkflowRow, WorkflowStatus};
    let row = WorkflowRow {
        id: "0123456789abcdef".into(),
        name: "contract review".into(),
        status: bear_core::RunStatus::Completed,
        interrupted: false,
        created_at: bear_app::workflows::rfc3339_ms(1_764_700_000_000),
        progress: RunCount {
            completed: 3,
            total: 3,
        },
    };
    insta::assert_json_snapshot!("workflow_row", row);
    let status = WorkflowStatus {
        id: "0123456789abcdef".into(),
        name: "contract review".into(),
        status: bear_core::RunStatus::Completed,
        interrupted: false,
        progress: StepsProgress {
            completed: 0,
            total: 0,
            steps: Vec::new(),
        },
        results: [("summary".to_string(), serde_json::json!("Three clauses."))].into(),
        execution_time: 1.25,
    };
    insta::assert_json_snapshot!("workflow_status", status);
}
