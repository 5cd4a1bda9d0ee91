//! Citation verification (issue 27, point 1): each sentence of an answer that cites `[n]` is
//! checked mechanically against source `n`'s text.
//!
//! The rules, stated once:
//! - A quoted span (between `"…"`, `“…”`, `„…“` or `«…»`) must occur in the source, after
//!   both are normalised: runs of white space become one space, typographic quotes and
//!   apostrophes become ASCII, and the quote's first letter may differ in case. Otherwise it
//!   is character-exact.
//! - A sentence without a quote is supported when every number it states (a token holding a
//!   digit: amounts, dates, article numbers) occurs as written in one window of the source, and
//!   at least [`WORD_SHARE`] of its content words (three letters or more, not a stop word) occur
//!   in that same window; a word of five letters or more also matches a source word sharing its
//!   first five letters ("terminates" / "termination"). The window is [`WINDOW`] source words.
//! - The supporting span is the source's byte range from the first to the last matching word of
//!   the best window (or the quote itself).

/// How many source words one window holds.
pub const WINDOW: usize = 60;
/// The share of a sentence's content words its supporting window must hold.
pub const WORD_SHARE: f32 = 0.6;

const STOP: &[&str] = &[
    "the",
    "and",
    "for",
    "that",
    "this",
    "with",
    "are",
    "was",
    "were",
    "has",
    "have",
    "had",
    "not",
    "but",
    "its",
    "his",
    "her",
    "their",
    "they",
    "from",
    "which",
    "will",
    "shall",
    "may",
    "any",
    "all",
    "each",
    "per",
    "under",
    "into",
    "onto",
    "upon",
    "than",
    "then",
    "there",
    "these",
    "those",
    "such",
    "been",
    "being",
    "also",
    "who",
    "whom",
    "what",
    "when",
    "where",
    "how",
    "can",
    "must",
    "should",
    "would",
    "could",
    "does",
    "did",
    "out",
    "off",
    "our",
    "your",
    "you",
    "she",
    "him",
    "them",
    "one",
    "two",
    "source",
    "sources",
    "document",
    "according",
    "states",
    "stated",
    "says",
    "said",
];

/// The check of one cited sentence against one source.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The sentence's byte range in the answer.
    pub sentence: (usize, usize),
    /// The source number it cites (1-based).
    pub source: usize,
    /// Whether the source supports it.
    pub verified: bool,
    /// The supporting span's byte range in the source's text, when verified.
    pub span: Option<(usize, usize)>,
    /// Why not, when not verified.
    pub reason: Option<&'static str>,
}

/// Checks every citation of every sentence of `answer` against `sources` (source `n` is
/// `sources[n - 1]`); a marker out of range is a check that fails ("no such source").
pub fn verify(answer: &str, sources: &[&str]) -> Vec<Check> {
    let mut out = Vec::new();
    for (s, e) in sentences(answer) {
        let text = &answer[s..e];
        for n in markers(text) {
            let check = match sources.get(n.wrapping_sub(1)) {
                Some(src) if n > 0 => support(text, src),
                _ => Err("no such source"),
            };
            out.push(Check {
                sentence: (s, e),
                source: n,
                verified: check.is_ok(),
                span: check.ok(),
                reason: check.err(),
            });
        }
    }
    out
}

/// The sentences of `text` as byte ranges: they end after `.`, `?` or `!` followed by white
/// space, or at a line break before a blank line or a list item; citation markers right after
/// the stop stay with the sentence.
pub fn sentences(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        // A line break ends a sentence only before a blank line or a list item.
        let paragraph = b[i] == b'\n' && matches!(b.get(i + 1), Some(b'\n' | b'-' | b'*'));
        let stop = matches!(b[i], b'.' | b'?' | b'!') || paragraph;
        if !stop {
            i += 1;
            continue;
        }
        let mut end = i + 1;
        // Markers after the stop: "… in 2020.[2]" or "… in 2020. [2]".
        let mut j = end;
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        while j < b.len() && b[j] == b'[' {
            match text[j..].find(']') {
                Some(k)
                    if text[j + 1..j + k]
                        .bytes()
                        .all(|c| c.is_ascii_digit() || c == b',' || c == b' ') =>
                {
                    j += k + 1;
                    end = j;
                }
                _ => break,
            }
        }
        if paragraph || end >= b.len() || b[end].is_ascii_whitespace() {
            if !text[start..end].trim().is_empty() {
                out.push((start, end));
            }
            start = end;
        }
        i = end.max(i + 1);
    }
    if !text[start..].trim().is_empty() {
        out.push((start, text.len()));
    }
    out
}

/// The `[n]` and `[n, m]` markers in a sentence, in order, once each.
fn markers(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('[') {
        rest = &rest[i + 1..];
        let Some(j) = rest.find(']') else { break };
        for part in rest[..j].split(',') {
            if let Ok(n) = part.trim().parse::<usize>()
                && !out.contains(&n)
            {
                out.push(n);
            }
        }
        rest = &rest[j..];
    }
    out
}

/// `s` normalised (white space runs to one space, typographic quotes to ASCII), with the
/// original byte offset of each normalised byte.
fn normalise(s: &str) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(s.len());
    let mut map = Vec::with_capacity(s.len());
    let mut space = false;
    for (at, c) in s.char_indices() {
        let c = match c {
            '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{2032}' => '\'',
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{00AB}' | '\u{00BB}' => '"',
            c if c.is_whitespace() => ' ',
            c => c,
        };
        if c == ' ' && space {
            continue;
        }
        space = c == ' ';
        let before = out.len();
        out.push(c);
        map.extend(std::iter::repeat_n(at, out.len() - before));
    }
    map.push(s.len());
    (out, map)
}

/// The quoted spans of a sentence.
fn quotes(sentence: &str) -> Vec<String> {
    let (norm, _) = normalise(sentence);
    norm.split('"')
        .skip(1)
        .step_by(2)
        .map(|q| q.trim().to_string())
        .filter(|q| q.chars().count() >= 3)
        .collect()
}

/// Where `quote` occurs in `source` (normalised; its first letter in either case).
fn find_quote(quote: &str, source: &str) -> Option<(usize, usize)> {
    let (norm, map) = normalise(source);
    let mut first = quote.chars();
    let head = first.next()?;
    let tail = first.as_str();
    for h in [
        head.to_lowercase().to_string(),
        head.to_uppercase().to_string(),
    ] {
        if let Some(at) = norm.find(&format!("{h}{tail}")) {
            let end = at + h.len() + tail.len();
            return Some((map[at], map[end]));
        }
    }
    None
}

/// The words of `s` with their byte ranges, lower-cased, punctuation trimmed.
fn words(s: &str) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    let boundary = |c: char| !(c.is_alphanumeric() || matches!(c, '.' | ',' | '-' | '/' | '%'));
    for (i, c) in s.char_indices().chain(std::iter::once((s.len(), ' '))) {
        match (start, boundary(c)) {
            (None, false) => start = Some(i),
            (Some(st), true) => {
                let w = s[st..i].trim_matches(|c: char| !c.is_alphanumeric());
                if !w.is_empty() {
                    let off = st + s[st..i].find(w).unwrap_or(0);
                    out.push((w.to_lowercase(), off, off + w.len()));
                }
                start = None;
            }
            _ => {}
        }
    }
    out
}

fn is_number(w: &str) -> bool {
    w.bytes().any(|b| b.is_ascii_digit())
}

fn same_word(want: &str, have: &str) -> bool {
    if want == have {
        return true;
    }
    let stem = |w: &str| w.chars().take(5).collect::<String>();
    want.chars().count() >= 5 && have.chars().count() >= 5 && stem(want) == stem(have)
}

/// The supporting span of `sentence` in `source`, or why there is none.
fn support(sentence: &str, source: &str) -> Result<(usize, usize), &'static str> {
    let qs = quotes(sentence);
    if !qs.is_empty() {
        let mut span: Option<(usize, usize)> = None;
        for q in &qs {
            let (s, e) = find_quote(q, source).ok_or("a quoted span is not in the source")?;
            span = Some(span.map_or((s, e), |(a, b)| (a.min(s), b.max(e))));
        }
        return span.ok_or("a quoted span is not in the source");
    }
    let claim: Vec<String> = words(&strip_markers(sentence))
        .into_iter()
        .map(|(w, _, _)| w)
        .filter(|w| is_number(w) || (w.chars().count() >= 3 && !STOP.contains(&w.as_str())))
        .collect();
    if claim.is_empty() {
        return Err("the sentence states nothing to check");
    }
    let src = words(source);
    best_window(&claim, &src)
}

fn strip_markers(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('[') {
        out.push_str(&rest[..i]);
        match rest[i..].find(']') {
            Some(j) => rest = &rest[i + j + 1..],
            None => {
                rest = &rest[i..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The window of `src` holding every number of `claim` and the largest share of its words.
fn best_window(
    claim: &[String],
    src: &[(String, usize, usize)],
) -> Result<(usize, usize), &'static str> {
    let numbers: Vec<&String> = claim.iter().filter(|w| is_number(w)).collect();
    let content: Vec<&String> = claim.iter().filter(|w| !is_number(w)).collect();
    let need = ((content.len() as f32) * WORD_SHARE).ceil() as usize;
    let mut reason = "too few of its words in any one passage of the source";
    for start in 0..src.len().max(1) {
        let window = &src[start..(start + WINDOW).min(src.len())];
        let has = |w: &String| window.iter().position(|(s, _, _)| same_word(w, s));
        if numbers
            .iter()
            .any(|n| !window.iter().any(|(s, _, _)| s == *n))
        {
            reason = "a number it states is not in the source";
            continue;
        }
        let hits: Vec<usize> = content
            .iter()
            .chain(numbers.iter())
            .filter_map(|w| has(w))
            .collect();
        let found = content.iter().filter(|w| has(w).is_some()).count();
        if found >= need && !hits.is_empty() {
            let first = *hits.iter().min().unwrap_or(&0);
            let last = *hits.iter().max().unwrap_or(&0);
            return Ok((window[first].1, window[last].2));
        }
    }
    Err(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any answer against any sources: no panic, one check per marker of each sentence,
        /// and every span is a slice of its source that holds whole characters.
        #[test]
        fn any_text_gives_checks_with_valid_spans(
            answer in "(\\PC|\\[[0-9]{1,2}\\]|[.?!\n\"“”]){0,120}",
            source in "(\\PC|[.,\n\"“”0-9]){0,300}",
        ) {
            for c in verify(&answer, &[&source, &answer]) {
                prop_assert!(answer.get(c.sentence.0..c.sentence.1).is_some());
                if let Some((s, e)) = c.span {
                    let src = if c.source == 1 { &source } else { &answer };
                    prop_assert!(s <= e && src.get(s..e).is_some());
                }
                prop_assert_eq!(c.verified, c.span.is_some());
                prop_assert_eq!(c.verified, c.reason.is_none());
            }
        }
    }

    const LEASE: &str = "Article 4. Rent\n\nThe tenant pays a monthly rent of EUR 2,450, due on the \
first day of each month. The landlord may index the rent once a year.\n\nArticle 9. Termination\n\n\
Either party may terminate this lease with three months' written notice.";

    #[test]
    fn supported_sentences_are_verified_with_their_span() {
        let answer = "The monthly rent is EUR 2,450 [1]. Either party can terminate with three months' notice.[1]";
        let checks = verify(answer, &[LEASE]);
        assert_eq!(checks.len(), 2, "{checks:?}");
        assert!(checks.iter().all(|c| c.verified), "{checks:?}");
        let (s, e) = checks[0].span.unwrap();
        assert!(LEASE[s..e].contains("2,450") && LEASE[s..e].contains("monthly"));
        let (s, e) = checks[1].span.unwrap();
        assert!(LEASE[s..e].contains("terminate"), "{}", &LEASE[s..e]);
    }

    #[test]
    fn quotes_must_occur_in_the_source_after_normalising_only() {
        let ok = "The lease says “either party may terminate this lease” [1].";
        assert!(verify(ok, &[LEASE])[0].verified);
        let spaced = "It says \"The  tenant pays a\nmonthly rent\" [1].";
        assert!(verify(spaced, &[LEASE])[0].verified);
        let bent = "It says \"either party may end this lease\" [1].";
        let c = &verify(bent, &[LEASE])[0];
        assert!(!c.verified);
        assert_eq!(c.reason, Some("a quoted span is not in the source"));
    }

    #[test]
    fn wrong_numbers_and_unrelated_claims_are_refused_with_the_reason() {
        let wrong = "The monthly rent is EUR 2,540 [1].";
        let c = &verify(wrong, &[LEASE])[0];
        assert_eq!(
            (c.verified, c.reason),
            (false, Some("a number it states is not in the source"))
        );
        let unrelated = "The supplier must deliver the goods to Rotterdam by ship [1].";
        let c = &verify(unrelated, &[LEASE])[0];
        assert!(!c.verified);
        let out_of_range = "The rent is EUR 2,450 [3].";
        assert_eq!(
            verify(out_of_range, &[LEASE])[0].reason,
            Some("no such source")
        );
        assert_eq!(
            verify("Rent [0].", &[LEASE])[0].reason,
            Some("no such source")
        );
    }

    #[test]
    fn sentences_keep_their_trailing_markers_and_survive_odd_text() {
        let s = "One.[1] Two [2]. Three\nfour? [1, 2] five\n\n- six";
        let parts: Vec<&str> = sentences(s).iter().map(|&(a, b)| &s[a..b]).collect();
        assert_eq!(
            parts,
            [
                "One.[1]",
                " Two [2].",
                " Three\nfour? [1, 2]",
                " five\n",
                "- six"
            ]
        );
        for odd in [
            "",
            "[",
            "]",
            "[[1]",
            "\"",
            "“",
            "[1]",
            "....",
            "a [99999999999999999999] b",
        ] {
            let _ = verify(odd, &[LEASE, ""]);
        }
        assert!(verify("No citation here.", &[LEASE]).is_empty());
    }
}
