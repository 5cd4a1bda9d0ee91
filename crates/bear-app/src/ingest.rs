//! Ingest: files into a collection (created on first use, owned by the caller), through the
//! collection's own embedder and PII policy, with new vault tokens saved and the run audited.
//! `bear ingest` and an upload's background job both come here.

use std::path::PathBuf;
use std::sync::Arc;

use bear_core::{CancellationToken, PiiPolicy};
use bear_rag::extract::OcrSetup;
use bear_rag::{Collection, IngestOptions, IngestReport, Pipeline, Progress};

use crate::docs::CreateCollection;
use crate::{App, Error, Result, Viewer};

/// What to ingest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestRequest {
    /// The collection (the configured default when `None`).
    pub collection: Option<String>,
    /// Files and folders.
    pub paths: Vec<PathBuf>,
    /// Globs added to `rag.include`.
    pub include: Vec<String>,
    /// Globs added to `rag.exclude`.
    pub exclude: Vec<String>,
    /// Also remove documents whose files no longer exist.
    pub sync: bool,
    /// The PII policy of a collection this ingest creates (`rag.pii_policy` when `None`).
    pub pii_policy: Option<PiiPolicy>,
}

impl App {
    /// The OCR engine for scans and images, loaded on first use with `[rag] ocr_languages`;
    /// `None` (with a warning naming what is missing) when Tesseract's language data is not
    /// installed, so scans and images are refused with what to install.
    pub async fn ocr(&self) -> Option<Arc<dyn bear_core::Ocr>> {
        if let Some(o) = self.ocr.get() {
            return o.clone();
        }
        let rag = self.config().config.rag.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            bear_models::TesseractOcr::new(&rag.ocr_languages, rag.ocr_data_dir.as_deref())
        })
        .await;
        let engine = match loaded {
            Ok(Ok(e)) => Some(Arc::new(e) as Arc<dyn bear_core::Ocr>),
            Ok(Err(e)) => {
                tracing::warn!("OCR is not available, scans and images will be refused: {e}");
                None
            }
            Err(_) => None,
        };
        self.ocr.get_or_init(|| engine).clone()
    }

    /// Ingests `req.paths`, reporting each file to `progress`; `cancel` stops between files.
    /// New vault tokens are saved even when the ingest fails part-way (stored chunks use them).
    pub async fn ingest(
        &self,
        viewer: &Viewer,
        req: IngestRequest,
        progress: &mut (dyn FnMut(&Progress) + Send),
        cancel: &CancellationToken,
    ) -> Result<IngestReport> {
        let name = req
            .collection
            .clone()
            .unwrap_or_else(|| self.config().config.rag.default_collection.clone());
        // Opened before any change, so an unwritable log (failing closed) changes nothing.
        self.audit_log()?;
        let collection = self.open_or_create(viewer, &name, req.pii_policy).await?;
        let mut config = self.config().config.rag.clone();
        config.include.extend(req.include);
        config.exclude.extend(req.exclude);
        let ocr = self.ocr().await.map(|e| OcrSetup::new(e, &config));
        let pipeline = Pipeline {
            embedder: self.embedder(&collection.meta().embedder).await?,
            scrubber: self.scrubber_of(&collection)?,
            config,
            persist_tokens: self.scrubbers().map(|s| {
                Arc::new(move || s.persist().map_err(bear_core::Error::from))
                    as bear_rag::ingest::PersistTokens
            }),
            ocr,
        };
        let options = IngestOptions { sync: req.sync };
        let result = bear_rag::ingest(
            &collection,
            &pipeline,
            &req.paths,
            &options,
            progress,
            cancel,
        )
        .await;
        let persisted = self.scrubbers().map_or(Ok(()), |s| s.persist());
        let report = result?;
        persisted?;
        let outcome = if report.failed.is_empty() {
            "ok"
        } else {
            "partial"
        };
        let sizes = (report.ingested.len() as u64, report.chunks as u64);
        self.record(viewer, "rag.ingest", outcome, sizes)?;
        Ok(report)
    }

    /// Collection `name`, created for `viewer` with `policy` when it does not exist yet.
    pub async fn open_or_create(
        &self,
        viewer: &Viewer,
        name: &str,
        policy: Option<PiiPolicy>,
    ) -> Result<Collection> {
        if !self.store().exists(name) {
            let new = CreateCollection {
                name: name.to_string(),
                pii_policy: policy,
            };
            match self.create_collection(viewer, &new).await {
                // Another run created it meanwhile.
                Ok(_) | Err(Error::Rag(bear_rag::Error::CollectionExists { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        self.collection(viewer, Some(name)).await
    }
}
