//! The models on this machine and which are in memory: `GET /api/v1/models`, `POST
//! /api/v1/models` and `bear models list|load|unload` (which reach a running bear-server
//! through [`crate::control`]).

use bear_core::{ErrorKind, ModelId};
use bear_models::{ModelMeta, ModelMetrics, ModelStatus};
use serde::{Deserialize, Serialize};

use crate::{App, Error, Result};

/// Which models to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ModelsQuery {
    /// `all` (the default), `loaded`, `available` or `downloading` (BEAR never downloads, so
    /// that list is always empty).
    #[serde(default)]
    #[param(value_type = Option<String>, pattern = "^(all|loaded|available|downloading)$")]
    pub status: Option<String>,
}

/// One model: the seed's fields and what discovery found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelRow {
    /// The model's id (its file or folder name).
    pub id: String,
    /// Its name; BEAR names a model by its id.
    pub name: String,
    /// Bytes on disk.
    pub size: u64,
    /// `loaded` or `available` (BEAR never downloads, so never `downloading`).
    pub status: String,
    /// Kept in memory until unloaded (no keep-alive unload, no eviction).
    pub pinned: bool,
    /// `gguf`, `onnx` or `safetensors`.
    pub kind: String,
    /// What the file's header says (architecture, parameters, quantisation, context).
    #[schema(value_type = Object)]
    pub meta: ModelMeta,
    /// Loads, requests, errors, token rates and the cache hit rate.
    #[schema(value_type = Object)]
    pub performance_metrics: ModelMetrics,
    /// For a safetensors embedder: the runtime it runs (or will run) on, ONNX Runtime over
    /// the fused graph or candle, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub embedder_path: Option<bear_models::EmbedderPath>,
}

/// What `POST /api/v1/models` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelAction {
    /// Load into memory.
    Load,
    /// Unload from memory (and release a pin).
    Unload,
    /// Refused: BEAR is offline and never downloads.
    Download,
}

/// Options of a [`ManageRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManageConfig {
    /// With `load`: keep the model resident (no keep-alive unload, no eviction) until it is
    /// unloaded.
    #[serde(default)]
    pub pin: bool,
}

/// The seed's `POST /api/v1/models` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManageRequest {
    /// What to do.
    pub action: ModelAction,
    /// The model.
    pub model_id: String,
    /// Options.
    #[serde(default)]
    pub config: ManageConfig,
}

/// The model's status after a [`ManageRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ManageResult {
    /// The model.
    pub model_id: String,
    /// `loaded` or `available`.
    pub status: String,
    /// Kept in memory until unloaded.
    pub pinned: bool,
    /// What happened.
    pub message: String,
}

/// Serde's name of a unit enum value, as the wire shows it.
fn wire_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

impl ModelsQuery {
    /// `None` lists every model; `Some(None)` none (downloading); `Some(Some(s))` those in `s`.
    fn wanted(&self) -> Result<Option<Option<ModelStatus>>> {
        Ok(match self.status.as_deref() {
            None | Some("all") => None,
            Some("loaded") => Some(Some(ModelStatus::Loaded)),
            Some("available") => Some(Some(ModelStatus::Available)),
            Some("downloading") => Some(None),
            Some(_) => {
                return Err(Error::invalid(
                    "status",
                    "expected all, loaded, available or downloading",
                ));
            }
        })
    }
}

impl App {
    /// Model `id` as found in the models directory (read from its header, without loading);
    /// not found names the models there are.
    pub fn model_entry(&self, id: &ModelId) -> Result<bear_models::ModelEntry> {
        if let Ok(entry) = self.models().entry(id) {
            return Ok(entry);
        }
        let known: Vec<String> = self
            .models()
            .list()
            .into_iter()
            .map(|m| m.entry.id.to_string())
            .collect();
        Err(Error::Core(bear_core::Error::backend(
            bear_core::ErrorKind::NotFound,
            format!(
                "no model `{id}` in {}; available: {}",
                self.config().dirs.models_dir.display(),
                if known.is_empty() {
                    "none (developers: `cargo xtask models`)".to_string()
                } else {
                    known.join(", ")
                }
            ),
        )))
    }

    /// The models in the models directory, sorted by id, with their status in this process.
    pub fn model_list(&self, query: &ModelsQuery) -> Result<Vec<ModelRow>> {
        let want = query.wanted()?;
        let pinned = self.models().pinned();
        Ok(self
            .models()
            .list()
            .into_iter()
            .filter(|m| want.is_none_or(|w| Some(m.status) == w))
            .map(|m| ModelRow {
                id: m.entry.id.to_string(),
                name: m.entry.id.to_string(),
                size: m.entry.size_bytes,
                status: wire_name(&m.status),
                pinned: pinned.contains(&m.entry.id),
                kind: wire_name(&m.entry.kind),
                meta: m.entry.meta,
                performance_metrics: m.metrics,
                embedder_path: m.embedder_path,
            })
            .collect())
    }

    /// Loads (and with `config.pin` pins) or unloads a model; a load runs on the blocking pool.
    pub async fn manage_model(&self, req: &ManageRequest) -> Result<ManageResult> {
        if req.action == ModelAction::Download {
            return Err(Error::invalid(
                "action",
                "BEAR is offline and never downloads; put the model file in the models \
                 directory (developers: `cargo xtask models`)",
            ));
        }
        let id = ModelId::new(&req.model_id).map_err(|e| not_found(e.to_string()))?;
        self.models().entry(&id)?;
        let (message, pinned) = match req.action {
            ModelAction::Unload => (self.unload_model(&id)?, false),
            _ => self.load_model(&id, req.config.pin).await?,
        };
        let loaded = self.models().resident_ids().contains(&id);
        Ok(ManageResult {
            model_id: id.to_string(),
            status: if loaded { "loaded" } else { "available" }.into(),
            pinned,
            message: message.into(),
        })
    }

    async fn load_model(&self, id: &ModelId, pin: bool) -> Result<(&'static str, bool)> {
        let (models, id) = (self.models().clone(), id.clone());
        let pinned = tokio::task::spawn_blocking(move || {
            if pin {
                models.pin(&id)
            } else {
                models.load(&id)
            }
            .map(|()| models.pinned().contains(&id))
        })
        .await
        .map_err(|_| crate::internal("the model load stopped unexpectedly"))??;
        let message = if pin {
            "loaded and pinned: it stays resident until unloaded"
        } else {
            "loaded"
        };
        Ok((message, pinned))
    }

    fn unload_model(&self, id: &ModelId) -> Result<&'static str> {
        if !self.models().resident_ids().contains(id) {
            return Err(Error::invalid(
                "model_id",
                format!("model `{id}` is not loaded"),
            ));
        }
        if self.models().unpin(id)? {
            return Ok("unloaded");
        }
        Err(Error::Models(bear_models::Error::Unavailable(format!(
            "model `{id}` is in use by a running request; it is no longer pinned and is \
             unloaded once idle for the keep-alive time"
        ))))
    }

    /// Loads and pins `models.preload`, the models a server keeps in memory from its start.
    /// Returns each model that could not be loaded, with why.
    pub async fn preload(&self) -> Vec<(String, Error)> {
        let mut failed = Vec::new();
        for id in self.config().config.models.preload.clone() {
            let req = ManageRequest {
                action: ModelAction::Load,
                model_id: id.clone(),
                config: ManageConfig { pin: true },
            };
            if let Err(e) = self.manage_model(&req).await {
                failed.push((id, e));
            }
        }
        failed
    }
}

fn not_found(message: String) -> Error {
    Error::Core(bear_core::Error::backend(ErrorKind::NotFound, message))
}

/// Loads or unloads a model in the running bear-server, through its control socket, waiting
/// up to `wait`. Without a server: not found for a model that is not installed, else
/// unavailable, saying to start one.
pub fn manage_in_server(
    loaded: &crate::LoadedConfig,
    req: ManageRequest,
    wait: std::time::Duration,
) -> Result<ManageResult> {
    let id = ModelId::new(&req.model_id)?;
    if let Some(done) = crate::control::Client::new(&loaded.dirs.data_dir).manage(req, wait)? {
        return Ok(done);
    }
    let scan = bear_models::scan(std::slice::from_ref(&loaded.dirs.models_dir))?;
    if !scan.models.contains_key(&id) {
        return Err(Error::Core(bear_core::Error::backend(
            ErrorKind::NotFound,
            format!(
                "no model `{id}` in {}; `bear models list` shows what is installed",
                loaded.dirs.models_dir.display()
            ),
        )));
    }
    Err(Error::Core(bear_core::Error::backend(
        ErrorKind::Unavailable,
        format!(
            "no bear-server is running for the data directory {}; start `bear-server` first \
             (to load a model at every start, list it in models.preload)",
            loaded.dirs.data_dir.display()
        ),
    )))
}

/// The models as the user at this machine sees them: `bear models list`.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    /// The models, as `GET /api/v1/models` lists them.
    pub rows: Vec<ModelRow>,
    /// Whether `loaded` is the running bear-server's view (else this process's: none).
    pub from_server: bool,
    /// Files in the models directory that are not models BEAR can load, with the reason.
    pub skipped: Vec<(std::path::PathBuf, String)>,
}

/// The running bear-server's models when one answers within `wait`, else this machine's
/// (all available), with the files discovery skipped.
pub fn listing(
    loaded: &crate::LoadedConfig,
    query: &ModelsQuery,
    wait: std::time::Duration,
    local: impl FnOnce() -> Result<Vec<ModelRow>>,
) -> Result<Listing> {
    let client = crate::control::Client::new(&loaded.dirs.data_dir);
    let (rows, from_server) = match client.models(query.clone(), wait)? {
        Some(rows) => (rows, true),
        None => (local()?, false),
    };
    let scan = bear_models::scan(std::slice::from_ref(&loaded.dirs.models_dir))?;
    let skipped = scan
        .rejected
        .into_iter()
        .map(|r| (r.path, r.reason))
        .collect();
    Ok(Listing {
        rows,
        from_server,
        skipped,
    })
}
