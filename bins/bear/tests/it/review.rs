//! `bear review` (issue 27, point 3) with the real default models over the corpus: strict and
//! not, whole and map-reduced as a workflow run (its steps in the run database, its result
//! again by `--run`), every kept statement's citation verified against the document's text
//! with page and span; over REST, a map-reduce answers 202 with its run, the result comes once
//! the run has completed, and a cancelled run is reported as such; a document with more
//! sections than the limit is refused naming the limit, and an empty matter has nothing. The
//! review grid: documents against questions, cells checked, the same CSV from the CLI and REST.

use serde_json::{Value, json};

use crate::one_answer::Server;
use crate::security::Home;
use crate::{stderr, stdout};

fn lease() -> String {
    let p = crate::rag::corpus().join("commercial-lease.pdf");
    p.canonicalize().unwrap().to_string_lossy().into_owned()
}

fn ok_json(h: &Home, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = h.run(&all, None, &[]);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

fn err_json(h: &Home, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let o = h.run(&all, None, &[]);
    assert!(!o.status.success(), "{args:?} should fail: {}", stdout(&o));
    serde_json::from_str(stderr(&o).trim()).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)))
}

/// The statements of a review: each citation's sentence.
fn sentences(v: &Value) -> Vec<String> {
    let text = v["text"].as_str().unwrap();
    v["citations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let (s, e) = (
                c["sentence"][0].as_u64().unwrap(),
                c["sentence"][1].as_u64().unwrap(),
            );
            text[s as usize..e as usize].trim().to_string()
        })
        .collect()
}

/// A strict review: every statement kept has a verified citation, and each verified one has
/// a page, a span that is the document's text, and a sentence carrying its marker. Returns
/// the number of verified citations.
fn assert_checked(v: &Value, document_text: &str) -> usize {
    let done = (&v["status"], &v["strict"]);
    assert_eq!(done, (&json!("completed"), &json!(true)), "{v}");
    let text = v["text"].as_str().unwrap();
    let citations = v["citations"].as_array().unwrap();
    if v["nothing_verified"] == true {
        assert!(citations.is_empty(), "{v}");
        assert!(
            text.starts_with("Nothing in the review could be verified"),
            "{v}"
        );
        return 0;
    }
    let mut by_sentence = std::collections::BTreeMap::<(u64, u64), bool>::new();
    for c in citations {
        let sentence = (
            c["sentence"][0].as_u64().unwrap(),
            c["sentence"][1].as_u64().unwrap(),
        );
        *by_sentence.entry(sentence).or_default() |= c["verified"] == true;
        let marker = format!("[{}]", c["marker"]);
        let said = &text[sentence.0 as usize..sentence.1 as usize];
        assert!(said.contains(&marker), "{c}: {text}");
        if c["verified"] != true {
            continue;
        }
        let span = &c["span"];
        assert!(span["page"].as_u64().is_some_and(|p| p >= 1), "{c}");
        let passage = span["text"].as_str().unwrap();
        assert!(
            document_text.contains(passage),
            "the span is the document's text: {c}"
        );
    }
    assert!(
        by_sentence.values().all(|&ok| ok),
        "strict keeps verified statements only: {v}"
    );
    citations.iter().filter(|c| c["verified"] == true).count()
}

fn verified(v: &Value) -> usize {
    let all = v["citations"].as_array().unwrap();
    all.iter().filter(|c| c["verified"] == true).count()
}

/// A user key and a runtime for REST calls to `server`.
struct Rest {
    base: String,
    key: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Rest {
    fn new(h: &Home, server: &Server) -> Self {
        let key = ok_json(h, &["keys", "api-create", "--role", "admin"]);
        Self {
            base: server.base.clone(),
            key: key["key"].as_str().unwrap().to_string(),
            // No pooled connections: the server closes idle ones while the CLI part runs.
            http: reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        let url = format!("{}{path}", self.base);
        self.http
            .get(url)
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        let url = format!("{}{path}", self.base);
        let r = self.http.post(url).bearer_auth(&self.key).json(body);
        r.send().await.unwrap()
    }
}

/// The lease's stored passages (PII restored), as one string.
fn document_text(h: &Home, rest: &Rest, lease: &str) -> String {
    let docs = ok_json(h, &["docs", "list"]);
    let doc = docs.as_array().unwrap().iter().find(|d| d["path"] == lease);
    let id = doc.unwrap()["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/collections/default/documents/{id}/text");
    let v: Value = rest
        .rt
        .block_on(async { rest.get(&path).await.json().await.unwrap() });
    v["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn without_time(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("verification_us");
    v
}

#[test]
fn a_document_is_reviewed_whole_and_section_by_section_with_every_citation_checked() {
    let h = crate::rag::home_with_keys();
    let o = h.run(
        &["ingest", crate::rag::corpus().to_str().unwrap()],
        None,
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let lease = lease();
    let server = Server::start(&h);
    let rest = Rest::new(&h, &server);
    let text = document_text(&h, &rest, &lease);

    // Whole: strict keeps only verified statements, and each is one the model wrote (as
    // --no-strict shows them all, none removed).
    let strict = ok_json(&h, &["review", &lease, "--task", "deadlines"]);
    assert_eq!(
        (&strict["mode"], &strict["sections"]),
        (&json!("whole"), &json!(1))
    );
    assert_checked(&strict, &text);
    let loose = ok_json(
        &h,
        &["review", &lease, "--task", "deadlines", "--no-strict"],
    );
    assert_eq!(loose["removed_sentences"], 0, "{loose}");
    let all = loose["text"].as_str().unwrap();
    for s in sentences(&strict) {
        assert!(
            all.contains(&s),
            "a kept statement is the model's: {s}\n{all}"
        );
    }
    assert_eq!(
        verified(&strict),
        verified(&loose),
        "strict keeps every verified citation: {strict} {loose}"
    );
    let mut found = verified(&strict);

    // Map-reduce: four sections of the lease, run as a workflow whose steps are in the run
    // database; its result is the same when asked again by run id.
    let mr = ok_json(
        &h,
        &[
            "review",
            &lease,
            "--task",
            "obligations",
            "--section-tokens",
            "64",
        ],
    );
    assert_eq!(
        (&mr["mode"], &mr["sections"]),
        (&json!("map_reduce"), &json!(4)),
        "{mr}"
    );
    found += assert_checked(&mr, &text);
    let run = mr["run_id"].as_str().unwrap();
    let status = ok_json(&h, &["workflow", "status", run]);
    assert_eq!(
        (&status["name"], &status["status"]),
        (&json!("review"), &json!("completed"))
    );
    assert_eq!(
        status["progress"]["total"], 6,
        "review, 4 sections, combine: {status}"
    );
    let again = ok_json(&h, &["review", "--run", run]);
    assert_eq!(without_time(again), without_time(mr.clone()));

    // A summary is combined by the model; over the section limit the document is refused,
    // naming the limit to raise.
    let summary = ok_json(&h, &["review", &lease, "--section-tokens", "64"]);
    assert_eq!(summary["mode"], "map_reduce");
    found += assert_checked(&summary, &text);
    assert!(found > 0, "some statement of the three reviews is verified");
    let kf = h.path("master.key");
    h.write(
        "config/bear/config.toml",
        format!(
            "[security]\nkey_file = {kf:?}\n[rag]\nreview_max_sections = 3\n{}",
            crate::rag::WORD_FOR_WORD
        )
        .as_bytes(),
    );
    let e = err_json(&h, &["review", &lease, "--section-tokens", "64"]);
    assert_eq!(e["error"]["field"], "document", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rag.review_max_sections (3)"),
        "{e}"
    );

    // An empty matter has no such document.
    assert!(
        h.run(&["collections", "create", "empty"], None, &[])
            .status
            .success()
    );
    let e = err_json(&h, &["review", &lease, "-c", "empty"]);
    assert_eq!(e["error"]["kind"], "not_found", "{e}");

    rest.rt.block_on(over_rest(&rest, &lease, &text));
    grid(&h, &rest, &lease);
}

/// `bear grid`: documents against questions, each cell checked; the CSV written by the CLI is
/// the one REST gives; an empty matter is refused.
fn grid(h: &Home, rest: &Rest, lease: &str) {
    let nda = crate::rag::corpus()
        .join("mutual-nda.md")
        .canonicalize()
        .unwrap();
    let nda = nda.to_str().unwrap();
    let q = ["What is the monthly rent?", "Who are the parties?"];
    let args = ["grid", "-q", q[0], "-q", q[1], "-d", lease, "-d", nda];
    let g = ok_json(h, &args);
    let columns: Vec<&str> = g["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    assert_eq!(columns, q);
    let rows = g["rows"].as_array().unwrap();
    let paths: Vec<&str> = rows.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(paths, [lease, nda]);
    for r in rows {
        for c in r["cells"].as_array().unwrap() {
            // A cell holds an answer only with a verified citation; an empty one says why.
            match c["verified"] == true {
                true => assert!(
                    c["value"].is_string()
                        && c["quote"].is_string()
                        && c["page"].is_u64() == r["path"].as_str().unwrap().ends_with(".pdf"),
                    "{c}"
                ),
                false => assert!(c["value"].is_null() && c["reason"].is_string(), "{c}"),
            }
        }
    }
    // The lease's rent is on its page 2, and its cell says so.
    let rent = &rows[0]["cells"][0];
    assert_eq!(
        (&rent["verified"], &rent["page"]),
        (&json!(true), &json!(2)),
        "{rent}"
    );
    assert!(rent["value"].as_str().unwrap().contains("4,250"), "{rent}");

    let file = h.path("grid.csv");
    let mut with_csv = args.to_vec();
    with_csv.extend(["--csv", file.to_str().unwrap()]);
    assert!(h.run(&with_csv, None, &[]).status.success());
    let csv = std::fs::read_to_string(&file).unwrap();
    let mut lines = csv.lines();
    assert!(
        lines.next().unwrap().starts_with(
            "document,path,What is the monthly rent?,What is the monthly rent? (page),"
        )
    );
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let body = json!({"questions": q, "documents": [lease, nda]});
    let over_rest = rest.rt.block_on(async {
        let r = rest.post("/api/v1/grid?format=csv", &body).await;
        assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
        r.text().await.unwrap()
    });
    assert_eq!(over_rest, csv, "one grid, whichever door");

    let e = err_json(h, &["grid", "-q", q[0], "-c", "empty"]);
    assert_eq!(e["error"]["field"], "collection", "{e}");
}

/// The same review over REST: 202 and the run, its events until it completes, then the result;
/// a second run cancelled at once is reported cancelled.
async fn over_rest(rest: &Rest, lease: &str, text: &str) {
    let body = json!({"document": lease, "task": "parties", "section_tokens": 64});
    let r = rest.post("/api/v1/review", &body).await;
    assert_eq!(r.status(), 202);
    let started: Value = r.json().await.unwrap();
    assert_eq!(
        (&started["status"], &started["mode"]),
        (&json!("running"), &json!("map_reduce"))
    );
    let run = started["run_id"].as_str().unwrap().to_string();
    let mut events = rest.get(&format!("/api/v1/workflows/{run}/events")).await;
    let mut seen = String::new();
    crate::rest_runs::until_status(&mut events, &mut seen, "completed").await;
    let r = rest.get(&format!("/api/v1/review/{run}")).await;
    assert_eq!(r.status(), 200);
    let done: Value = r.json().await.unwrap();
    assert_checked(&done, text);
    assert_eq!(done["progress"], json!({"completed": 6, "total": 6}));

    // Cancelled as soon as it starts (a task of its own, so no cached step ends it first).
    let body = json!({"document": lease, "task": "custom", "section_tokens": 64,
                      "instruction": "List every amount of money the document names."});
    let started: Value = rest
        .post("/api/v1/review", &body)
        .await
        .json()
        .await
        .unwrap();
    let run = started["run_id"].as_str().unwrap().to_string();
    let mut events = rest.get(&format!("/api/v1/workflows/{run}/events")).await;
    let url = format!("{}/api/v1/workflows/{run}", rest.base);
    let r = rest
        .http
        .delete(url)
        .bearer_auth(&rest.key)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let mut seen = String::new();
    crate::rest_runs::until_status(&mut events, &mut seen, "cancelled").await;
    let r = rest.get(&format!("/api/v1/review/{run}")).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (&v["status"], &v["text"]),
        (&json!("cancelled"), &json!("")),
        "{v}"
    );

    // A run that is not a review, or no run, is not found.
    let r = rest
        .get("/api/v1/review/run-00000000000000000000000000000000")
        .await;
    assert_eq!(r.status(), 404);
}
