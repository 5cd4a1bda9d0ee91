//! Sealed collections: every file LanceDB writes is sealed under the collection's data key
//! (`store/seal.rs`). The corpus is ingested into a sealed and a plain collection: the sealed
//! one holds none of the corpus's words on disk and answers searches exactly as the plain one;
//! a changed byte is an integrity error naming the file; a shredded key leaves nothing to
//! open. Property tests drive the sealing object store directly: random range reads and
//! multipart uploads equal the plaintext, random corruptions are always detected.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bear_core::{PiiPolicy, RagConfig};
use bear_rag::store::seal::SealedStore;
use bear_rag::{Filter, IngestOptions, SearchMode, Store};
use bear_security::{FileKeys, Keyring};
use object_store::memory::InMemory;
use object_store::path::Path as ObjPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use proptest::prelude::*;

use crate::Env;

/// Words of the corpus, names and figures from it (scrubbed or not), and a file name: none
/// may appear in a sealed collection's files.
const CANARIES: &[&str] = &[
    "Greenfield Bakeries",
    "Fjord Capital",
    "first-ranking pledge",
    "baking equipment",
    "Harbor Analytics",
    "Confidential Information",
    "loan-agreement",
    "commercial-lease",
    "monthly rent",
];

fn keyring(env: &Env) -> Arc<Mutex<Keyring>> {
    let ring = Keyring::open(
        &env.dir.path().join("keyring.json"),
        bear_security::KeySource::KeyFile(env.dir.path().join("master.key")),
    )
    .unwrap();
    Arc::new(Mutex::new(ring))
}

fn sealed_store(env: &Env, ring: &Arc<Mutex<Keyring>>) -> Store {
    let ring = ring.clone();
    env.store
        .clone()
        .sealed_with(Arc::new(move |c: &str, create: bool| {
            let mut ring = ring.lock().unwrap();
            let keys = if create {
                ring.file_keys(c)
            } else {
                ring.existing_file_keys(c)
            };
            keys.map_err(bear_core::Error::from)
        }))
}

async fn ingest(env: &Env, c: &bear_rag::Collection) {
    let report = bear_rag::ingest(
        c,
        &env.pipeline(RagConfig::default()),
        &[crate::corpus()],
        &IngestOptions { sync: false },
        &mut |_: &bear_rag::Progress| {},
        &bear_core::CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(report.ingested.len() >= 10);
}

fn files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// The canaries found in the files under `dir`, with the file.
fn canaries_in(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    for f in files(dir) {
        let bytes = std::fs::read(&f).unwrap();
        for c in CANARIES {
            for needle in [c.as_bytes().to_vec(), utf16(c)] {
                if bytes.windows(needle.len()).any(|w| w == needle.as_slice()) {
                    found.push((c.to_string(), f.clone()));
                }
            }
        }
    }
    found
}

async fn hits(
    store: &Store,
    env: &Env,
    c: &bear_rag::Collection,
    q: &str,
    mode: SearchMode,
) -> Vec<(String, u32)> {
    let r = bear_rag::RagRetriever::new(store.clone(), crate::embedder(), env.scrubber.clone());
    r.search(c, q, mode, 5, &Filter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.chunk_id, h.ordinal))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_collection_holds_no_plaintext_and_searches_like_a_plain_one() {
    let env = Env::new(PiiPolicy::Tokenize);
    let ring = keyring(&env);
    let sealed = sealed_store(&env, &ring);
    let e = crate::embedder();
    let (model, dim) = (e.model().as_str().to_string(), e.dimension());
    let s = sealed
        .create("sealed", PiiPolicy::Tokenize, &model, dim)
        .await
        .unwrap();
    let p = env
        .store
        .create("plain", PiiPolicy::Tokenize, &model, dim)
        .await
        .unwrap();
    assert!(s.meta().sealed && !p.meta().sealed);
    for c in [&s, &p] {
        ingest(&env, c).await;
        c.optimize(usize::MAX).await.unwrap();
    }
    // The plain collection shows the canaries are there to be found.
    let plain_found = canaries_in(p.dir());
    assert!(
        plain_found.iter().any(|(c, _)| c == "baking equipment"),
        "the scan finds text in a plain collection: {plain_found:?}"
    );
    let found = canaries_in(s.dir());
    assert!(
        found.is_empty(),
        "plaintext in a sealed collection: {found:?}"
    );

    // Reopened from disk, the sealed collection answers like the plain one, in every mode.
    let s = sealed.open("sealed").await.unwrap();
    for mode in [
        SearchMode::Vector,
        SearchMode::FullText,
        SearchMode::Hybrid,
        SearchMode::Exact,
    ] {
        for q in [
            "What is the monthly rent for the office?",
            "pledge on baking equipment",
        ] {
            let a = hits(&sealed, &env, &s, q, mode).await;
            let b = hits(&env.store, &env, &p, q, mode).await;
            assert!(!a.is_empty(), "{mode:?} {q}");
            assert_eq!(
                a.iter().map(|h| h.1).collect::<Vec<_>>(),
                b.iter().map(|h| h.1).collect::<Vec<_>>(),
                "{mode:?} {q}"
            );
        }
    }
    // Documents and their metadata read back.
    let docs = s.documents().await.unwrap();
    assert_eq!(docs.len(), p.documents().await.unwrap().len());
    assert!(docs.iter().any(|d| d.path.ends_with("loan-agreement.md")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_byte_is_an_integrity_error_and_a_shredded_key_opens_nothing() {
    let env = Env::new(PiiPolicy::Tokenize);
    let ring = keyring(&env);
    let sealed = sealed_store(&env, &ring);
    let e = crate::embedder();
    let c = sealed
        .create("m", PiiPolicy::Tokenize, e.model().as_str(), e.dimension())
        .await
        .unwrap();
    ingest(&env, &c).await;
    drop(c);

    // Without keys, a sealed collection is refused by name.
    let locked = env.store.open("m").await.unwrap_err();
    assert!(matches!(locked, bear_rag::Error::Locked { .. }), "{locked}");

    // A flipped byte in every segment of the largest data file of the chunks table (so any
    // read of it meets one; the property tests below flip single bytes anywhere).
    let dir = env.store.root().join("m");
    let data = files(&dir.join("chunks.lance/data"));
    let victim = data
        .iter()
        .max_by_key(|f| f.metadata().unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(victim).unwrap();
    for i in (100..bytes.len()).step_by(SEG + 16) {
        bytes[i] ^= 0x40;
    }
    std::fs::write(victim, &bytes).unwrap();
    let c = sealed.open("m").await.unwrap();
    let v = vec![0.1f32; e.dimension()];
    let err = c
        .search(
            SearchMode::Exact,
            "",
            Some(&v[..]),
            5,
            &Filter::default(),
            &Default::default(),
        )
        .await
        .unwrap_err();
    let file = victim.file_name().unwrap().to_str().unwrap();
    match &err {
        bear_rag::Error::Sealed(bear_security::Error::Integrity { what, .. }) => {
            assert!(what.contains(file), "{what} names {file}")
        }
        other => panic!("expected an integrity error naming {file}, got {other}"),
    }
    drop(c);

    // Shredded: the key is gone and the collection with it.
    ring.lock().unwrap().delete_collection("m").unwrap();
    let gone = sealed.open("m").await.unwrap_err();
    assert!(
        gone.to_string().contains("no data key for collection `m`"),
        "{gone}"
    );
}

/// A file kept sealed under one matter's key (an upload) is ingested by that matter as if
/// plain, and refused, as sealed, by another matter; its bytes on disk hold none of its text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_upload_opens_only_in_its_own_matter() {
    let env = Env::new(PiiPolicy::Tokenize);
    let ring = keyring(&env);
    let sealed = sealed_store(&env, &ring);
    let e = crate::embedder();
    let a = sealed
        .create("a", PiiPolicy::Tokenize, e.model().as_str(), e.dimension())
        .await
        .unwrap();
    let b = sealed
        .create("b", PiiPolicy::Tokenize, e.model().as_str(), e.dimension())
        .await
        .unwrap();
    let text = "The monthly rent is due on the first day of each month.";
    let upload = env.dir.path().join("uploads").join("rent.txt");
    std::fs::create_dir_all(upload.parent().unwrap()).unwrap();
    let name = bear_rag::ingest::upload_name(&upload);
    bear_security::crypto::segment::write_whole(&upload, &name, a.file_keys(), text.as_bytes())
        .unwrap();
    let on_disk = std::fs::read(&upload).unwrap();
    assert!(!on_disk.windows(12).any(|w| w == b"monthly rent"));

    let run = |c: &bear_rag::Collection| {
        let pipeline = env.pipeline(RagConfig::default());
        let (c, paths) = (c.clone(), vec![upload.clone()]);
        async move {
            bear_rag::ingest(
                &c,
                &pipeline,
                &paths,
                &IngestOptions { sync: false },
                &mut |_: &bear_rag::Progress| {},
                &bear_core::CancellationToken::new(),
            )
            .await
            .unwrap()
        }
    };
    let ok = run(&a).await;
    assert_eq!(ok.ingested.len(), 1, "{:?}", ok.failed);
    let doc = &a.documents().await.unwrap()[0];
    assert_eq!(doc.size, text.len() as u64);
    assert_eq!(doc.sha256, bear_rag::content_sha256(text.as_bytes()));

    let refused = run(&b).await;
    assert!(refused.ingested.is_empty());
    assert!(
        matches!(
            refused.failed[0].refusal,
            bear_rag::extract::Refusal::Sealed { .. }
        ),
        "{:?}",
        refused.failed
    );
}

fn copy_tree(from: &Path, to: &Path) {
    for f in files(from) {
        let dest = to.join(f.strip_prefix(from).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, dest).unwrap();
    }
}

/// A plain collection is refused by a sealed store until sealed in place; sealed, it holds no
/// plaintext and searches as before. A conversion cut between its two renames (plain copy
/// moved aside, sealed copy complete but not yet in place) is finished by the next run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_collection_is_sealed_in_place_and_a_cut_swap_is_finished() {
    let env = Env::new(PiiPolicy::Tokenize);
    let c = env.collection("m").await;
    ingest(&env, &c).await;
    let plain_hits = hits(
        &env.store,
        &env,
        &c,
        "pledge on baking equipment",
        SearchMode::Exact,
    )
    .await;
    drop(c);
    let ring = keyring(&env);
    let sealed = sealed_store(&env, &ring);
    let refused = sealed.open("m").await.unwrap_err();
    assert!(
        matches!(refused, bear_rag::Error::NeedsMigration { .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains("bear migrate"));
    assert_eq!(sealed.unsealed().unwrap(), ["m"]);

    let root = env.store.root().to_path_buf();
    let backup = env.dir.path().join("plain-backup");
    copy_tree(&root.join("m"), &backup);
    let mut tables = Vec::new();
    sealed
        .seal_in_place("m", 20_000, &mut |t: &str, n: u64| {
            tables.push((t.to_string(), n))
        })
        .await
        .unwrap();
    assert_eq!(tables[0].0, "documents");
    assert!(tables[1].1 > 10, "{tables:?}");
    assert!(sealed.unsealed().unwrap().is_empty());
    assert!(canaries_in(&root).is_empty(), "{:?}", canaries_in(&root));
    let c = sealed.open("m").await.unwrap();
    assert!(c.meta().sealed);
    let q = "pledge on baking equipment";
    assert_eq!(
        hits(&sealed, &env, &c, q, SearchMode::Exact).await,
        plain_hits
    );
    drop(c);

    // Cut between the renames: the plain copy aside, the sealed one staged and complete.
    std::fs::rename(root.join("m"), root.join(".seal-m")).unwrap();
    std::fs::write(root.join(".seal-m/.ready"), b"").unwrap();
    copy_tree(&backup, &root.join(".plain-m"));
    assert_eq!(sealed.unsealed().unwrap(), ["m"]);
    sealed
        .seal_in_place("m", 20_000, &mut |_: &str, _: u64| {})
        .await
        .unwrap();
    assert!(!root.join(".plain-m").exists() && !root.join(".seal-m").exists());
    let c = sealed.open("m").await.unwrap();
    assert_eq!(
        hits(&sealed, &env, &c, q, SearchMode::Exact).await,
        plain_hits
    );
}

// ---- the sealing object store, directly ----

fn keys() -> (tempfile::TempDir, FileKeys) {
    let dir = tempfile::tempdir().unwrap();
    let kf = dir.path().join("k");
    bear_security::MasterKey::generate_key_file(&kf).unwrap();
    let mut ring = Keyring::create(
        &dir.path().join("r.json"),
        bear_security::KeySource::KeyFile(kf),
    )
    .unwrap();
    let k = ring.file_keys("p").unwrap();
    (dir, k)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

const SEG: usize = 64 * 1024;

fn plaintext() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..3 * SEG + 10),
        (1usize..4).prop_map(|n| (0..n * SEG).map(|i| (i % 251) as u8).collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn range_reads_and_multipart_uploads_equal_the_plaintext(
        plain in plaintext(),
        parts in prop::collection::vec(1usize..200_000, 1..6),
        ranges in prop::collection::vec((any::<u64>(), any::<u64>()), 1..8),
    ) {
        let (_d, k) = keys();
        let inner = Arc::new(InMemory::new());
        let store = SealedStore::new(inner.clone(), k, ObjPath::from("root"));
        let one = ObjPath::from("root/t.lance/data/one");
        let many = ObjPath::from("root/t.lance/data/many");
        rt().block_on(async {
            store.put(&one, PutPayload::from(plain.clone())).await.unwrap();
            // A multipart upload in parts of random sizes.
            let up = store.put_multipart(&many).await.unwrap();
            let mut w = WriteMultipart::new_with_chunk_size(up, parts[0]);
            let mut at = 0;
            for (i, n) in parts.iter().cycle().enumerate() {
                if at >= plain.len() || i > 64 { break; }
                let end = (at + n).min(plain.len());
                w.write(&plain[at..end]);
                at = end;
            }
            w.write(&plain[at..]);
            w.finish().await.unwrap();
            for path in [&one, &many] {
                let got = store.get(path).await.unwrap();
                prop_assert_eq!(got.meta.size, plain.len() as u64);
                let whole = got.bytes().await.unwrap();
                prop_assert_eq!(whole.as_ref(), plain.as_slice());
                prop_assert_eq!(store.head(path).await.unwrap().size, plain.len() as u64);
                let raw = inner.get(path).await.unwrap().bytes().await.unwrap();
                prop_assert!(plain.len() < 64 || raw.windows(64).all(|w| w != &plain[..64]));
                if plain.is_empty() { continue; }
                let len = plain.len() as u64;
                // Twice: the second pass reads what the first left in the segment cache.
                for (a, b) in ranges.iter().chain(&ranges) {
                    let (s, e) = (a % len, b % len);
                    let r = s.min(e)..s.max(e) + 1;
                    let got = store.get_range(path, r.clone()).await.unwrap();
                    prop_assert_eq!(got.as_ref(), &plain[r.start as usize..r.end as usize]);
                }
                let tail = store
                    .get_opts(path, GetOptions { range: Some(GetRange::Suffix(10)), ..Default::default() })
                    .await.unwrap().bytes().await.unwrap();
                prop_assert_eq!(tail.as_ref(), &plain[plain.len().saturating_sub(10)..]);
            }
            let listed: Vec<_> = futures::TryStreamExt::try_collect(store.list(Some(&ObjPath::from("root")))).await.unwrap();
            prop_assert!(listed.iter().all(|m| m.size == plain.len() as u64));
            Ok::<(), TestCaseError>(())
        })?;
    }

    #[test]
    fn every_corruption_of_a_stored_file_is_detected(
        plain in plaintext(),
        at in any::<usize>(),
        flip in 1u8..=255,
        kind in 0u8..4,
        write_once in any::<bool>(),
    ) {
        let (_d, k) = keys();
        let inner = Arc::new(InMemory::new());
        let store = SealedStore::new(inner.clone(), k.clone(), ObjPath::from("root"));
        // A manifest, or a data file (whose small reads the segment cache keeps).
        let dir = if write_once { "data" } else { "_versions" };
        let path = ObjPath::from(format!("root/t.lance/{dir}/1.manifest"));
        let other = ObjPath::from(format!("root/t.lance/{dir}/2.manifest"));
        rt().block_on(async {
            store.put(&path, PutPayload::from(plain.clone())).await.unwrap();
            store.put(&other, PutPayload::from(plain.clone())).await.unwrap();
            // Read before the corruption, so the segment cache holds what it may.
            if !plain.is_empty() {
                store.get_range(&path, 0..plain.len() as u64).await.unwrap();
            }
            let mut raw = inner.get(&path).await.unwrap().bytes().await.unwrap().to_vec();
            let seg = SEG + 16;
            match kind {
                0 => { let i = at % raw.len(); raw[i] ^= flip; }
                1 => raw.truncate(at % raw.len()),
                2 if raw.len() >= 32 + 2 * seg => {
                    let (x, y) = raw[32..32 + 2 * seg].split_at_mut(seg);
                    x.swap_with_slice(y);
                }
                // Another file's bytes (same plaintext, other name and id) in its place.
                _ => raw = inner.get(&other).await.unwrap().bytes().await.unwrap().to_vec(),
            }
            inner.put(&path, PutPayload::from(raw)).await.unwrap();
            // A fresh store: nothing remembered of the file.
            let fresh = SealedStore::new(inner.clone(), k.clone(), ObjPath::from("root"));
            let whole = match fresh.get(&path).await {
                Ok(g) => g.bytes().await.map(|_| ()),
                Err(e) => Err(e),
            };
            let text = whole.expect_err("a corrupted file must not open").to_string();
            prop_assert!(text.contains("integrity check failed"), "{}", text);
            prop_assert!(text.contains("1.manifest"), "{}", text);
            // Nor does a range read of the whole file through another fresh store.
            if !plain.is_empty() {
                let fresh = SealedStore::new(inner.clone(), k.clone(), ObjPath::from("root"));
                let err = fresh.get_range(&path, 0..plain.len() as u64).await;
                prop_assert!(err.is_err(), "a corrupted file must not open by range");
            }
            Ok::<(), TestCaseError>(())
        })?;
    }
}
