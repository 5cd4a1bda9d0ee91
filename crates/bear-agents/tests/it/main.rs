//! Integration tests for bear-agents.
//!
//! Scheduling, retry, timeout and cancel semantics use deterministic tools defined here (the
//! one place a fake belongs: the behaviour under test is the scheduler's). Everything else is
//! real: SQLite files, a PostgreSQL server started by the test, SmolLM2 through llama.cpp, bear-security's scrubber, files in temp dirs.

mod definition;
mod engine;
mod models;
mod persistence;
mod pg;
mod shared;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bear_agents::{Backends, Engine, EngineConfig, MemoryStore, Registry, Workflow};
use bear_core::{
    CancellationToken, Error as CoreError, ErrorKind, EventBus, Tool, ToolSpec, WorkflowStateStore,
};
use futures::future::BoxFuture;
use serde_json::{Value, json};

type Body =
    dyn Fn(Value, CancellationToken) -> BoxFuture<'static, bear_core::Result<Value>> + Send + Sync;

/// A tool whose behaviour is a closure.
pub(crate) struct FnTool {
    spec: ToolSpec,
    body: Box<Body>,
}

#[async_trait::async_trait]
impl Tool for FnTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    async fn call(&self, input: Value, cancel: CancellationToken) -> bear_core::Result<Value> {
        (self.body)(input, cancel).await
    }
}

pub(crate) fn tool<F, Fut>(name: &str, f: F) -> (String, Arc<dyn Tool>)
where
    F: Fn(Value, CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bear_core::Result<Value>> + Send + 'static,
{
    tool_with_schema(name, json!({"type": "object"}), f)
}

pub(crate) fn tool_with_schema<F, Fut>(name: &str, schema: Value, f: F) -> (String, Arc<dyn Tool>)
where
    F: Fn(Value, CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bear_core::Result<Value>> + Send + 'static,
{
    let spec = ToolSpec {
        name: name.into(),
        description: format!("test tool {name}"),
        input_schema: schema,
        output_schema: json!({}),
    };
    let body: Box<Body> = Box::new(move |v, c| Box::pin(f(v, c)));
    (name.to_string(), Arc::new(FnTool { spec, body }))
}

/// A shared, ordered log of what tools saw.
#[derive(Clone, Default)]
pub(crate) struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub(crate) fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }
    pub(crate) fn items(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Tools every engine test can use: `echo` (returns its input), `sleep` (`ms`, cancellable),
/// `hang` (never returns unless cancelled), `fail` (always fails), `panic`, `bad_json`, `big`.
pub(crate) fn standard_tools(log: &Log) -> BTreeMap<String, Arc<dyn Tool>> {
    let l = log.clone();
    let mut tools: BTreeMap<String, Arc<dyn Tool>> = BTreeMap::new();
    let mut add = |(n, t): (String, Arc<dyn Tool>)| {
        tools.insert(n, t);
    };
    add(tool("echo", move |v, _| {
        let l = l.clone();
        async move {
            if let Some(id) = v.get("id").and_then(Value::as_str) {
                l.push(format!("start {id}"));
                tokio::task::yield_now().await;
                l.push(format!("end {id}"));
            }
            Ok(v)
        }
    }));
    add(tool("sleep", |v, cancel: CancellationToken| async move {
        let ms = v.get("ms").and_then(Value::as_u64).unwrap_or(50);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ms)) => Ok(json!({"slept": ms})),
            _ = cancel.cancelled() => Err(CoreError::backend(ErrorKind::Cancelled, "cancelled")),
        }
    }));
    add(tool("hang", |_, _| async move {
        futures::future::pending::<()>().await;
        Ok(Value::Null)
    }));
    add(tool("fail", |_, _| async move {
        Err(CoreError::backend(
            ErrorKind::Unavailable,
            "the test tool fails",
        ))
    }));
    add(tool("panic", |_, _| async move {
        if std::hint::black_box(true) {
            panic!("the test tool panics");
        }
        Ok(Value::Null)
    }));
    add(tool("bad_json", |_, _| async move {
        // What bear-plugins reports when a plugin's output is not JSON.
        Err(CoreError::backend(
            ErrorKind::Sandbox,
            "plugin output is not valid JSON",
        ))
    }));
    add(tool("big", |v, _| async move {
        let n = v.get("bytes").and_then(Value::as_u64).unwrap_or(10_000) as usize;
        Ok(Value::String("x".repeat(n)))
    }));
    tools
}

/// An engine over `store` with the standard tools, fast backoff and ticks.
pub(crate) fn engine_with(
    store: Arc<dyn WorkflowStateStore>,
    log: &Log,
    config: EngineConfig,
) -> Engine {
    let backends = Backends {
        tools: standard_tools(log),
        files_root: None,
        ..Backends::default()
    };
    Engine::new(
        store,
        Registry::with_default_agents(),
        backends,
        EventBus::new(4096),
        config,
    )
}

pub(crate) fn fast_config() -> EngineConfig {
    EngineConfig {
        backoff_base: Duration::from_millis(20),
        tick: Duration::from_millis(20),
        stale_after: Duration::from_millis(300),
        cancel_grace: Duration::from_millis(200),
        ..EngineConfig::default()
    }
}

pub(crate) fn memory_engine(log: &Log) -> Engine {
    engine_with(Arc::new(MemoryStore::new()), log, fast_config())
}

pub(crate) fn workflow(v: Value) -> Workflow {
    serde_json::from_value(v).expect("test workflow parses")
}
