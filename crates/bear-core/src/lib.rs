//! bear-core: the vocabulary every other BEAR crate programs against.
//!
//! Layer **L0**. It holds identifiers ([`id`]), the error conventions ([`error`]), configuration
//! ([`config`]), the event type and bus ([`event`]), and the backend traits: [`TextGenerator`],
//! [`Embedder`], [`Ocr`], [`Tool`], [`PiiScrubber`], [`Retriever`] and [`WorkflowStateStore`].
//!
//! ```text
//!   L4  bear-api  bear-cli            (wire concrete backends together)
//!   L3  bear-agents                   (uses only the traits below)
//!   L2  bear-models bear-rag bear-plugins
//!   L1  bear-hw bear-security
//!   L0  bear-core  <- you are here: no workspace dependencies
//! ```
//!
//! Invariants, stated as absences:
//! - bear-core does no IO: it never opens a file, a socket or a process. Configuration is parsed
//!   from text the caller read, and directories are resolved from an environment the caller passes.
//! - bear-core starts no runtime and spawns no thread.
//! - No type here prints user text, prompts, PII or key material through `Debug` or `Display`;
//!   such values travel in [`error::Redacted`] when they must sit inside an error.

pub mod assets;
pub mod config;
pub mod error;
pub mod event;
pub mod generation;
pub mod id;
pub mod ocr;
pub mod pii;
pub mod retrieval;
pub mod tool;
pub mod workflow;

pub use config::{
    Config, Dirs, PiiConfig, PluginsConfig, RagConfig, SecurityConfig, StorageConfig,
    WorkflowsConfig,
};
pub use error::{Error, ErrorKind, Redacted, Result};
pub use event::{Event, EventBus};
pub use generation::{
    ChatMessage, ChatRole, FinishReason, FunctionSpec, Generation, GenerationRequest,
    MAX_JSON_SCHEMA_BYTES, MAX_TOP_LOGPROBS, Prompt, SamplingParams, TextGenerator, TokenLogprob,
    TokenSink, ToolCall,
};
pub use id::{
    AgentId, CollectionId, DocumentId, ModelId, PluginId, RequestId, RunId, StepId, WorkflowId,
};
pub use ocr::{LOW_OCR_CONFIDENCE, Ocr, OcrPage, OcrWord, PageImage};
pub use pii::{
    CustomPattern, DenyList, InvalidUtf8, PiiEntity, PiiPolicy, PiiScrubber, RiskLevel,
    ScrubOutcome,
};
pub use retrieval::{Embedder, EmbedderRuntime, RetrievalQuery, RetrievedChunk, Retriever};
pub use tokio_util::sync::CancellationToken;
pub use tool::{Tool, ToolSpec};
pub use workflow::{RunControl, RunRecord, RunStatus, StepRecord, StepStatus, WorkflowStateStore};
