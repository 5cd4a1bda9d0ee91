//! Citation verification (issue 27, point 1): each sentence of an answer that cites `[n]` is
//! checked mechanically against source `n`'s text.
//!
//! The rules, stated once:
//! - A quoted span (between `"…"`, `“…”`, `„…“` or `«…»`) must occur in the source, after
//!   both are normalised: runs of white space become one space, typographic quotes and
//!   apostrophes become ASCII, and the quote's first letter may differ in case. Otherwise it
//!   is character-exact.
//! - A sentence without a quote is supported when every number it states (a token holding a
//!   digit: amounts, dates, article numbers; or a number word: "six", "thirty") occurs as
//!   written in one window of the source, and
//!   at least [`WORD_SHARE`] of its content words (those it does not repeat from the question;
//!   of the words it repeats, half must be in the window) (three letters or more, not a stop word) occur
//!   in that same window; a word of five letters or more also matches a source word sharing its
//!   first five letters ("terminates" / "termination"). The window is [`WINDOW`] source words.
//!   A name (a capitalised word after the sentence's first) must be in the window as well.
//!   A sentence stating fewer than [`MIN_CLAIM`] content words and numbers is not checked (not
//!   verified).
//! - The supporting span is the source's byte range from the first to the last matching word of
//!   the best window (or the quote itself).
//! - A sentence that cites nothing is checked against each source in turn; the first that
//!   supports it by the rules above becomes its citation, marked as added (BEAR's, not the
//!   model's).
//! - Sentences end at `.`, `?` or `!` before white space, except after a list number at the start
//!   of a line ("2."), a single letter ("B.V.", "e.g.") or a short abbreviation ("Art.", "No.").
//!
//! [`shares_key_terms`] is the honest-refusal check: before generation the retrieved text, and
//! in strict mode after it the verified answer, must hold at least half of the question's key
//! terms.

use serde::{Deserialize, Serialize};

/// How many source words one window holds.
pub const WINDOW: usize = 60;
/// The share of a sentence's content words its supporting window must hold.
pub const WORD_SHARE: f32 = 0.8;
/// The fewest content words and numbers a sentence without a quote must state to be checked
/// (a fragment such as "(Supplier)" is supported by any source that names it).
pub const MIN_CLAIM: usize = 3;

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
    "source",
    "sources",
    "document",
    "according",
    "states",
    "stated",
    "says",
    "said",
    "whose",
    "why",
    "much",
    "many",
    "tell",
    "give",
    "list",
    "about",
    "question",
    "answer",
    // German, Dutch and French (the corpus languages OCR reads by default): question words,
    // articles and particles of three letters or more.
    "der",
    "die",
    "das",
    "den",
    "dem",
    "des",
    "ein",
    "eine",
    "einer",
    "einen",
    "und",
    "oder",
    "ist",
    "sind",
    "wie",
    "wer",
    "wann",
    "warum",
    "welche",
    "welcher",
    "welches",
    "laut",
    "nach",
    "mit",
    "von",
    "für",
    "auf",
    "bei",
    "über",
    "zum",
    "zur",
    "nicht",
    "auch",
    "dass",
    "het",
    "een",
    "van",
    "zijn",
    "wat",
    "waar",
    "wanneer",
    "hoe",
    "welke",
    "volgens",
    "met",
    "voor",
    "uit",
    "bij",
    "niet",
    "ook",
    "dat",
    "dan",
    "les",
    "une",
    "est",
    "sont",
    "qui",
    "que",
    "quoi",
    "quel",
    "quelle",
    "quels",
    "quelles",
    "selon",
    "avec",
    "pour",
    "sur",
    "dans",
    "par",
    "pas",
    "aussi",
];

/// Words before a full stop that do not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "no", "nr", "art", "para", "mr", "ms", "mrs", "dr", "st", "vs", "cf", "pp", "sec", "ca",
];

/// Why a citation is not verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unsupported {
    /// The marker names no source (`[0]`, or past the last).
    NoSuchSource,
    /// A quoted span does not occur in the source.
    QuoteNotInSource,
    /// A number the sentence states does not occur in the source.
    NumberNotInSource,
    /// A name the sentence states (a capitalised word after its first) does not occur in the
    /// source near its other words.
    NameNotInSource,
    /// Too few of the sentence's words occur in any one passage of the source.
    TooFewWords,
    /// The sentence states fewer than [`MIN_CLAIM`] content words and numbers.
    NothingToCheck,
}

impl Unsupported {
    /// The reason in words.
    pub fn message(self) -> &'static str {
        match self {
            Self::NoSuchSource => "no such source",
            Self::QuoteNotInSource => "a quoted span is not in the source",
            Self::NumberNotInSource => "a number it states is not in the source",
            Self::NameNotInSource => "a name it states is not in the source",
            Self::TooFewWords => "too few of its words in any one passage of the source",
            Self::NothingToCheck => "the sentence states too little to check",
        }
    }
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// The check of one cited sentence against one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// The sentence's byte range in the answer.
    pub sentence: (usize, usize),
    /// The source number it cites (1-based).
    pub source: usize,
    /// Whether the source supports it.
    pub verified: bool,
    /// The model cited nothing here; BEAR found this source supporting the sentence.
    pub added: bool,
    /// The supporting span's byte range in the source's text, when verified.
    pub span: Option<(usize, usize)>,
    /// Why not, when not verified.
    pub reason: Option<Unsupported>,
}

/// Checks every citation of every sentence of `answer` against `sources` (source `n` is
/// `sources[n - 1]`); a marker out of range is a check that fails ("no such source"). A
/// sentence citing nothing gets the first source supporting it, if any, as an added check.
pub fn verify(answer: &str, sources: &[&str]) -> Vec<Check> {
    verify_about(answer, sources, "")
}

/// [`verify`] for an answer to `question`: the words a sentence shares with the question
/// name its topic and are not counted as its claim (see [`check_sentence`]).
pub fn verify_about(answer: &str, sources: &[&str], question: &str) -> Vec<Check> {
    let topic = key_terms(question);
    sentences(answer)
        .into_iter()
        .flat_map(|(s, e)| check_sentence(&answer[s..e], s, sources, &topic))
        .collect()
}

/// The checks of one sentence that starts at byte `offset` of its answer: one per marker it
/// holds, or, when it holds none, the first supporting source as an added check.
///
/// `topic` holds the question's key terms ([`key_terms`]): a sentence's words that are among
/// them only repeat what was asked, so its claim is the rest, and a sentence that only repeats
/// the question states nothing to check.
pub fn check_sentence(
    sentence: &str,
    offset: usize,
    sources: &[&str],
    topic: &[String],
) -> Vec<Check> {
    let range = (offset, offset + sentence.len());
    let cited = markers(sentence);
    if cited.is_empty() {
        return sources
            .iter()
            .enumerate()
            .find_map(|(i, src)| support(sentence, src, topic).ok().map(|span| (i + 1, span)))
            .map(|(n, span)| Check {
                sentence: range,
                source: n,
                verified: true,
                added: true,
                span: Some(span),
                reason: None,
            })
            .into_iter()
            .collect();
    }
    cited
        .into_iter()
        .map(|n| {
            let check = match sources.get(n.wrapping_sub(1)) {
                Some(src) if n > 0 => support(sentence, src, topic),
                _ => Err(Unsupported::NoSuchSource),
            };
            Check {
                sentence: range,
                source: n,
                verified: check.is_ok(),
                added: false,
                span: check.ok(),
                reason: check.err(),
            }
        })
        .collect()
}

/// The question's key terms: its numbers and content words.
pub fn key_terms(question: &str) -> Vec<String> {
    words(question)
        .into_iter()
        .map(|(w, _, _)| w)
        .filter(|w| is_number(w) || (w.chars().count() >= 3 && !STOP.contains(&w.as_str())))
        .collect()
}

/// Whether the retrieved `sources` together hold at least half of `question`'s key terms (a
/// question with none passes): a question whose terms the documents never use is not answered
/// from them.
pub fn shares_key_terms(question: &str, sources: &[&str]) -> bool {
    let terms = key_terms(question);
    if terms.is_empty() {
        return true;
    }
    let src: Vec<String> = sources
        .iter()
        .flat_map(|s| words(s).into_iter().map(|(w, _, _)| w))
        .collect();
    let found = terms
        .iter()
        .filter(|t| src.iter().any(|w| same_word(t, w)))
        .count();
    found * 2 >= terms.len()
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
        let stop = (matches!(b[i], b'.' | b'?' | b'!')
            && (!abbreviation(text, i) || marker_follows(&text[i + 1..])))
            || paragraph;
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

/// Whether `rest` starts (after spaces) with a citation marker: after an abbreviation, one
/// ("… Canal Estates B.V. [1] The rent …") ends the sentence.
fn marker_follows(rest: &str) -> bool {
    let rest = rest.trim_start_matches(' ');
    rest.strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .is_some_and(|(n, _)| {
            !n.is_empty()
                && n.bytes()
                    .all(|c| c.is_ascii_digit() || c == b',' || c == b' ')
        })
}

/// Whether the `.` at byte `i` closes a list number at the start of a line, a single letter or
/// a short abbreviation, rather than a sentence.
fn abbreviation(text: &str, i: usize) -> bool {
    if text.as_bytes()[i] != b'.' {
        return false;
    }
    let head = &text[..i];
    let word_start = head
        .char_indices()
        .rev()
        .find(|&(_, c)| !c.is_alphanumeric())
        .map_or(0, |(at, c)| at + c.len_utf8());
    let word = &head[word_start..];
    let line_start = head[..word_start].trim_end_matches([' ', '\t']);
    let list_number = !word.is_empty()
        && word.bytes().all(|b| b.is_ascii_digit())
        && (line_start.is_empty() || line_start.ends_with('\n'));
    list_number
        || word.chars().count() == 1 && word.chars().all(char::is_alphabetic)
        || ABBREVIATIONS.contains(&word.to_lowercase().as_str())
}

/// The `[n]` and `[n, m]` markers in a text, in order, once each.
pub(crate) fn markers(text: &str) -> Vec<usize> {
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

/// Numbers written as words, held to the same exact match as digits.
const NUMBER_WORDS: &[&str] = &[
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
    "hundred",
    "thousand",
    "million",
    "billion",
    "half",
    "quarter",
];

/// Whether `w` states a number: it holds a digit, or is a number word.
fn is_number(w: &str) -> bool {
    w.bytes().any(|b| b.is_ascii_digit()) || NUMBER_WORDS.contains(&w)
}

/// Whether a source word `have` matches a claimed word `want`: equal, one the other plus `s`,
/// or, both of five letters or more, the same first five letters.
fn same_word(want: &str, have: &str) -> bool {
    if want == have {
        return true;
    }
    let plural = |a: &str, b: &str| a.len() == b.len() + 1 && a.ends_with('s') && a.starts_with(b);
    if plural(want, have) || plural(have, want) {
        return true;
    }
    let long = |w: &str| w.chars().nth(4).is_some();
    long(want) && long(have) && want.chars().take(5).eq(have.chars().take(5))
}

/// The supporting span of `sentence` in `source`, or why there is none.
fn support(sentence: &str, source: &str, topic: &[String]) -> Result<(usize, usize), Unsupported> {
    let qs = quotes(sentence);
    if !qs.is_empty() {
        let mut span: Option<(usize, usize)> = None;
        for q in &qs {
            let (s, e) = find_quote(q, source).ok_or(Unsupported::QuoteNotInSource)?;
            span = Some(span.map_or((s, e), |(a, b)| (a.min(s), b.max(e))));
        }
        return span.ok_or(Unsupported::QuoteNotInSource);
    }
    let body = strip_markers(sentence);
    let body = without_list_number(&body);
    let claim: Vec<(String, bool)> = words(body)
        .into_iter()
        .enumerate()
        .filter(|(_, (w, _, _))| {
            is_number(w) || (w.chars().count() >= 3 && !STOP.contains(&w.as_str()))
        })
        .map(|(i, (w, at, _))| {
            // A capitalised word after the first is a name: it must be in the window too.
            let name = i > 0 && body[at..].starts_with(|c: char| c.is_uppercase());
            (w, name)
        })
        .collect();
    if claim.len() < MIN_CLAIM {
        return Err(Unsupported::NothingToCheck);
    }
    // Words repeated from the question are its topic: half of them must be in the window too
    // (a value is only supported where the source speaks of the same thing), and the rest is
    // its claim. A sentence that only repeats the question states nothing to check.
    let (topical, claim): (Vec<_>, Vec<_>) = claim.into_iter().partition(|(w, _)| {
        // A number is topic only when the question states it as written.
        match is_number(w) {
            true => topic.contains(w),
            false => topic.iter().any(|t| same_word(t, w)),
        }
    });
    if claim.is_empty() {
        return Err(Unsupported::NothingToCheck);
    }
    let topical: Vec<String> = topical.into_iter().map(|(w, _)| w).collect();
    let src = words(source);
    best_window(&claim, &topical, &src)
}

/// `s` without a leading list number ("2. ", "3) ").
fn without_list_number(s: &str) -> &str {
    let t = s.trim_start();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    match t.as_bytes().get(digits) {
        Some(b'.' | b')') if digits > 0 && digits <= 3 => &t[digits + 1..],
        _ => s,
    }
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

/// The first window of `src` holding every number of `claim` and at least [`WORD_SHARE`] of
/// its other words. Each claimed word's matching source positions are found once; a window
/// then asks only whether a position falls inside it.
fn best_window(
    claim: &[(String, bool)],
    topical: &[String],
    src: &[(String, usize, usize)],
) -> Result<(usize, usize), Unsupported> {
    let at = |w: &String, exact: bool| -> Vec<usize> {
        (0..src.len())
            .filter(|&i| {
                if exact {
                    src[i].0 == *w
                } else {
                    same_word(w, &src[i].0)
                }
            })
            .collect()
    };
    let numbers: Vec<Vec<usize>> = claim
        .iter()
        .filter(|(w, _)| is_number(w))
        .map(|(w, _)| at(w, true))
        .collect();
    let content: Vec<Vec<usize>> = claim
        .iter()
        .filter(|(w, _)| !is_number(w))
        .map(|(w, _)| at(w, false))
        .collect();
    let names: Vec<&Vec<usize>> = claim
        .iter()
        .filter(|(w, _)| !is_number(w))
        .zip(&content)
        .filter(|((_, name), _)| *name)
        .map(|(_, p)| p)
        .collect();
    if numbers.iter().any(Vec::is_empty) {
        return Err(Unsupported::NumberNotInSource);
    }
    if names.iter().any(|p| p.is_empty()) {
        return Err(Unsupported::NameNotInSource);
    }
    let topics: Vec<Vec<usize>> = topical.iter().map(|w| at(w, false)).collect();
    let need_topic = topics.len().div_ceil(2);
    let need = ((content.len() as f32) * WORD_SHARE).ceil() as usize;
    let mut reason = Unsupported::TooFewWords;
    // The best window: most words found, then the tightest span.
    let mut best: Option<(usize, usize, usize, usize)> = None;
    for start in 0..src.len().max(1) {
        let end = start + WINDOW;
        // The first position of each word inside the window.
        let inside = |p: &Vec<usize>| p.iter().copied().find(|&i| i >= start && i < end);
        if numbers.iter().any(|p| inside(p).is_none()) {
            reason = Unsupported::NumberNotInSource;
            continue;
        }
        if names.iter().any(|p| inside(p).is_none()) {
            reason = Unsupported::NameNotInSource;
            continue;
        }
        let hits: Vec<usize> = content.iter().chain(&numbers).filter_map(inside).collect();
        let found = content.iter().filter(|p| inside(p).is_some()).count();
        let on_topic = topics.iter().filter(|p| inside(p).is_some()).count();
        if on_topic < need_topic {
            continue;
        }
        if found >= need
            && let (Some(&first), Some(&last)) = (hits.iter().min(), hits.iter().max())
            && best.is_none_or(|(f, w, _, _)| found > f || (found == f && last - first < w))
        {
            best = Some((found, last - first, first, last));
        }
    }
    best.map(|(_, _, first, last)| (src[first].1, src[last].2))
        .ok_or(reason)
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
        assert_eq!(c.reason, Some(Unsupported::QuoteNotInSource));
    }

    #[test]
    fn wrong_numbers_and_unrelated_claims_are_refused_with_the_reason() {
        let wrong = "The monthly rent is EUR 2,540 [1].";
        let c = &verify(wrong, &[LEASE])[0];
        assert_eq!(
            (c.verified, c.reason),
            (false, Some(Unsupported::NumberNotInSource))
        );
        let unrelated = "The supplier must deliver the goods to Rotterdam by ship [1].";
        let c = &verify(unrelated, &[LEASE])[0];
        assert!(!c.verified);
        let out_of_range = "The rent is EUR 2,450 [3].";
        assert_eq!(
            verify(out_of_range, &[LEASE])[0].reason,
            Some(Unsupported::NoSuchSource)
        );
        assert_eq!(
            verify("Rent [0].", &[LEASE])[0].reason,
            Some(Unsupported::NoSuchSource)
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

    #[test]
    fn list_numbers_and_abbreviations_do_not_end_sentences() {
        let s =
            "1. The rent is EUR 4,250 per month.\n2. Canal Estates B.V. lets it, see Art. 2 [1].";
        let parts: Vec<&str> = sentences(s).iter().map(|&(a, b)| s[a..b].trim()).collect();
        assert_eq!(
            parts,
            [
                "1. The rent is EUR 4,250 per month.",
                "2. Canal Estates B.V. lets it, see Art. 2 [1]."
            ]
        );
        // The list number is not a number the sentence states.
        let lease = "The rent is EUR 4,250 per month, excluding VAT.";
        assert!(verify("3. The rent is EUR 4,250 per month [1].", &[lease])[0].verified);
    }

    #[test]
    fn names_must_be_in_the_window() {
        let privacy = "Client files are retained for seven years after the matter is closed, \
after which they are securely destroyed.";
        let c = &verify(
            "DocketPro client files are retained for seven years after the matter is closed [1].",
            &[privacy],
        )[0];
        assert!(c.verified, "the first word is not taken for a name: {c:?}");
        let c = &verify(
            "The law requires DocketPro files to be kept for seven years after the matter is closed [1].",
            &[privacy],
        )[0];
        assert_eq!(c.reason, Some(Unsupported::NameNotInSource), "{c:?}");
        assert!(
            verify(
                "Either Party may terminate with three months' written notice [1].",
                &[LEASE]
            )[0]
            .verified
        );
    }

    #[test]
    fn words_repeated_from_the_question_are_not_the_claim() {
        let nda = "This Mutual Non-Disclosure Agreement is made on 5 February 2024 between \
Harbor Analytics B.V., Amsterdam, and Lumen Legal LLP, London.";
        let q = "What claims are released under the settlement agreement?";
        // Seen from its own words, most of it is in the source; its claim (beyond the
        // question's words) is not.
        let a = "The settlement agreement is made between Harbor Analytics B.V. and Lumen Legal LLP, \
and it includes a claim for payment of the salary [1].";
        assert!(!verify_about(a, &[nda], q)[0].verified);
        let lease_echo = "How large are the premises at Keizersgracht 221? [1]";
        let c = &verify_about(
            lease_echo,
            &[LEASE],
            "How large are the premises at Keizersgracht 221?",
        )[0];
        assert_eq!(c.reason, Some(Unsupported::NothingToCheck), "{c:?}");
        let echo = "Question: What claims are released under the settlement agreement? [1]";
        assert_eq!(
            verify_about(echo, &[nda], q)[0].reason,
            Some(Unsupported::NothingToCheck)
        );
        // A value found in a source about something else is not support.
        let judgment = "The court orders the employer to pay the costs of the proceedings, set at \
EUR 1,928.";
        let q = "What is the penalty for breaching the non-compete clause?";
        let a = "The penalty for breaching the non-compete clause is EUR 1,928 [1].";
        assert!(!verify_about(a, &[judgment], q)[0].verified);
        let lease_q = "What is the monthly rent under the commercial lease?";
        let good = "The monthly rent under the commercial lease is EUR 2,450 [1].";
        assert!(verify_about(good, &[LEASE], lease_q)[0].verified);
    }

    #[test]
    fn numbers_in_words_must_match_too() {
        let mixed = "The rent is EUR 2,450 per month for a fixed term of five years [1].";
        let c = &verify(mixed, &[LEASE])[0];
        assert_eq!(c.reason, Some(Unsupported::NumberNotInSource), "{c:?}");
        assert!(
            verify(
                "Either party may terminate with three months' notice [1].",
                &[LEASE]
            )[0]
            .verified
        );
    }

    #[test]
    fn a_sentence_citing_nothing_gets_the_source_that_supports_it() {
        let other = "The supplier delivers gearbox housings DAP Rotterdam.";
        let checks = verify(
            "Either party may terminate with three months' written notice. The moon is cheese.",
            &[other, LEASE],
        );
        assert_eq!(checks.len(), 1, "{checks:?}");
        let c = &checks[0];
        assert!(c.verified && c.added && c.source == 2, "{c:?}");
        assert!(LEASE[c.span.unwrap().0..c.span.unwrap().1].contains("terminate"));
    }

    #[test]
    fn questions_share_key_terms_with_their_sources_or_not() {
        assert!(shares_key_terms(
            "How much rent does the tenant pay?",
            &[LEASE]
        ));
        assert!(shares_key_terms(
            "When can the lease be terminated?",
            &[LEASE]
        ));
        assert!(!shares_key_terms(
            "Which court hears disputes about the gearbox warranty?",
            &[LEASE]
        ));
        assert!(shares_key_terms("What?", &[LEASE]));
        // Question words and articles of other languages are not key terms.
        let brief = "Die Kündigungsfrist beträgt drei Monate zum Monatsende. Mandantenbrief";
        assert!(shares_key_terms(
            "Wie lang ist die Kündigungsfrist laut Mandantenbrief?",
            &[brief]
        ));
        assert!(!shares_key_terms(
            "Wie hoch ist die Kaution der Mieterin?",
            &[brief]
        ));
    }
}
