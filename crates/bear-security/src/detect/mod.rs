//! PII detection: one linear-time pass of a multi-pattern regex over an evasion-normalised view
//! of the text, then checksum, range and context rules per match.
//!
//! How a scan works:
//! 1. [`normalize`] folds full-width forms, drops zero-width characters and plain-spaces exotic
//!    separators, keeping a map back to the original (borrowed and free for ordinary text).
//! 2. One `regex-automata` meta regex holding every recognizer (built-ins, the user's name list,
//!    deny-lists and custom patterns) finds the leftmost match; its literal prefilters and lazy
//!    DFA keep the scan linear, and user patterns are compiled under a size limit.
//! 3. The match's rule validates it (Luhn, mod-97, 11-proof, SSA ranges, Base58Check/Bech32,
//!    calendar dates) and scores it, raising the score when context words are near. A rejected
//!    match gives the lower-priority recognizers their chance at the same position (anchored);
//!    an accepted one consumes its span. Overlaps are therefore resolved deterministically:
//!    leftmost first, then recognizer priority.
//! 4. Spans are mapped back to byte and character offsets in the original text.

mod checks;
mod net;
mod normalize;
mod recognizers;

use std::sync::Arc;

use aho_corasick::AhoCorasick;
use bear_core::{PiiConfig, PiiEntity};
use regex_automata::meta::{self, Regex};
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind, PatternID};
use serde::Serialize;

use crate::{Error, Result};
use recognizers::{CONTEXT_BOOST, CONTEXT_WORDS, Rule, ctx};

/// One piece of PII found in a text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// What kind of PII.
    pub entity: PiiEntity,
    /// Byte span in the original text.
    pub start: usize,
    /// End of the byte span (exclusive).
    pub end: usize,
    /// Character (Unicode scalar) span in the original text.
    pub char_start: usize,
    /// End of the character span (exclusive).
    pub char_end: usize,
    /// Confidence in 0..=1.
    pub score: f32,
    /// The recognizer that found it.
    #[serde(serialize_with = "serialize_arc_str")]
    pub recognizer: Arc<str>,
}

fn serialize_arc_str<S: serde::Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

/// The largest compiled size a single user pattern may have.
const USER_PATTERN_LIMIT: usize = 1 << 20;
/// How far before a match context words count (bytes).
const CONTEXT_BEFORE: usize = 64;
/// How far after a match context words count (bytes).
const CONTEXT_AFTER: usize = 24;
/// How far before a number a word saying it is not PII counts (bytes).
const NOT_PII_BEFORE: usize = 20;

struct Recognizer {
    name: Arc<str>,
    /// This recognizer alone, for anchored re-checks and captures at a known position.
    single: Regex,
    rule: Rule,
    /// For fixed rules: the entity and score.
    fixed: Option<(PiiEntity, f32)>,
}

/// The PII detector. Build once, share freely (`Send + Sync`), scan many texts.
pub struct Detector {
    re: Regex,
    recognizers: Vec<Recognizer>,
    context: AhoCorasick,
    min_score: f32,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("recognizers", &self.recognizers.len())
            .field("min_score", &self.min_score)
            .finish()
    }
}

fn syntax_config() -> syntax::Config {
    syntax::Config::new().utf8(true).unicode(true)
}

/// A pattern's compile error without the pattern text (which may itself hold names).
fn describe(e: &meta::BuildError) -> String {
    if let Some(limit) = e.size_limit() {
        return format!("compiles to more than the {limit}-byte limit; simplify it");
    }
    match e.syntax_error() {
        Some(regex_syntax::Error::Parse(p)) => {
            format!("{} at character {}", p.kind(), p.span().start.offset)
        }
        Some(regex_syntax::Error::Translate(t)) => {
            format!("{} at character {}", t.kind(), t.span().start.offset)
        }
        _ => "it could not be compiled".into(),
    }
}

fn build_single(pattern: &str, name: &str) -> Result<Regex> {
    Regex::builder()
        .syntax(syntax_config())
        .build(pattern)
        .map_err(|e| Error::Pattern {
            name: name.into(),
            reason: describe(&e),
        })
}

/// Whether the number at `start..end` is only part of a longer run of digit groups.
fn continues_a_number(hay: &str, start: usize, end: usize) -> bool {
    let b = hay.as_bytes();
    let before =
        start >= 2 && matches!(b[start - 1], b' ' | b'-' | b'.') && b[start - 2].is_ascii_digit();
    let after = end + 1 < b.len() && matches!(b[end], b' ' | b'-') && b[end + 1].is_ascii_digit();
    before || after
}

/// Whether the grouped number `m` at `start` is the tail of a longer run of groups with the
/// same separator (`1404-5002-1555-7223` holds no 12-digit card `5002-1555-7223`), unless
/// what came before was itself a finding ending there (two cards in a row).
fn continues_groups(hay: &str, start: usize, m: &str, prev_end: usize) -> bool {
    let b = hay.as_bytes();
    let Some(sep) = m.bytes().find(|c| !c.is_ascii_digit()) else {
        return false;
    };
    start >= 2 && b[start - 1] == sep && b[start - 2].is_ascii_digit() && prev_end != start - 1
}

/// Whether the dotted number at `start..end` is only part of a longer one (`1.2.3.4.5`).
fn continues_dotted(hay: &str, start: usize, end: usize) -> bool {
    let b = hay.as_bytes();
    let before = start >= 2 && b[start - 1] == b'.' && b[start - 2].is_ascii_digit();
    let after = end + 1 < b.len() && b[end] == b'.' && b[end + 1].is_ascii_digit();
    before || after
}

fn check_name(name: &str, key: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 40
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(Error::Setting {
            key: key.into(),
            expected: "a name of 1-40 letters, digits or `_`".into(),
        });
    }
    Ok(())
}

fn check_score(score: f32, key: &str) -> Result<()> {
    if !(0.0..=1.0).contains(&score) {
        return Err(Error::Setting {
            key: key.into(),
            expected: "a score between 0 and 1".into(),
        });
    }
    Ok(())
}

/// Whole-word, case-insensitive alternation of literal terms.
fn literal_alternation(terms: &[String], key: &str) -> Result<String> {
    let mut alts = Vec::with_capacity(terms.len());
    for t in terms {
        let t = t.trim();
        if t.is_empty() {
            return Err(Error::Setting {
                key: key.into(),
                expected: "non-empty terms".into(),
            });
        }
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        let pre = if word(t.chars().next()) { "\\b" } else { "" };
        let post = if word(t.chars().last()) { "\\b" } else { "" };
        // Unicode \b on a literal is fine: the literal prefilter finds candidates first.
        alts.push(format!("{pre}{}{post}", regex_syntax::escape(t)));
    }
    Ok(format!("(?i:{})", alts.join("|")))
}

impl Detector {
    /// Builds a detector. Custom patterns are compiled one by one under a size limit first, so
    /// a bad one is named; patterns that can match empty text are refused.
    pub fn new(config: &PiiConfig) -> Result<Self> {
        check_score(config.min_score, "pii.min_score")?;
        let mut patterns: Vec<String> = Vec::new();
        let mut recognizers = Vec::new();

        // User intent first: custom patterns, deny-lists, names.
        for (i, p) in config.patterns.iter().enumerate() {
            let key = format!("pii.patterns[{i}]");
            check_name(&p.name, &format!("{key}.name"))?;
            check_score(p.score, &format!("{key}.score"))?;
            let single = Regex::builder()
                .syntax(syntax_config())
                .configure(meta::Config::new().nfa_size_limit(Some(USER_PATTERN_LIMIT)))
                .build(&p.pattern)
                .map_err(|e| Error::Pattern {
                    name: p.name.clone(),
                    reason: describe(&e),
                })?;
            let can_be_empty = regex_syntax::ParserBuilder::new()
                .build()
                .parse(&p.pattern)
                .map_or(true, |h| h.properties().minimum_len() == Some(0));
            if can_be_empty {
                return Err(Error::Pattern {
                    name: p.name.clone(),
                    reason: "it can match empty text".into(),
                });
            }
            if p.pattern.len() > 4096 {
                return Err(Error::Pattern {
                    name: p.name.clone(),
                    reason: "it is longer than 4096 characters".into(),
                });
            }
            patterns.push(p.pattern.clone());
            recognizers.push(Recognizer {
                single,
                name: p.name.as_str().into(),
                rule: Rule::Fixed,
                fixed: Some((PiiEntity::Custom(p.name.clone()), p.score)),
            });
        }
        for (i, d) in config.deny_lists.iter().enumerate() {
            let key = format!("pii.deny_lists[{i}]");
            check_name(&d.name, &format!("{key}.name"))?;
            if d.terms.is_empty() {
                continue;
            }
            let pattern = literal_alternation(&d.terms, &format!("{key}.terms"))?;
            recognizers.push(Recognizer {
                single: build_single(&pattern, &d.name)?,
                name: format!("deny_list:{}", d.name).into(),
                rule: Rule::Fixed,
                fixed: Some((PiiEntity::Custom(d.name.clone()), 1.0)),
            });
            patterns.push(pattern);
        }
        if !config.names.is_empty() {
            let pattern = literal_alternation(&config.names, "pii.names")?;
            recognizers.push(Recognizer {
                single: build_single(&pattern, "names")?,
                name: "name_list".into(),
                rule: Rule::NameList,
                fixed: None,
            });
            patterns.push(pattern);
        }
        for b in recognizers::builtins() {
            recognizers.push(Recognizer {
                single: build_single(&b.pattern, b.name)?,
                name: b.name.into(),
                rule: b.rule,
                fixed: None,
            });
            patterns.push(b.pattern);
        }

        let re = Regex::builder()
            .syntax(syntax_config())
            .configure(
                meta::Config::new()
                    .match_kind(MatchKind::LeftmostFirst)
                    .nfa_size_limit(Some(64 << 20))
                    .hybrid_cache_capacity(16 << 20),
            )
            .build_many(&patterns)
            .map_err(|e| Error::Pattern {
                name: "(all patterns together)".into(),
                reason: describe(&e),
            })?;
        // Leftmost-longest, so `telefon` is seen whole rather than as `tel` inside a word.
        let context = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(aho_corasick::MatchKind::LeftmostLongest)
            .build(CONTEXT_WORDS.iter().map(|(w, _)| w))
            .map_err(|_| Error::Crypto("context automaton"))?;
        Ok(Self {
            re,
            recognizers,
            context,
            min_score: config.min_score,
        })
    }

    /// All findings in `text`, in order, non-overlapping.
    pub fn detect(&self, text: &str) -> Vec<Finding> {
        let norm = normalize::Normalized::new(text);
        let hay = norm.text.as_ref();
        let mut out = Vec::new();
        let mut chars = normalize::CharCounter::new(text);
        let mut at = 0;
        // Where the last finding ended (in `hay`).
        let mut prev_end = usize::MAX;
        while at < hay.len() {
            let Some(m) = self.re.search(&Input::new(hay).range(at..)) else {
                break;
            };
            let start = m.start();
            let mut accepted = None;
            let mut pid = m.pattern();
            let mut end = m.end();
            loop {
                if let Some(hit) = self.classify(hay, pid, start, end, prev_end) {
                    accepted = Some((pid, end, hit));
                    break;
                }
                // Give later recognizers their chance at this position.
                let next = (pid.as_usize() + 1..self.recognizers.len()).find_map(|p| {
                    let input = Input::new(hay).range(start..).anchored(Anchored::Yes);
                    let m = self.recognizers[p].single.search(&input)?;
                    Some((PatternID::new(p).ok()?, m.end()))
                });
                match next {
                    Some((p, e)) => {
                        pid = p;
                        end = e;
                    }
                    None => break,
                }
            }
            match accepted {
                Some((pid, _, (entity, score, s, e))) if e > s => {
                    let (os, oe) = norm.original_span(s, e);
                    let char_start = chars.at(os);
                    let char_end = chars.at(oe);
                    out.push(Finding {
                        entity,
                        start: os,
                        end: oe,
                        char_start,
                        char_end,
                        score,
                        recognizer: self.recognizers[pid.as_usize()].name.clone(),
                    });
                    // Resume after the finding itself: text the rule trimmed off the match
                    // (a trailing title, punctuation) is scanned again.
                    at = e.max(start + 1);
                    prev_end = e;
                }
                _ => {
                    at = start + hay[start..].chars().next().map_or(1, char::len_utf8);
                }
            }
            while !hay.is_char_boundary(at) {
                at += 1;
            }
        }
        out
    }

    /// Context groups supported by words near `start..end`.
    fn context(&self, hay: &str, start: usize, end: usize) -> u16 {
        self.context_within(hay, start, end, CONTEXT_BEFORE, CONTEXT_AFTER)
    }

    /// Whether a word just before `start` says the number there is not PII ("version",
    /// "order", "invoice"), with no word saying it is (`supports`).
    fn not_pii(&self, hay: &str, start: usize, end: usize, supports: u16) -> bool {
        let near = self.context_within(hay, start, end, NOT_PII_BEFORE, 0);
        near & ctx::NOT_PII != 0 && self.context(hay, start, end) & supports == 0
    }

    /// Context groups supported by words from `before` bytes before `start` to `after` bytes
    /// after `end`.
    fn context_within(
        &self,
        hay: &str,
        start: usize,
        end: usize,
        before: usize,
        after: usize,
    ) -> u16 {
        let mut lo = start.saturating_sub(before);
        while !hay.is_char_boundary(lo) {
            lo -= 1;
        }
        let mut hi = (end + after).min(hay.len());
        while !hay.is_char_boundary(hi) {
            hi += 1;
        }
        let mut bits = 0;
        for m in self.context.find_iter(&hay[lo..hi]) {
            // Whole words only: `tel` must not fire inside `hotel`.
            let (s, e) = (lo + m.start(), lo + m.end());
            if s >= start && e <= end {
                continue;
            }
            let before = hay[..s].chars().next_back();
            let after = hay[e..].chars().next();
            let wordy = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
            if wordy(before) || wordy(after) {
                continue;
            }
            bits |= CONTEXT_WORDS[m.pattern().as_usize()].1;
        }
        bits
    }

    /// Validates and scores one match; `None` rejects it. Returns the finding's own span, which
    /// may be narrower than the match (a name after a title).
    fn classify(
        &self,
        hay: &str,
        pid: PatternID,
        start: usize,
        end: usize,
        prev_end: usize,
    ) -> Option<(PiiEntity, f32, usize, usize)> {
        let rec = &self.recognizers[pid.as_usize()];
        let m = &hay[start..end];
        let boost = |bit: u16| {
            if self.context(hay, start, end) & bit != 0 {
                CONTEXT_BOOST
            } else {
                0.0
            }
        };
        let (entity, score, s, e) = match rec.rule {
            Rule::Fixed => {
                let (entity, score) = rec.fixed.clone()?;
                (entity, score, start, end)
            }
            Rule::NameList => (PiiEntity::Person, 0.95, start, end),
            Rule::Email => {
                // Only a whole local part: a rejected longer one is not retried in pieces.
                let before = hay[..start].chars().next_back();
                if before
                    .is_some_and(|c| c.is_ascii_alphanumeric() || "!#$%&'*+^_`|~-.".contains(c))
                {
                    return None;
                }
                let s = start + net::email(m)?;
                (PiiEntity::Email, 0.9 + boost(ctx::EMAIL), s, end)
            }
            Rule::Url => {
                let len = net::url(m)?;
                (PiiEntity::Url, 0.6, start, start + len)
            }
            Rule::Iban => {
                if !checks::iban(m) {
                    return None;
                }
                (PiiEntity::Iban, 1.0, start, end)
            }
            Rule::BtcBech32 => {
                checks::btc_bech32(m).then_some(())?;
                (PiiEntity::Crypto, 0.95, start, end)
            }
            Rule::BtcLegacy => {
                checks::btc_base58(m).then_some(())?;
                (PiiEntity::Crypto, 0.95, start, end)
            }
            Rule::Nino => {
                checks::uk_nino(m).then_some(())?;
                (PiiEntity::UkNino, 0.65 + boost(ctx::NINO), start, end)
            }
            Rule::Ecli => {
                let t = m.trim_end_matches('.');
                (PiiEntity::Ecli, 0.95, start, start + t.len())
            }
            Rule::Mac => (PiiEntity::MacAddress, 0.75, start, end),
            Rule::Ipv4 => {
                if continues_dotted(hay, start, end) || self.not_pii(hay, start, end, ctx::IP) {
                    return None;
                }
                net::ipv4(m).then_some(())?;
                (PiiEntity::IpAddress, 0.6 + boost(ctx::IP), start, end)
            }
            Rule::Ipv6 => {
                let before = hay[..start].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || matches!(c, ':' | '.' | '_')) {
                    return None;
                }
                let (s, e, unspecified) = net::ipv6(m)?;
                let after = hay[end..].chars().next();
                if e == m.len() && after.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    return None;
                }
                if unspecified && self.context(hay, start, end) & ctx::IP == 0 {
                    return None;
                }
                (
                    PiiEntity::IpAddress,
                    0.7 + boost(ctx::IP),
                    start + s,
                    start + e,
                )
            }
            Rule::Card => {
                if continues_groups(hay, start, m, prev_end) {
                    return None;
                }
                let len = checks::card(m)?;
                (PiiEntity::CreditCard, 1.0, start, start + len)
            }
            Rule::SsnDashed => {
                if continues_a_number(hay, start, end) || self.not_pii(hay, start, end, ctx::SSN) {
                    return None;
                }
                checks::us_ssn(&checks::digits(m)).then_some(())?;
                let base = if m.contains('-') { 0.85 } else { 0.5 };
                (PiiEntity::UsSsn, base + boost(ctx::SSN), start, end)
            }
            Rule::NineDigits => {
                if continues_a_number(hay, start, end) {
                    return None;
                }
                let d = checks::digits(m);
                let c = self.context(hay, start, end);
                if c & ctx::SSN != 0 && checks::us_ssn(&d) {
                    (PiiEntity::UsSsn, 0.5 + CONTEXT_BOOST, start, end)
                } else if checks::elfproef(&d) {
                    if c & ctx::RSIN != 0 {
                        (PiiEntity::NlRsin, 0.4 + CONTEXT_BOOST, start, end)
                    } else {
                        let b = if c & ctx::BSN != 0 {
                            CONTEXT_BOOST
                        } else {
                            0.0
                        };
                        (PiiEntity::NlBsn, 0.4 + b, start, end)
                    }
                } else {
                    return None;
                }
            }
            Rule::DateNumeric | Rule::DateIso | Rule::DateWords => {
                if !date_ok(rec.rule, m) || self.context(hay, start, end) & ctx::BIRTH == 0 {
                    return None;
                }
                (PiiEntity::DateOfBirth, 0.85, start, end)
            }
            Rule::PhoneIntl | Rule::PhoneUs | Rule::PhoneNational => {
                // Only a number after `+` may follow other digits (a list of numbers).
                let inside = !m.starts_with('+') && continues_a_number(hay, start, end);
                if inside || self.not_pii(hay, start, end, ctx::PHONE) {
                    return None;
                }
                let b = boost(ctx::PHONE);
                let base = checks::phone(rec.rule, m, b > 0.0)?;
                (PiiEntity::Phone, base + b, start, end)
            }
            Rule::PersonTitle | Rule::PersonRole => {
                let mut caps = rec.single.create_captures();
                let input = Input::new(hay).range(start..end).anchored(Anchored::Yes);
                rec.single.search_captures(&input, &mut caps);
                let g = caps.get_group(1)?;
                let name = trim_trailing_titles(&hay[g.start..g.end]);
                let g = regex_automata::Span {
                    start: g.start,
                    end: g.start + name.len(),
                };
                if rec.rule == Rule::PersonRole && ends_with_suffix(name) {
                    (PiiEntity::Organization, 0.75, g.start, g.end)
                } else if rec.rule == Rule::PersonRole {
                    (PiiEntity::Person, 0.6, g.start, g.end)
                } else {
                    (PiiEntity::Person, 0.85, g.start, g.end)
                }
            }
            Rule::OrgSuffix => {
                if hay[end..].chars().next().is_some_and(char::is_alphanumeric) {
                    return None;
                }
                let mut s = start;
                loop {
                    let rest = &hay[s..end];
                    let word = rest.split([' ', '\t']).next().unwrap_or("");
                    if STOP_WORDS.contains(&word) && rest.len() > word.len() {
                        s += word.len();
                        s += hay[s..end].len() - hay[s..end].trim_start().len();
                    } else {
                        break;
                    }
                }
                let rest = &hay[s..end];
                if rest.split([' ', '\t']).filter(|w| !w.is_empty()).count() < 2 {
                    return None;
                }
                (PiiEntity::Organization, 0.75, s, end)
            }
        };
        let score = score.min(1.0);
        (score >= self.min_score).then_some((entity, score, s, e))
    }
}

const STOP_WORDS: &[&str] = &[
    "The", "A", "An", "In", "On", "At", "For", "By", "With", "And", "Between", "From", "To", "Of",
    "De", "Het", "Die", "Der", "Le", "La", "Les", "Dear", "Re", "Our", "Your",
];

/// Titles that start a new name rather than continue one.
const TITLES: &[&str] = &[
    "Mr", "Mrs", "Ms", "Miss", "Mx", "Dr", "Prof", "Sir", "Dame", "Lord", "Lady", "Judge",
    "Justice", "Hon", "Mevrouw", "Mevr", "Dhr", "Heer", "Herr", "Frau", "Mme", "Mlle", "Me",
];

/// `name` without trailing title words ("John Smith Mr" is "John Smith").
fn trim_trailing_titles(name: &str) -> &str {
    let mut n = name;
    loop {
        let Some((head, last)) = n.rsplit_once([' ', '\t']) else {
            return n;
        };
        if TITLES.contains(&last.trim_end_matches('.')) {
            n = head.trim_end();
        } else {
            return n;
        }
    }
}

fn ends_with_suffix(name: &str) -> bool {
    let last = name.rsplit([' ', '\t']).next().unwrap_or("");
    matches!(
        last,
        "B.V."
            | "N.V."
            | "BV"
            | "NV"
            | "GmbH"
            | "AG"
            | "KG"
            | "SE"
            | "Inc"
            | "Inc."
            | "LLP"
            | "LLC"
            | "Ltd"
            | "Ltd."
            | "Limited"
            | "plc"
            | "PLC"
            | "S.A."
            | "SA"
            | "SARL"
            | "SAS"
            | "Corp"
            | "Corp."
            | "Corporation"
            | "Co."
            | "Company"
            | "Group"
            | "Holding"
            | "Holdings"
            | "Incorporated"
            | "L.L.C."
            | "r.l."
    )
}

fn date_ok(rule: Rule, m: &str) -> bool {
    let nums: Vec<u32> = m
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    match (rule, nums.as_slice()) {
        (Rule::DateNumeric, [a, b, y]) => checks::date(*a, *b, *y) || checks::date(*b, *a, *y),
        (Rule::DateIso, [y, mo, d]) => checks::date(*d, *mo, *y),
        (Rule::DateWords, [d, y]) | (Rule::DateWords, [y, d]) if *y >= 1900 => {
            (1..=31).contains(d) && (1900..=2099).contains(y)
        }
        _ => false,
    }
}
