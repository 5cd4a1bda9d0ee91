//! `bear migrate`: a data directory from before sealing (plain collections, made here by an
//! App without a keyring, and a plain upload) is refused until converted; `bear migrate`,
//! killed with SIGKILL after each step it reports and run again, seals it in place and loses
//! nothing: the same documents, the same search hits, no plaintext left.

use std::io::{BufRead, BufReader};
use std::sync::Arc;

use bear_app::rag::{Mode, SearchRequest};
use bear_app::{App, Keys, Viewer};
use serde_json::Value;

use crate::files_under;
use crate::rag::corpus;
use crate::security::Home;
use crate::{stderr, stdout};

/// The App the `bear` commands of `h` would build, but with no keyring: what BEAR was
/// before collections were sealed.
fn app_without_keys(h: &Home) -> App {
    let (data, config) = (h.path("data"), h.path("config"));
    let lookup = |k: &str| match k {
        "BEAR_DATA_DIR" => Some(data.clone().into_os_string()),
        "XDG_CONFIG_HOME" => Some(config.clone().into_os_string()),
        "BEAR_CONFIG" | "BEAR_PASSPHRASE" => None,
        other => std::env::var_os(other),
    };
    let loaded = bear_app::load_config(None, lookup).unwrap();
    let models = Arc::new(bear_app::open_models(&loaded, false).unwrap());
    App::new(loaded, models, Keys::Opened(None)).unwrap()
}

async fn exact_hits(app: &App, collection: &str) -> Vec<String> {
    let request = SearchRequest {
        query: "pledge on baking equipment".into(),
        k: Some(5),
        mode: Some(Mode::Exact),
        collection: Some(collection.into()),
        ..SearchRequest::default()
    };
    let found = app.search(&Viewer::Local, request).await.unwrap();
    found.hits.into_iter().map(|h| h.chunk_id).collect()
}

/// Plain collections `old` (the corpus) and `small` (one note), and a plain upload.
fn plain_data_dir(h: &Home) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = app_without_keys(h);
    let note = h.write(
        "note.md",
        b"# Note\n\nThe baking equipment is pledged to the lender.\n",
    );
    for (name, path) in [("old", corpus()), ("small", note)] {
        let request = bear_app::ingest::IngestRequest {
            collection: Some(name.into()),
            paths: vec![path],
            pii_policy: Some(bear_core::PiiPolicy::Replace),
            ..Default::default()
        };
        let cancel = bear_core::CancellationToken::new();
        let report = rt
            .block_on(app.ingest(&Viewer::Local, request, &mut |_| {}, &cancel))
            .unwrap();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
    }
    let upload = h.path("data/uploads/old");
    std::fs::create_dir_all(&upload).unwrap();
    std::fs::write(
        upload.join("memo.txt"),
        "Memo: Greenfield Bakeries pays on time.",
    )
    .unwrap();
    rt.block_on(exact_hits(&app, "old"))
}

/// Runs `bear --json migrate` and kills it with SIGKILL once it has reported `events` steps.
fn migrate_killed_after(h: &Home, events: usize) {
    let mut child = h.spawn(&["--json", "migrate"]);
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = 0;
    while seen < events {
        match lines.next() {
            Some(Ok(l)) if l.starts_with("{\"event\"") => seen += 1,
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn migrate_seals_an_old_data_directory_in_place_through_kills() {
    let h = Home::new();
    let before = plain_data_dir(&h);
    assert_eq!(before.len(), 5);

    // Refused, saying what to do; still listed, as not sealed.
    let o = h.run(&["search", "pledge", "-c", "old"], None, &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("bear migrate"), "{}", stderr(&o));
    let listed = h.run(&["--json", "collections", "list"], None, &[]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let listed: Value = serde_json::from_str(&stdout(&listed)).unwrap();
    assert_eq!(listed[0]["sealed"], false, "{listed}");

    // Killed after each step it reports, in turn: collection, documents, chunks, the next
    // collection; then run to the end.
    for events in 1..=4 {
        migrate_killed_after(&h, events);
    }
    let o = h.run(&["--json", "migrate"], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let again = h.run(&["--json", "migrate"], None, &[]);
    let report: Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(report["collections"], serde_json::json!([]), "nothing left");

    let listed: Value = serde_json::from_str(&stdout(&h.run(
        &["--json", "collections", "list"],
        None,
        &[],
    )))
    .unwrap();
    let names: Vec<(&str, bool)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["sealed"].as_bool().unwrap()))
        .collect();
    assert_eq!(names, [("old", true), ("small", true)]);
    let hits = h.run(
        &[
            "--json",
            "search",
            "pledge on baking equipment",
            "-c",
            "old",
            "--mode",
            "exact",
            "-k",
            "5",
        ],
        None,
        &[],
    );
    assert!(hits.status.success(), "{}", stderr(&hits));
    let hits: Value = serde_json::from_str(&stdout(&hits)).unwrap();
    let after: Vec<String> = hits["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["chunk_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(after, before, "the same hits, in the same order");

    // Nothing of the documents or the upload is left in the clear, nor any staging folder.
    for f in files_under(&h.path("data/collections"))
        .iter()
        .chain(&files_under(&h.path("data/uploads")))
    {
        let bytes = std::fs::read(f).unwrap();
        for canary in ["Greenfield Bakeries", "baking equipment", "Fjord Capital"] {
            assert!(
                !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
                "{canary} in {}",
                f.display()
            );
        }
    }
    // The upload is kept under a tag of its name, not the name.
    let kept: Vec<_> = std::fs::read_dir(h.path("data/uploads/old"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(
        kept[0].ends_with(".txt") && !kept[0].contains("memo"),
        "{kept:?}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(h.path("data/collections"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let audit = std::fs::read_to_string(h.path("data/audit/audit.jsonl")).unwrap();
    assert!(audit.contains("\"migrate\""), "{audit}");
}
