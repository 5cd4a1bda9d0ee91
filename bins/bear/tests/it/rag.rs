//! `bear ingest`, `search`, `ask`, `docs` and `collections` end to end, and crash safety: a
//! child `bear ingest` killed with SIGKILL loses no document it reported done.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::files_under;
use crate::security::Home;
use crate::{stderr, stdout};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub(crate) fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/corpus")
}

/// A home with a keyring opened by a key file named in the config, as the tokenize policy needs.
pub(crate) fn home_with_keys() -> Home {
    let h = Home::new();
    let kf = h.path("master.key");
    let o = h.run(&["keys", "init", "--key-file", s(&kf)], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::create_dir_all(h.path("config/bear")).unwrap();
    h.write(
        "config/bear/config.toml",
        format!("[security]\nkey_file = \"{}\"\n{WORD_FOR_WORD}", s(&kf)).as_bytes(),
    );
    h
}

/// Tests that compare the CLI's answer (a fresh process) with a long-running server's word for
/// word turn the prompt cache off, serve one request at a time and keep all threads: a prefix
/// reused from the cache, or a batch shared with another request, is decoded in other batch
/// shapes, and a decode on one thread sums in another order, either of which may change the
/// wording of a greedy answer (as with llama-server's `cache_prompt` and slots).
pub(crate) const WORD_FOR_WORD: &str =
    "[models]\nprompt_cache_bytes = 0\nparallel = 1\nadapt_threads = false\n";

fn json(o: &std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

#[test]
fn ingest_search_ask_docs_and_collections() {
    let h = home_with_keys();
    let c = s(&corpus()).to_string();
    let o = h.run(&["ingest", &c], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("default: 13 ingested"),
        "{}",
        stdout(&o)
    );
    // Again: everything unchanged.
    let r = json(&h.run(&["--json", "ingest", &c], None, &[]));
    assert_eq!(r["unchanged"].as_array().unwrap().len(), 13);
    assert!(r["ingested"].as_array().unwrap().is_empty());

    let hits = json(&h.run(
        &[
            "--json",
            "search",
            "How much notice ends the lease?",
            "--k",
            "3",
        ],
        None,
        &[],
    ));
    let top = &hits["hits"][0];
    assert!(
        top["path"]
            .as_str()
            .unwrap()
            .ends_with("commercial-lease.pdf")
    );
    assert_eq!(top["page"], 3);
    // Exact vector search (every vector compared) finds the lease too.
    let exact = json(&h.run(
        &[
            "--json",
            "search",
            "How much notice ends the lease?",
            "--mode",
            "exact",
        ],
        None,
        &[],
    ));
    assert!(
        exact["hits"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("commercial-lease.pdf"),
        "{exact}"
    );
    let o = h.run(&["search", "gearbox", "--mode", "fulltext"], None, &[]);
    assert!(
        stdout(&o).contains("supply-agreement.txt"),
        "{}",
        stdout(&o)
    );
    // Shown to the local user with PII restored.
    let o = h.run(
        &["search", "employee e-mail address", "--k", "5"],
        None,
        &[],
    );
    assert!(
        stdout(&o).contains("t.devries@example.com"),
        "{}",
        stdout(&o)
    );

    let o = h.run(
        &[
            "ask",
            "What is the monthly rent for the office?",
            "--max-tokens",
            "32",
        ],
        None,
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("Sources:") && out.contains("commercial-lease.pdf), p. 2"),
        "{out}"
    );
    assert!(stderr(&o).contains("time to first token"), "{}", stderr(&o));
    let a = json(&h.run(
        &["--json", "ask", "Which volcano on Io erupts most often?"],
        None,
        &[],
    ));
    assert_eq!(a["relevant"], false);

    let docs = json(&h.run(&["--json", "docs", "list"], None, &[]));
    assert_eq!(docs.as_array().unwrap().len(), 13);
    let loan = corpus().join("loan-agreement.md");
    let o = h.run(&["docs", "rm", s(&loan)], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let docs = json(&h.run(&["--json", "docs", "list"], None, &[]));
    assert_eq!(docs.as_array().unwrap().len(), 12);
    assert_eq!(
        h.run(&["docs", "rm", "ffff"], None, &[]).status.code(),
        Some(4)
    );

    let o = h.run(
        &[
            "collections",
            "create",
            "matter-2",
            "--pii-policy",
            "redact",
        ],
        None,
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let list = json(&h.run(&["--json", "collections", "list"], None, &[]));
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["default", "matter-2"]);
    assert_eq!(list[1]["pii_policy"], "redact");
    assert!(
        h.run(&["collections", "rm", "matter-2"], None, &[])
            .status
            .success()
    );
    // Errors: unknown collection (4), bad name (2), bad date (2).
    assert_eq!(
        h.run(&["search", "x", "-c", "nope"], None, &[])
            .status
            .code(),
        Some(4)
    );
    assert_eq!(
        h.run(&["collections", "create", "Bad Name"], None, &[])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        h.run(&["search", "x", "--after", "yesterday"], None, &[])
            .status
            .code(),
        Some(2)
    );

    // The audit log has the mutations, with counts only.
    let audit = std::fs::read_to_string(h.path("data/audit/audit.jsonl")).unwrap();
    assert!(audit.contains("rag.ingest") && audit.contains("rag.docs.rm"));
    assert!(!audit.contains("Keizersgracht") && !audit.contains("devries"));
}

fn copy_dir(from: &Path, to: &Path) {
    for f in files_under(from) {
        let dest = to.join(f.strip_prefix(from).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, &dest).unwrap();
    }
}

/// A first run makes the keyring under a new key file without asking, says so once, and
/// seals the collection: none of the document's words is in its files. Removing the
/// collection destroys its key first: a copy of its files made before opens no more.
#[test]
fn a_first_run_seals_the_matter_and_removing_it_shreds_its_key() {
    let h = Home::new();
    let doc = corpus().join("loan-agreement.md");
    let o = h.run(&["ingest", s(&doc), "-c", "loan"], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).matches("bear keys passphrase").count(),
        1,
        "{}",
        stderr(&o)
    );
    let key = h.path("config/bear/master.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let again = h.run(&["--json", "collections", "list"], None, &[]);
    assert!(
        !stderr(&again).contains("bear keys passphrase"),
        "said once"
    );
    let listed = json(&again);
    assert_eq!(listed[0]["sealed"], true);

    let dir = h.path("data/collections/loan");
    // The matter's tokens are in its own vault, beside its tables, and nowhere else.
    assert!(dir.join("vault.sealed").is_file());
    assert!(
        files_under(&h.path(""))
            .iter()
            .all(|f| f.file_name().unwrap() != "vault.bseal")
    );
    for f in files_under(&dir) {
        let bytes = std::fs::read(&f).unwrap();
        for canary in ["Greenfield Bakeries", "Fjord Capital", "baking equipment"] {
            assert!(
                !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
                "{canary} in {}",
                f.display()
            );
        }
    }
    let hits = json(&h.run(
        &[
            "--json",
            "search",
            "pledge on baking equipment",
            "-c",
            "loan",
        ],
        None,
        &[],
    ));
    assert!(!hits["hits"].as_array().unwrap().is_empty());

    // A copy taken before removal, put back after it: its key is gone.
    let copy = h.path("copy");
    copy_dir(&dir, &copy);
    let o = h.run(&["collections", "rm", "loan"], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    copy_dir(&copy, &dir);
    let o = h.run(&["search", "pledge", "-c", "loan"], None, &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no data key for collection `loan`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn sigkill_mid_ingest_loses_no_reported_document() {
    let h = home_with_keys();
    let docs = h.path("docs");
    std::fs::create_dir_all(&docs).unwrap();
    for i in 0..120 {
        let text = format!(
            "# Matter note {i}\n\nThis note records instruction number {i} from the client about \
             contract clause {i}. The deadline for clause {i} is day {} of the month.\n\n\
             Further detail on item {i}: the counterparty asked for a revised indemnity cap of \
             {} thousand euros and a longer notice period. Reply to counsel{i}@example.org.\n",
            i % 28 + 1,
            i * 10
        );
        std::fs::write(docs.join(format!("note-{i:03}.md")), text).unwrap();
    }
    let mut child = h.spawn(&["--json", "ingest", s(&docs), "--collection", "crash"]);
    let mut reported = Vec::new();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    while let Some(Ok(line)) = lines.next() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if v["event"] == "ingested" {
            reported.push(v["path"].as_str().unwrap().to_string());
        }
        if reported.len() >= 16 {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the ingest was killed before it finished"
    );
    assert!(
        reported.len() >= 16,
        "saw {} documents reported",
        reported.len()
    );

    // Every reported document survived, and the tables open and search.
    let listed = json(&h.run(&["--json", "docs", "list", "-c", "crash"], None, &[]));
    let paths: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    for p in &reported {
        assert!(
            paths.contains(&p.as_str()),
            "{p} was reported done but is missing"
        );
    }
    assert!(paths.len() < 120, "the kill came before the end");
    let hits = json(&h.run(
        &[
            "--json",
            "search",
            "revised indemnity cap",
            "-c",
            "crash",
            "--mode",
            "vector",
        ],
        None,
        &[],
    ));
    assert!(!hits["hits"].as_array().unwrap().is_empty());

    // Running the ingest again completes the rest.
    let r = json(&h.run(
        &["--json", "ingest", s(&docs), "--collection", "crash"],
        None,
        &[],
    ));
    let ingested = r["ingested"].as_array().unwrap().len();
    let unchanged = r["unchanged"].as_array().unwrap().len();
    assert_eq!(ingested + unchanged, 120);
    assert!(unchanged >= reported.len());
    let listed = json(&h.run(&["--json", "docs", "list", "-c", "crash"], None, &[]));
    assert_eq!(listed.as_array().unwrap().len(), 120);
    let cols = json(&h.run(&["--json", "collections", "list"], None, &[]));
    let chunks = cols[0]["chunks"].as_u64().unwrap();
    let expected: u64 = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["chunks"].as_u64().unwrap())
        .sum();
    assert_eq!(chunks, expected, "no orphan or duplicate chunks");

    // Every reported document's PII tokens were durable before it was reported: its e-mail
    // address is restored in its search hits (a lost token would show as the token itself).
    let ids: std::collections::HashMap<String, String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let path = d["path"].as_str().unwrap().to_string();
            (path, d["id"].as_str().unwrap().to_string())
        })
        .collect();
    for p in &reported {
        let i: usize = p.rsplit("note-").next().unwrap()[..3].parse().unwrap();
        let hits = json(&h.run(
            &[
                "--json",
                "search",
                "reply",
                "-c",
                "crash",
                "--mode",
                "fulltext",
                "--document",
                &ids[p],
            ],
            None,
            &[],
        ));
        let text: String = hits["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["text"].as_str().unwrap().to_string())
            .collect();
        assert!(
            text.contains(&format!("counsel{i}@example.org")),
            "{p}: its token was lost"
        );
    }
}

/// Collections are read through io_uring when the kernel allows it. Where it refuses (here: a
/// ring deeper than any kernel allows, through Lance's own queue-depth variable) and where the
/// config turns it off, the same collection is read with plain reads and gives the same hits.
#[test]
fn search_reads_alike_when_io_uring_is_refused_or_off() {
    let h = home_with_keys();
    std::fs::create_dir_all(h.path("docs")).unwrap();
    h.write(
        "docs/lease.txt",
        b"The tenant must give ninety days notice to terminate the lease.",
    );
    h.write(
        "docs/nda.txt",
        b"The recipient keeps the disclosed information confidential.",
    );
    let o = h.run(&["ingest", s(&h.path("docs"))], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let q = ["--json", "search", "notice to end the lease", "--k", "2"];
    let paths = |v: serde_json::Value| -> Vec<String> {
        v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["path"].as_str().unwrap().to_string())
            .collect()
    };
    let with = paths(json(&h.run(&q, None, &[])));
    assert!(with[0].ends_with("lease.txt"), "{with:?}");
    let refused = paths(json(&h.run(
        &q,
        None,
        &[("LANCE_URING_QUEUE_DEPTH", "1048576")],
    )));
    assert_eq!(with, refused);
    let config = std::fs::read_to_string(h.path("config/bear/config.toml")).unwrap();
    h.write(
        "config/bear/config.toml",
        format!("{config}\n[rag]\nio_uring = false\n").as_bytes(),
    );
    let off = paths(json(&h.run(&q, None, &[])));
    assert_eq!(with, off);
}

/// Commands leave nothing in the directory they run in, and log no warning on success: LanceDB
/// creates a database's directory from its URI, and with a `file+uring://` URI it made a
/// relative `file+uring:` tree in the working directory (and would fail where that is not
/// writable, as `/` for a service).
#[test]
fn commands_leave_the_working_directory_as_it_was() {
    let h = home_with_keys();
    std::fs::create_dir_all(h.path("docs")).unwrap();
    h.write(
        "docs/lease.txt",
        b"The tenant must give ninety days notice to terminate the lease.",
    );
    // Progress lines only: no warning from the libraries underneath.
    let quiet = |o: Output| {
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(!stderr(&o).contains("WARN"), "{}", stderr(&o));
        o
    };
    quiet(h.run(&["ingest", s(&h.path("docs"))], None, &[]));
    let o = quiet(h.run(&["--json", "search", "notice to end the lease"], None, &[]));
    assert!(stdout(&o).contains("lease.txt"), "{}", stdout(&o));
    assert_eq!(stderr(&o), "", "a search logs nothing");
    quiet(h.run(&["collections", "list"], None, &[]));
    let left: Vec<_> = std::fs::read_dir(h.path("work"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in the working directory: {left:?}");
}

/// Two `bear ingest` runs of one folder at the same time, into a collection neither has
/// made yet: both succeed, and every document and chunk is stored once (the collection's
/// write lock is an OS file lock, so separate processes take turns).
#[test]
fn two_ingests_of_one_folder_at_once_store_each_document_once() {
    let h = home_with_keys();
    let run = || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bear"));
        cmd.args(["--quiet", "ingest", s(&corpus())])
            .current_dir(h.path("work"))
            .env_remove("BEAR_CONFIG")
            .env_remove("BEAR_LOG")
            .env("BEAR_DATA_DIR", h.path("data"))
            .env("XDG_CONFIG_HOME", h.path("config"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    };
    let (a, b) = (run(), run());
    for child in [a, b] {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let docs = json(&h.run(&["--json", "docs", "list"], None, &[]));
    let docs = docs.as_array().unwrap();
    assert_eq!(docs.len(), 13, "{docs:#?}");
    let chunks: u64 = docs.iter().map(|d| d["chunks"].as_u64().unwrap()).sum();
    let collections = json(&h.run(&["--json", "collections", "list"], None, &[]));
    assert_eq!(collections[0]["documents"], 13);
    assert_eq!(collections[0]["chunks"].as_u64().unwrap(), chunks);
}

/// The Python of the virtual environment `.ci/setup` makes with the pinned `lancedb`.
fn python_with_lancedb() -> PathBuf {
    let home = std::env::var_os("HOME").expect("HOME is set");
    let python = Path::new(&home).join(".cache/bear/pylancedb/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run .ci/setup (it installs Python lancedb for this test)",
        python.display()
    );
    python
}

/// `bear collections export` writes an unsealed LanceDB copy of a sealed matter: Python
/// `lancedb` opens it and its exact vector search returns BEAR's exact top-k. The export is
/// audited; a folder that is not empty is refused.
#[test]
fn an_exported_matter_opens_in_python_lancedb_with_bears_top_k() {
    const QUERY: &str = "pledge on baking equipment";
    let h = Home::new();
    let o = h.run(&["ingest", s(&corpus()), "-c", "loan"], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dest = h.path("shared/loan.lancedb");
    let v = json(&h.run(
        &["--json", "collections", "export", "loan", s(&dest)],
        None,
        &[],
    ));
    assert!(v["documents"].as_u64().unwrap() >= 10, "{v}");
    let chunks = v["chunks"].as_u64().unwrap();
    let o = h.run(&["collections", "export", "loan", s(&dest)], None, &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not an empty folder"), "{}", stderr(&o));

    let embedded = json(&h.run(&["embed", QUERY], None, &[]));
    let vector = embedded["embeddings"][0].to_string();
    let hits = json(&h.run(
        &[
            "--json", "search", QUERY, "-c", "loan", "--mode", "exact", "-k", "5",
        ],
        None,
        &[],
    ));
    let bear: Vec<String> = hits["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["chunk_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(bear.len(), 5, "{hits}");

    let script = "import json, sys, lancedb\n\
        db = lancedb.connect(sys.argv[1])\n\
        t = db.open_table('chunks')\n\
        v = json.loads(sys.stdin.read())\n\
        hits = t.search(v).distance_type('cosine').limit(5).to_list()\n\
        print(json.dumps({'rows': t.count_rows(), 'ids': [h['id'] for h in hits]}))\n";
    let mut child = std::process::Command::new(python_with_lancedb())
        .args(["-c", script, s(&dest)])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(vector.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let python: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(python["rows"], chunks);
    assert_eq!(python["ids"], serde_json::json!(bear));

    let audit = std::fs::read_to_string(h.path("data/audit/audit.jsonl")).unwrap();
    assert!(audit.contains("rag.collections.export"), "{audit}");
    assert!(!audit.contains("loan.lancedb"), "the audit names no path");
}
