//! Workflow engines as the configuration asks for them, built once here for `bear workflow`
//! and bear-server alike: the backends a run's steps use (the model manager, the retriever
//! over the default collection, a `replace` scrubber, the plugin tools named `plugin.tool`),
//! each built only when a workflow needs it, and the engine over a run store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bear_agents::{Backends, Engine, EngineConfig, Needs, Registry};
use bear_core::{EventBus, ModelId, PiiPolicy, Tool, WorkflowStateStore};

use crate::{App, LoadedConfig, Result};

/// Every backend: what a server offers every workflow it may be sent.
pub const EVERYTHING: Needs = Needs {
    generator: true,
    scrubber: true,
    retriever: true,
    tools: true,
};

/// The names (`plugin.tool`) of the tools of every valid plugin in the plugin directories,
/// without loading any: enough to validate a definition.
pub fn tool_names(loaded: &LoadedConfig) -> BTreeSet<String> {
    bear_plugins::discover(&loaded.config.plugins.search_dirs(&loaded.dirs))
        .into_iter()
        .filter_map(|d| d.manifest.map(|m| (d.name, m)))
        .flat_map(|(plugin, m)| {
            m.tools
                .into_iter()
                .map(move |t| format!("{plugin}.{}", t.name))
        })
        .collect()
}

/// The tools of the plugins in `registry`, named `plugin.tool`.
pub fn tools_of(registry: &bear_plugins::Registry) -> BTreeMap<String, Arc<dyn Tool>> {
    let mut tools: BTreeMap<String, Arc<dyn Tool>> = BTreeMap::new();
    for (name, _) in registry.list() {
        if let Some(p) = registry.get(&name) {
            for t in bear_plugins::WasmtimeTool::all(&p) {
                tools.insert(format!("{name}.{}", t.spec().name), Arc::new(t));
            }
        }
    }
    tools
}

impl App {
    /// The backends for workflows that need `needs`; only those are built. Steps get a
    /// `replace` scrubber (`[PERSON_1]`), never reversible tokens: their outputs are stored in
    /// the run database. Tools come from `plugins` when the caller has loaded them, else from
    /// every plugin that loads (one that does not is logged and left out).
    pub async fn workflow_backends(
        &self,
        needs: &Needs,
        plugins: Option<&bear_plugins::Registry>,
    ) -> Result<Backends> {
        let loaded = self.config();
        let mut backends = Backends {
            default_model: Some(ModelId::new(&loaded.config.models.default_generator)?),
            files_root: loaded.config.workflows.files_root.clone(),
            ..Backends::default()
        };
        if needs.generator {
            backends.generator = Some(self.models().clone());
        }
        if needs.scrubber {
            backends.scrubber = Some(self.scrubber_for(PiiPolicy::Replace)?);
        }
        if needs.retriever {
            let embedder = self
                .embedder(&loaded.config.models.default_embedder)
                .await?;
            backends.retriever = Some(Arc::new(bear_rag::RagRetriever::new(
                self.store().clone(),
                embedder,
                self.scrubber_for(loaded.config.rag.pii_policy)?,
            )));
        }
        if needs.tools {
            backends.tools = match plugins {
                Some(registry) => tools_of(registry),
                None => {
                    let (registry, warnings) = crate::plugins::load_all(loaded)?;
                    for w in warnings {
                        tracing::warn!("not available to workflows: {w}");
                    }
                    tools_of(&registry)
                }
            };
        }
        Ok(backends)
    }
}

/// The workflow engine of `[workflows]` over `store`, with the default agents.
pub fn engine(
    loaded: &LoadedConfig,
    store: Arc<dyn WorkflowStateStore>,
    backends: Backends,
    bus: EventBus,
) -> Engine {
    Engine::new(
        store,
        Registry::with_default_agents(),
        backends,
        bus,
        EngineConfig::from_config(&loaded.config.workflows),
    )
}
