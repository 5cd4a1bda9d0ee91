//! BEAR plugin `clauses`: classifies a contract clause by keyword rules (confidentiality,
//! indemnity, limitation of liability, termination, governing law, payment, force majeure).
//! Protocol: argv[1] is the tool, stdin the input JSON, stdout the output JSON.

use std::io::Read;

use serde_json::{Value, json};

const RULES: &[(&str, &[&str])] = &[
    (
        "confidentiality",
        &["confidential", "non-disclosure", "disclose"],
    ),
    (
        "indemnity",
        &["indemnify", "indemnification", "hold harmless"],
    ),
    (
        "limitation_of_liability",
        &["liability", "consequential", "liable"],
    ),
    (
        "termination",
        &["terminate", "termination", "notice period"],
    ),
    (
        "governing_law",
        &["governed by", "governing law", "jurisdiction", "courts of"],
    ),
    ("payment", &["invoice", "payment", "fee", "interest"]),
    (
        "force_majeure",
        &[
            "force majeure",
            "act of god",
            "beyond its reasonable control",
        ],
    ),
];

fn main() {
    let tool = std::env::args().nth(1).unwrap_or_default();
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).expect("stdin");
    let v: Value = serde_json::from_str(&input).expect("input JSON");
    if tool != "classify" {
        std::process::exit(2);
    }
    let text = v["text"].as_str().unwrap_or_default().to_lowercase();
    let mut scores: Vec<(&str, usize)> = RULES
        .iter()
        .map(|(label, words)| (*label, words.iter().filter(|w| text.contains(*w)).count()))
        .filter(|(_, n)| *n > 0)
        .collect();
    scores.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let labels: Vec<&str> = scores.iter().map(|(l, _)| *l).collect();
    println!(
        "{}",
        json!({ "label": labels.first().copied().unwrap_or("other"), "labels": labels })
    );
}
