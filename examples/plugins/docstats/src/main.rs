//! BEAR plugin `docstats`: word, sentence and syllable counts and the Flesch reading-ease
//! score of a text. Protocol: argv[1] is the tool, stdin the input JSON, stdout the output.

use std::io::Read;

use serde_json::{Value, json};

fn syllables(word: &str) -> usize {
    let w: Vec<char> = word
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphabetic())
        .collect();
    let vowel = |c: char| "aeiouy".contains(c);
    let mut n = 0;
    let mut prev = false;
    for &c in &w {
        let v = vowel(c);
        if v && !prev {
            n += 1;
        }
        prev = v;
    }
    if w.ends_with(&['e']) && n > 1 {
        n -= 1;
    }
    n.max(1)
}

fn main() {
    let tool = std::env::args().nth(1).unwrap_or_default();
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).expect("stdin");
    let v: Value = serde_json::from_str(&input).expect("input JSON");
    let text = v["text"].as_str().unwrap_or_default();
    if tool != "stats" {
        std::process::exit(2);
    }
    let words: Vec<&str> = text
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .collect();
    let sentences = text
        .split(['.', '!', '?'])
        .filter(|s| s.chars().any(char::is_alphanumeric))
        .count()
        .max(1);
    let syl: usize = words.iter().map(|w| syllables(w)).sum();
    let n = words.len().max(1) as f64;
    let flesch = 206.835 - 1.015 * (n / sentences as f64) - 84.6 * (syl as f64 / n);
    println!(
        "{}",
        json!({
            "words": words.len(),
            "sentences": sentences,
            "characters": text.chars().count(),
            "syllables": syl,
            "flesch_reading_ease": (flesch * 10.0).round() / 10.0,
        })
    );
}
