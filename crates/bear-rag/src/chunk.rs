//! Token-aware chunking that respects headings, paragraphs and sentences.
//!
//! The text is cut into units: sentences (by Unicode sentence boundaries) inside paragraphs
//! (blank lines, form feeds), with headings (`#` lines) as units of their own. Units longer than
//! a chunk are cut at word boundaries. Units are then packed greedily up to the target size in
//! the embedder's own tokens; a heading always opens a new chunk, and each chunk starts with the
//! last units of the one before, up to the overlap. Chunk text is always an exact slice of the
//! document, so offsets cite it precisely.

use unicode_segmentation::UnicodeSegmentation;

/// One chunk: a slice of the document and where it sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// 0-based position in the document.
    pub ordinal: u32,
    /// Byte range in the document text.
    pub bytes: std::ops::Range<usize>,
    /// Character range in the document text.
    pub chars: std::ops::Range<usize>,
    /// Tokens, by the embedder's tokenizer (sum over units; a close estimate for the slice).
    pub tokens: usize,
}

/// Chunking parameters.
#[derive(Debug, Clone, Copy)]
pub struct ChunkParams {
    /// Target tokens per chunk.
    pub target: usize,
    /// Tokens carried over from the previous chunk.
    pub overlap: usize,
}

impl ChunkParams {
    /// A cap on a chunk's size in bytes, whatever its token count: text the tokenizer folds
    /// into a few unknown tokens (very long "words") still makes bounded chunks.
    fn max_bytes(&self) -> usize {
        self.target * 12
    }
}

#[derive(Debug, Clone)]
struct Unit {
    range: std::ops::Range<usize>,
    heading: bool,
    para_start: bool,
}

/// Splits `text` into units: headings, and sentences within paragraphs.
fn units(text: &str) -> Vec<Unit> {
    let mut out = Vec::new();
    let mut para_start = true;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let start = pos;
        pos += line.len();
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed == "\x0c" {
            para_start = true;
            continue;
        }
        if trimmed.starts_with('#') {
            let lead = line.len() - line.trim_start().len();
            out.push(Unit {
                range: start + lead..start + lead + trimmed.len(),
                heading: true,
                para_start: true,
            });
            para_start = true;
            continue;
        }
        for (i, s) in line.split_sentence_bound_indices() {
            let t = s.trim();
            if t.is_empty() {
                continue;
            }
            let lead = s.len() - s.trim_start().len();
            let a = start + i + lead;
            out.push(Unit {
                range: a..a + t.len(),
                heading: false,
                para_start,
            });
            para_start = false;
        }
    }
    out
}

/// Cuts a unit that is longer than `max` tokens at word boundaries.
fn split_long(
    text: &str,
    unit: &Unit,
    max: usize,
    max_bytes: usize,
    count: &dyn Fn(&[&str]) -> bear_core::Result<Vec<usize>>,
) -> bear_core::Result<Vec<(Unit, usize)>> {
    let s = &text[unit.range.clone()];
    // Words, with any word longer than `max` characters (a run with no boundaries at all)
    // cut into pieces of at most `max` (and 256) characters.
    let mut words: Vec<(usize, &str)> = Vec::new();
    let max_chars = max.min(256);
    for (off, w) in s.split_word_bound_indices() {
        if w.len() <= max_chars {
            words.push((off, w));
            continue;
        }
        let mut start = 0;
        for (n, (i, _)) in w.char_indices().enumerate() {
            if n > 0 && n % max_chars == 0 {
                words.push((off + start, &w[start..i]));
                start = i;
            }
        }
        words.push((off + start, &w[start..]));
    }
    let texts: Vec<&str> = words.iter().map(|(_, w)| *w).collect();
    let counts = count(&texts)?;
    let mut out = Vec::new();
    let (mut start, mut acc) = (0usize, 0usize);
    for (i, ((off, w), c)) in words.iter().zip(&counts).enumerate() {
        if acc > 0 && (acc + c > max || off + w.len() - start > max_bytes) {
            let a = unit.range.start + start;
            let b = unit.range.start + off;
            out.push((trimmed(text, a..b, unit, out.is_empty()), acc));
            start = *off;
            acc = 0;
        }
        acc += c;
        if i + 1 == words.len() {
            let a = unit.range.start + start;
            let b = unit.range.start + off + w.len();
            out.push((trimmed(text, a..b, unit, out.is_empty()), acc));
        }
    }
    Ok(out
        .into_iter()
        .filter(|(u, _)| !u.range.is_empty())
        .collect())
}

fn trimmed(text: &str, r: std::ops::Range<usize>, parent: &Unit, first: bool) -> Unit {
    let s = &text[r.clone()];
    let lead = s.len() - s.trim_start().len();
    let a = r.start + lead;
    Unit {
        range: a..a + s.trim().len(),
        heading: parent.heading && first,
        para_start: parent.para_start && first,
    }
}

/// Chunks `text`. `count` is the embedder's token counter; `breaks` are byte offsets (page
/// starts) where a new chunk must begin, so a chunk never spans two pages.
pub fn chunk(
    text: &str,
    params: ChunkParams,
    breaks: &[usize],
    count: &dyn Fn(&[&str]) -> bear_core::Result<Vec<usize>>,
) -> bear_core::Result<Vec<Chunk>> {
    let mut raw = units(text);
    // A unit that is the first at or after a break opens a section, like a heading.
    let mut b = breaks.iter().copied().filter(|&x| x > 0).peekable();
    for u in &mut raw {
        let mut crossed = false;
        while b.peek().is_some_and(|&x| x <= u.range.start) {
            b.next();
            crossed = true;
        }
        if crossed {
            u.heading = true;
            u.para_start = true;
        }
    }
    let slices: Vec<&str> = raw.iter().map(|u| &text[u.range.clone()]).collect();
    let counts = count(&slices)?;
    let mut units: Vec<(Unit, usize)> = Vec::with_capacity(raw.len());
    for (u, c) in raw.into_iter().zip(counts) {
        if c > params.target || u.range.len() > params.max_bytes() {
            units.extend(split_long(
                text,
                &u,
                params.target,
                params.max_bytes(),
                count,
            )?);
        } else {
            units.push((u, c));
        }
    }
    // Pack units [first..next) into chunks.
    let mut chunks = Vec::new();
    let mut first = 0usize;
    while first < units.len() {
        let mut next = first;
        let mut tokens = 0usize;
        let start = units[first].0.range.start;
        while next < units.len() {
            let (u, c) = &units[next];
            let opens_section = u.heading && next > first;
            let too_long = u.range.end - start > params.max_bytes();
            if next > first && (tokens + c > params.target || opens_section || too_long) {
                break;
            }
            tokens += c;
            next += 1;
        }
        // Prefer to end at a paragraph boundary when one lies in the last third of the chunk.
        if next < units.len() && !units[next].0.para_start && !units[next].0.heading {
            let mut t = tokens;
            let mut k = next;
            while k > first + 1 {
                t -= units[k - 1].1;
                k -= 1;
                if t * 3 < tokens * 2 {
                    break;
                }
                if units[k].0.para_start {
                    next = k;
                    tokens = t;
                    break;
                }
            }
        }
        let bytes = units[first].0.range.start..units[next - 1].0.range.end;
        chunks.push(Chunk {
            ordinal: chunks.len() as u32,
            bytes,
            chars: 0..0,
            tokens,
        });
        if next >= units.len() {
            break;
        }
        // Overlap: step back over trailing units within the overlap budget, never back over a
        // heading boundary and never so far that no progress is made.
        let mut back = next;
        let mut carried = 0usize;
        if !units[next].0.heading {
            while back > first + 1 {
                let c = units[back - 1].1;
                if carried + c > params.overlap || units[back - 1].0.heading {
                    break;
                }
                carried += c;
                back -= 1;
            }
        }
        first = back;
    }
    // Character offsets, in one pass over the text.
    let mut bounds: Vec<usize> = chunks
        .iter()
        .flat_map(|c| [c.bytes.start, c.bytes.end])
        .collect();
    bounds.sort_unstable();
    bounds.dedup();
    let mut char_at = std::collections::HashMap::with_capacity(bounds.len());
    let (mut chars, mut last) = (0usize, 0usize);
    for b in bounds {
        chars += text[last..b].chars().count();
        last = b;
        char_at.insert(b, chars);
    }
    for c in &mut chunks {
        c.chars = char_at[&c.bytes.start]..char_at[&c.bytes.end];
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One token per whitespace-separated word: enough to test packing.
    fn words(texts: &[&str]) -> bear_core::Result<Vec<usize>> {
        Ok(texts.iter().map(|t| t.split_whitespace().count()).collect())
    }

    #[test]
    fn packs_sentences_and_breaks_at_headings() {
        let text = "# Lease\n\nThe tenant pays rent. Rent is due monthly. Late rent costs interest.\n\n\
                    # Termination\n\nEither party may end the lease with notice.\n";
        let c = chunk(
            text,
            ChunkParams {
                target: 12,
                overlap: 0,
            },
            &[],
            &words,
        )
        .unwrap();
        let s: Vec<&str> = c.iter().map(|c| &text[c.bytes.clone()]).collect();
        assert_eq!(
            s,
            vec![
                "# Lease\n\nThe tenant pays rent. Rent is due monthly.",
                "Late rent costs interest.",
                "# Termination\n\nEither party may end the lease with notice.",
            ]
        );
        for ch in &c {
            assert!(ch.tokens <= 12);
            let by_chars: String = text
                .chars()
                .skip(ch.chars.start)
                .take(ch.chars.len())
                .collect();
            assert_eq!(by_chars, &text[ch.bytes.clone()]);
        }
        assert_eq!(
            c.iter().map(|c| c.ordinal).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn overlap_repeats_trailing_sentences() {
        let text = "One a. Two b. Three c. Four d. Five e. Six f.";
        let c = chunk(
            text,
            ChunkParams {
                target: 6,
                overlap: 2,
            },
            &[],
            &words,
        )
        .unwrap();
        let s: Vec<&str> = c.iter().map(|c| &text[c.bytes.clone()]).collect();
        assert_eq!(
            s,
            vec![
                "One a. Two b. Three c.",
                "Three c. Four d. Five e.",
                "Five e. Six f."
            ]
        );
    }

    #[test]
    fn long_sentences_are_cut_at_words_and_unicode_offsets_hold() {
        let text = format!("Überschrift é {}", "wort ".repeat(50));
        let c = chunk(
            &text,
            ChunkParams {
                target: 10,
                overlap: 0,
            },
            &[],
            &words,
        )
        .unwrap();
        assert!(c.len() >= 5);
        for ch in &c {
            assert!(ch.tokens <= 10, "{ch:?}");
            assert!(text.is_char_boundary(ch.bytes.start) && text.is_char_boundary(ch.bytes.end));
            let by_chars: String = text
                .chars()
                .skip(ch.chars.start)
                .take(ch.chars.len())
                .collect();
            assert_eq!(by_chars, &text[ch.bytes.clone()]);
        }
        assert!(
            chunk(
                "",
                ChunkParams {
                    target: 10,
                    overlap: 0
                },
                &[],
                &words
            )
            .unwrap()
            .is_empty()
        );
        // One 10,000-character "word": cut into pieces, never one giant chunk.
        let blob = "x".repeat(10_000);
        let chars = |t: &[&str]| Ok(t.iter().map(|t| t.chars().count()).collect());
        let c = chunk(
            &blob,
            ChunkParams {
                target: 100,
                overlap: 0,
            },
            &[],
            &chars,
        )
        .unwrap();
        assert_eq!(c.len(), 100);
        assert!(c.iter().all(|c| c.bytes.len() == 100));
        // A tokenizer that sees the blob as one unknown token per piece: the byte cap holds.
        let unk = |t: &[&str]| Ok(vec![1; t.len()]);
        let c = chunk(
            &blob,
            ChunkParams {
                target: 100,
                overlap: 0,
            },
            &[],
            &unk,
        )
        .unwrap();
        assert!(c.iter().all(|c| c.bytes.len() <= 1200), "{:?}", c[0]);
    }

    #[test]
    fn page_starts_are_hard_boundaries() {
        let text = "Page one text. More.\n\x0cPage two text. Even more.\n";
        let two = text.find("Page two").unwrap();
        let c = chunk(
            text,
            ChunkParams {
                target: 100,
                overlap: 10,
            },
            &[0, two],
            &words,
        )
        .unwrap();
        let s: Vec<&str> = c.iter().map(|c| &text[c.bytes.clone()]).collect();
        assert_eq!(s, vec!["Page one text. More.", "Page two text. Even more."]);
    }
}
