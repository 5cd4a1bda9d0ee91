//! Integration tests for bear-rag with real parts: LanceDB in temp dirs, the real MiniLM
//! embedder (candle), the real bear-security scrubber with a keyring and token vault, the real
//! SmolLM2 generator, and the demo corpus in `examples/corpus`.

mod answer;
mod archive;
mod extract;
mod ingest;
mod lance;
mod msg;
mod ocr;
mod redact;
mod sealed;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use bear_core::{Dirs, Embedder, ModelId, PiiConfig, PiiPolicy, RagConfig, assets};
use bear_rag::{Collection, Pipeline, Store};
use bear_security::{Detector, KeySource, Keyring, MasterKey, Scrubber, Vault};

/// Limits for extraction tests: 64 MiB files, 8 MiB inflated, 100 pages, a minute, no OCR.
pub(crate) fn test_limits() -> bear_rag::extract::Limits {
    bear_rag::extract::Limits {
        max_file_bytes: 64 << 20,
        max_decompressed_bytes: 8 << 20,
        max_xml_depth: 256,
        max_pages: 100,
        deadline: std::time::Instant::now() + std::time::Duration::from_secs(60),
        max_image_pixels: 1 << 24,
        ocr: None,
    }
}

/// A committed fixture file's bytes (`tests/fixtures`).
pub(crate) fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

/// The pinned models directory.
pub(crate) fn models_dir() -> PathBuf {
    Dirs::from_env(|k| std::env::var_os(k))
        .expect("HOME or XDG dirs must be set")
        .models_dir
}

/// The real all-MiniLM-L6-v2 embedder, loaded once per test binary.
pub(crate) fn embedder() -> Arc<dyn Embedder> {
    static E: OnceLock<Arc<dyn Embedder>> = OnceLock::new();
    E.get_or_init(|| {
        let dir = models_dir().join(assets::MINILM_DIR);
        assert!(dir.exists(), "{}", assets::missing_hint(&dir));
        let id = ModelId::new("all-MiniLM-L6-v2").unwrap();
        Arc::new(bear_models::CandleEmbedder::load(id, &dir).unwrap())
    })
    .clone()
}

/// The demo corpus.
pub(crate) fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/corpus")
}

/// A temporary BEAR home: a keyring (key file), a token vault and a collection store.
pub(crate) struct Env {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) scrubber: Arc<Scrubber>,
    pub(crate) store: Store,
}

impl Env {
    pub(crate) fn new(policy: PiiPolicy) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("master.key");
        MasterKey::generate_key_file(&key).unwrap();
        let ring =
            Keyring::create(&dir.path().join("keyring.json"), KeySource::KeyFile(key)).unwrap();
        let vault = Arc::new(Mutex::new(
            Vault::load(&dir.path().join("vault.bseal"), &ring).unwrap(),
        ));
        let config = PiiConfig {
            default_policy: policy,
            ..PiiConfig::default()
        };
        let detector = Arc::new(Detector::new(&config).unwrap());
        let scrubber = Arc::new(
            Scrubber::new(
                detector,
                config,
                ring.hmac_key("bear-scrub-hash-v1"),
                Some(vault),
            )
            .unwrap(),
        );
        let store = Store::new(dir.path().join("collections"));
        Self {
            dir,
            scrubber,
            store,
        }
    }

    pub(crate) fn pipeline(&self, config: RagConfig) -> Pipeline {
        Pipeline {
            embedder: embedder(),
            scrubber: self.scrubber.clone(),
            config,
            persist_tokens: None,
            ocr: None,
        }
    }

    pub(crate) async fn collection(&self, name: &str) -> Collection {
        let e = embedder();
        self.store
            .create(name, PiiPolicy::Tokenize, e.model().as_str(), e.dimension())
            .await
            .unwrap()
    }
}
