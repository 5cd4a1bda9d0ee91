//! BEAR plugin `citations`: finds European case-law identifiers (ECLI) and statute references
//! (`Article 6:162 BW`, `Art. 8 ECHR`, `section 12 of the Data Protection Act`) in a text.
//! Protocol: argv[1] is the tool, stdin the input JSON, stdout the output JSON.

use std::io::Read;

use serde_json::{Value, json};

fn ecli(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("ECLI:") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == ':' || c == '.'))
            .unwrap_or(tail.len());
        let id = tail[..end].trim_end_matches('.');
        if id.split(':').count() == 5 {
            out.push(id.to_string());
        }
        rest = &tail[end.max(5)..];
    }
    out
}

fn statutes(text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let lw = w.to_ascii_lowercase();
        if !(lw == "article" || lw == "art." || lw == "section" || lw == "s." || lw == "artikel") {
            continue;
        }
        let Some(num) = words.get(i + 1) else {
            continue;
        };
        if !num.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            continue;
        }
        // The number and the following capitalised words or code abbreviation.
        let mut parts = vec![*w, num.trim_end_matches([',', '.', ';'])];
        for next in words.iter().skip(i + 2).take(6) {
            let bare = next.trim_end_matches([',', '.', ';', ')']);
            let starts_upper = bare.chars().next().is_some_and(char::is_uppercase);
            if starts_upper || bare == "of" || bare == "the" {
                parts.push(bare);
                if bare.len() != next.len() {
                    break;
                }
            } else {
                break;
            }
        }
        while matches!(parts.last(), Some(&"of") | Some(&"the")) {
            parts.pop();
        }
        out.push(parts.join(" "));
    }
    out
}

fn main() {
    let tool = std::env::args().nth(1).unwrap_or_default();
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).expect("stdin");
    let v: Value = serde_json::from_str(&input).expect("input JSON");
    let text = v["text"].as_str().unwrap_or_default();
    let out = match tool.as_str() {
        "extract" => json!({ "ecli": ecli(text), "statutes": statutes(text) }),
        _ => std::process::exit(2),
    };
    println!("{out}");
}
