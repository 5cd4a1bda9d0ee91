//! `cargo xtask eval`: issue 27's evaluation. Ingests `examples/corpus` into a throw-away data
//! directory, asks every question of `examples/eval/questions.json` through `bear --json ask`,
//! strict and `--no-strict`, and scores: answers with a verified citation on the expected
//! document and page, refusals of the unanswerable questions, false refusals, citations that
//! fail a re-check outside the checker, and the checker's share of the answer time; then fills
//! each extraction schema from its document and compares the values. The report
//! goes to stdout and `docs/eval.md`, with every verified citation listed for reading.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Set {
    answerable: Vec<Answerable>,
    unanswerable: Vec<Unanswerable>,
    extraction: Vec<Extraction>,
}

#[derive(Deserialize)]
struct Extraction {
    id: String,
    schema: String,
    document: String,
    expected: serde_json::Map<String, Value>,
}

/// The extraction figures: outputs, schema-valid ones, values expected and values correct.
#[derive(Default)]
struct Extracted {
    outputs: usize,
    valid: usize,
    expected: usize,
    correct: usize,
    dropped: usize,
    lines: Vec<String>,
}

impl Extracted {
    /// Scores one document's `bear --json extract` answer against its expected values.
    fn add(&mut self, e: &Extraction, v: &Value) {
        let d = &v["documents"][0];
        self.outputs += 1;
        self.valid += usize::from(d["valid"] == true);
        self.dropped += d["dropped"].as_array().map_or(0, Vec::len);
        let mut right = Vec::new();
        for (field, want) in &e.expected {
            self.expected += 1;
            let got = &d["values"][field];
            let ok = match (want, got) {
                (Value::String(a), Value::String(b)) => {
                    norm(a).to_lowercase() == norm(b).to_lowercase()
                }
                (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
                _ => false,
            };
            self.correct += usize::from(ok);
            right.push(format!("{field} {} {got}", if ok { "✓" } else { "✗" }));
        }
        self.lines.push(format!(
            "- **{}** ({}): {}",
            e.id,
            e.document,
            right.join("; ")
        ));
    }
}

#[derive(Deserialize)]
struct Answerable {
    id: String,
    question: String,
    document: String,
    page: Option<u64>,
    passage: String,
}

#[derive(Deserialize)]
struct Unanswerable {
    id: String,
    question: String,
}

/// One question's two answers.
struct Asked {
    strict: Value,
    loose: Value,
}

/// Runs the evaluation and writes the report.
pub(crate) fn run() -> anyhow::Result<()> {
    let root = crate::workspace_root();
    let set: Set = serde_json::from_str(
        &std::fs::read_to_string(root.join("examples/eval/questions.json"))
            .context("cannot read examples/eval/questions.json")?,
    )?;
    let bear = crate::bear_binary()?;
    let home = tempfile::tempdir()?;
    let run = |args: &[&str]| -> anyhow::Result<Value> {
        let out = Command::new(&bear)
            .args(args)
            .env_remove("BEAR_CONFIG")
            .env("BEAR_DATA_DIR", home.path().join("data"))
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .output()
            .context("cannot run bear")?;
        if !out.status.success() {
            bail!(
                "bear {} failed: {}",
                args.first().copied().unwrap_or_default(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    let corpus = root.join("examples/corpus");
    run(&["--json", "ingest", &corpus.to_string_lossy()])?;
    let total = set.answerable.len() + set.unanswerable.len();
    let ask = |i: usize, q: &str| -> anyhow::Result<Asked> {
        eprintln!("[{}/{total}] {q}", i + 1);
        Ok(Asked {
            strict: run(&["--json", "ask", q])?,
            loose: run(&["--json", "ask", "--no-strict", q])?,
        })
    };
    let mut answered = Vec::new();
    for (i, a) in set.answerable.iter().enumerate() {
        answered.push(ask(i, &a.question)?);
    }
    let mut refused = Vec::new();
    for (i, u) in set.unanswerable.iter().enumerate() {
        refused.push(ask(set.answerable.len() + i, &u.question)?);
    }
    let mut extracted = Extracted::default();
    for e in &set.extraction {
        eprintln!("[extract] {} from {}", e.id, e.document);
        let schema = root.join("examples/eval").join(&e.schema);
        let doc = corpus.join(&e.document).canonicalize()?;
        let v = run(&[
            "--json",
            "extract",
            "--schema",
            &schema.to_string_lossy(),
            &doc.to_string_lossy(),
        ])?;
        extracted.add(e, &v);
    }
    let mut report = Report::of(&set, &answered, &refused).render(&set, &answered, &refused);
    report = report.replace(EXTRACTION_PLACEHOLDER, &extracted.render(&set));
    print!("{report}");
    std::fs::write(root.join("docs/eval.md"), report)?;
    eprintln!("written to docs/eval.md");
    Ok(())
}

fn is_refusal(v: &Value) -> bool {
    !v["refusal"].is_null()
}

/// The verified citations of an answer, each with its source.
fn verified(v: &Value) -> Vec<(&Value, &Value)> {
    let sources = v["sources"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    v["citations"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|c| c["verified"] == true)
        .filter_map(|c| {
            let n = c["marker"].as_u64()? as usize;
            Some((c, sources.get(n.checked_sub(1)?)?))
        })
        .collect()
}

fn on_expected(a: &Answerable, source: &Value) -> bool {
    source["path"].as_str().is_some_and(|p| {
        Path::new(p)
            .file_name()
            .is_some_and(|f| f == a.document.as_str())
    }) && (a.page.is_none() || source["page"].as_u64() == a.page)
}

fn norm(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Why a verified citation fails the re-check, if it does: its span must be a slice of its
/// source's text, and every token of its sentence holding a digit must occur in the span,
/// unless the question states it (the sentence restating its topic, as the checker allows).
fn recheck(answer: &Value, c: &Value, source: &Value, question: &str) -> Option<&'static str> {
    let span = norm(c["span"]["text"].as_str().unwrap_or_default());
    if span.is_empty() || !norm(source["text"].as_str().unwrap_or_default()).contains(&span) {
        return Some("the span is not in the source");
    }
    let text = answer["answer"].as_str().unwrap_or_default();
    let (s, e) = (
        c["sentence"][0].as_u64().unwrap_or(0) as usize,
        c["sentence"][1].as_u64().unwrap_or(0) as usize,
    );
    let sentence = text.get(s..e).unwrap_or_default();
    let body = sentence.split('[').next().unwrap_or_default();
    let lead = body
        .trim_start()
        .split_once(". ")
        .filter(|(n, _)| n.bytes().all(|b| b.is_ascii_digit()));
    let body = lead.map_or(body, |(_, rest)| rest);
    for word in body.split(|c: char| c.is_whitespace()) {
        let w = word.trim_matches(|c: char| !c.is_alphanumeric());
        let asked = question
            .split(|c: char| !c.is_alphanumeric())
            .any(|q| q == w);
        if w.bytes().any(|b| b.is_ascii_digit()) && !span.contains(w) && !asked {
            return Some("a number of the sentence is not in the span");
        }
    }
    None
}

/// The figures.
struct Report {
    found: usize,
    on_passage: usize,
    strict_refused: usize,
    loose_refused: usize,
    unanswerable_strict: usize,
    unanswerable_loose: usize,
    verified: usize,
    failed_recheck: usize,
    verify_us: u64,
    elapsed_ms: u64,
}

impl Report {
    fn of(set: &Set, answered: &[Asked], refused: &[Asked]) -> Self {
        let mut r = Report {
            found: 0,
            on_passage: 0,
            strict_refused: 0,
            loose_refused: 0,
            unanswerable_strict: 0,
            unanswerable_loose: 0,
            verified: 0,
            failed_recheck: 0,
            verify_us: 0,
            elapsed_ms: 0,
        };
        for (a, x) in set.answerable.iter().zip(answered) {
            let good: Vec<_> = verified(&x.strict)
                .into_iter()
                .filter(|(_, s)| on_expected(a, s))
                .collect();
            r.found += usize::from(!good.is_empty());
            let passage = norm(&a.passage);
            r.on_passage += usize::from(good.iter().any(|(c, _)| {
                let span = norm(c["span"]["text"].as_str().unwrap_or_default());
                span.contains(&passage) || passage.contains(&span) || overlaps(&span, &passage)
            }));
            r.strict_refused += usize::from(is_refusal(&x.strict));
            r.loose_refused += usize::from(is_refusal(&x.loose));
        }
        for x in refused {
            r.unanswerable_strict += usize::from(is_refusal(&x.strict));
            r.unanswerable_loose += usize::from(is_refusal(&x.loose));
        }
        let questions = set.answerable.iter().map(|a| &a.question);
        let questions = questions.chain(set.unanswerable.iter().map(|u| &u.question));
        for (q, x) in questions.zip(answered.iter().chain(refused)) {
            for (c, s) in verified(&x.strict) {
                r.verified += 1;
                r.failed_recheck += usize::from(recheck(&x.strict, c, s, q).is_some());
            }
            r.verify_us += x.strict["verification_us"].as_u64().unwrap_or(0);
            r.elapsed_ms += x.strict["elapsed_ms"].as_u64().unwrap_or(0);
        }
        r
    }

    fn render(&self, set: &Set, answered: &[Asked], refused: &[Asked]) -> String {
        let (na, nu) = (set.answerable.len(), set.unanswerable.len());
        let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
        let mut s = String::new();
        let model = bear_core::Config::default().models.default_generator;
        let _ = writeln!(s, "# Evaluation: verified citations and honest refusals\n");
        let _ = writeln!(
            s,
            "Generated by `cargo xtask eval` on {} over `examples/corpus` with the default models \
             (generator `{model}`, embedder `{}`), greedy decoding. The questions are \
             `examples/eval/questions.json`: {na} answerable, each with its document, page and \
             exact supporting passage, and {nu} the corpus cannot answer.\n",
            chrono::Utc::now().format("%Y-%m-%d"),
            bear_core::Config::default().models.default_embedder,
        );
        let _ = writeln!(s, "| Figure | Value | Goal |\n|---|---|---|");
        let rows = [
            (
                "Answerable: a verified citation on the expected document and page (strict)".to_string(),
                format!("{} of {na} ({:.0}%)", self.found, pct(self.found, na)),
                "",
            ),
            (
                "… of which the cited span is the expected passage".into(),
                format!("{} of {}", self.on_passage, self.found),
                "",
            ),
            (
                "Answerable refused, strict (the model's gap)".into(),
                format!("{} of {na} ({:.0}%)", self.strict_refused, pct(self.strict_refused, na)),
                "reported",
            ),
            (
                "Answerable refused, `--no-strict` (false refusals of retrieval and key terms)".into(),
                format!("{} of {na} ({:.0}%)", self.loose_refused, pct(self.loose_refused, na)),
                "≤ 10%",
            ),
            (
                "Unanswerable refused, strict".into(),
                format!("{} of {nu} ({:.0}%)", self.unanswerable_strict, pct(self.unanswerable_strict, nu)),
                "100%",
            ),
            (
                "Unanswerable refused, `--no-strict`".into(),
                format!("{} of {nu}", self.unanswerable_loose),
                "",
            ),
            (
                "Verified citations failing the re-check (span not in source, or a number not in the span)".into(),
                format!("{} of {}", self.failed_recheck, self.verified),
                "0",
            ),
            (
                "Checking's share of `ask` time (strict runs)".into(),
                format!(
                    "{:.3}% ({} µs of {} ms)",
                    self.verify_us as f64 / 10.0 / self.elapsed_ms.max(1) as f64,
                    self.verify_us,
                    self.elapsed_ms
                ),
                "≤ 5%",
            ),
        ];
        for (what, value, goal) in rows {
            let _ = writeln!(s, "| {what} | {value} | {goal} |");
        }
        let ids = |pick: &dyn Fn(&Asked) -> bool, which: &[&String], asked: &[Asked]| -> String {
            let v: Vec<&str> = which
                .iter()
                .zip(asked)
                .filter(|(_, x)| pick(x))
                .map(|(id, _)| id.as_str())
                .collect();
            if v.is_empty() {
                "none".into()
            } else {
                v.join(", ")
            }
        };
        let a_ids: Vec<&String> = set.answerable.iter().map(|a| &a.id).collect();
        let u_ids: Vec<&String> = set.unanswerable.iter().map(|u| &u.id).collect();
        let _ = writeln!(
            s,
            "\n- Answerable, refused at `--no-strict`: {}\n- Answerable, refused in strict mode: {}\n\
             - Unanswerable, answered in strict mode: {}",
            ids(&|x| is_refusal(&x.loose), &a_ids, answered),
            ids(&|x| is_refusal(&x.strict), &a_ids, answered),
            ids(&|x| !is_refusal(&x.strict), &u_ids, refused),
        );
        let _ = writeln!(
            s,
            "\n{EXTRACTION_PLACEHOLDER}\n\n\
             ## Every verified citation (strict), to read\n\n\
             A citation counts as fabricated when its span does not support its sentence. The \
             re-check above is mechanical; the list below is for a reader to confirm.\n"
        );
        let questions = set
            .answerable
            .iter()
            .map(|a| (&a.id, &a.question))
            .chain(set.unanswerable.iter().map(|u| (&u.id, &u.question)));
        for ((id, q), x) in questions.zip(answered.iter().chain(refused)) {
            let cites = verified(&x.strict);
            if cites.is_empty() {
                continue;
            }
            let _ = writeln!(s, "- **{id}** — {q}");
            for (c, src) in cites {
                let text = x.strict["answer"].as_str().unwrap_or_default();
                let r = |i: usize| c["sentence"][i].as_u64().unwrap_or(0) as usize;
                let sentence = norm(text.get(r(0)..r(1)).unwrap_or_default());
                let added = if c["added"] == true {
                    " (added by BEAR)"
                } else {
                    ""
                };
                let _ = writeln!(
                    s,
                    "  - “{sentence}”{added} ← {}: “{}”",
                    src["citation"].as_str().unwrap_or_default(),
                    norm(c["span"]["text"].as_str().unwrap_or_default())
                );
            }
        }
        s
    }
}

/// Where the extraction figures go in the report.
const EXTRACTION_PLACEHOLDER: &str = "<!-- extraction -->";

impl Extracted {
    fn render(&self, set: &Set) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "## Extraction under a JSON schema\n\n{} schemas (`examples/eval/schemas/`), one \
             document each, `bear --json extract` with the default generator.\n",
            set.extraction.len()
        );
        let _ = writeln!(s, "| Figure | Value | Goal |\n|---|---|---|");
        let _ = writeln!(
            s,
            "| Schema-valid outputs | {} of {} | 100% |",
            self.valid, self.outputs
        );
        let _ = writeln!(
            s,
            "| Extracted values correct | {} of {} ({:.0}%) | ≥ 90% |",
            self.correct,
            self.expected,
            100.0 * self.correct as f64 / self.expected.max(1) as f64
        );
        let _ = writeln!(
            s,
            "| Values dropped (not found in the document) | {} | |\n",
            self.dropped
        );
        for l in &self.lines {
            let _ = writeln!(s, "{l}");
        }
        s
    }
}

/// Whether two texts share most of the shorter one's words.
fn overlaps(a: &str, b: &str) -> bool {
    let words = |s: &str| -> Vec<String> {
        s.split_whitespace()
            .map(|w| {
                w.trim_matches(|c: char| !c.is_alphanumeric())
                    .to_lowercase()
            })
            .filter(|w| w.len() > 2)
            .collect()
    };
    let (wa, wb) = (words(a), words(b));
    let (short, long) = if wa.len() <= wb.len() {
        (&wa, &wb)
    } else {
        (&wb, &wa)
    };
    !short.is_empty() && short.iter().filter(|w| long.contains(w)).count() * 2 >= short.len()
}
