//! Evasion-resistant view of a text: full-width forms folded to ASCII, zero-width characters
//! dropped, exotic spaces and dashes made plain, with a map back to the original's byte offsets.
//!
//! Most text needs none of this; [`Normalized::new`] borrows it unchanged and maps identically.

use std::borrow::Cow;

/// What one character becomes in the scanned view.
enum Fold {
    Keep,
    Drop,
    Into(char),
}

fn fold(c: char) -> Fold {
    match c {
        // Zero-width space/joiners, word joiner, BOM, soft hyphen.
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}' => Fold::Drop,
        // No-break, figure, narrow no-break, thin and other fixed-width spaces; ideographic space.
        '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => {
            Fold::Into(' ')
        }
        // Hyphens and dashes, minus sign.
        '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE63}' => Fold::Into('-'),
        // Full-width ASCII forms.
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).map_or(Fold::Keep, Fold::Into),
        _ => Fold::Keep,
    }
}

/// The scanned view of a text and its map back.
pub(crate) struct Normalized<'a> {
    /// What the recognizers scan.
    pub(crate) text: Cow<'a, str>,
    /// For each byte of `text` (and one past its end): the original start and end byte offsets
    /// of the character it came from. `None` when `text` is the original.
    map: Option<Vec<(u32, u32)>>,
}

impl<'a> Normalized<'a> {
    pub(crate) fn new(original: &'a str) -> Self {
        // Every character folded above is outside ASCII; the common case costs one SIMD pass.
        if original.is_ascii() || !original.chars().any(|c| !matches!(fold(c), Fold::Keep)) {
            return Self {
                text: Cow::Borrowed(original),
                map: None,
            };
        }
        let mut text = String::with_capacity(original.len());
        let mut map = Vec::with_capacity(original.len() + 1);
        for (i, c) in original.char_indices() {
            let end = (i + c.len_utf8()) as u32;
            let out = match fold(c) {
                Fold::Drop => continue,
                Fold::Keep => c,
                Fold::Into(d) => d,
            };
            text.push(out);
            for _ in 0..out.len_utf8() {
                map.push((i as u32, end));
            }
        }
        let n = original.len() as u32;
        map.push((n, n));
        Self {
            text: Cow::Owned(text),
            map: Some(map),
        }
    }

    /// The original byte span of the scanned span `start..end` (`start < end`).
    pub(crate) fn original_span(&self, start: usize, end: usize) -> (usize, usize) {
        match &self.map {
            None => (start, end),
            Some(map) => (map[start].0 as usize, map[end - 1].1 as usize),
        }
    }
}

/// Character offsets for sorted byte offsets, counted in one pass over `text`.
pub(crate) struct CharCounter<'a> {
    text: &'a str,
    ascii: bool,
    byte: usize,
    chars: usize,
}

impl<'a> CharCounter<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            text,
            ascii: text.is_ascii(),
            byte: 0,
            chars: 0,
        }
    }

    /// The character offset of `byte`, which must be a char boundary. Calls with increasing
    /// offsets are linear overall; a smaller offset restarts the count.
    pub(crate) fn at(&mut self, byte: usize) -> usize {
        if self.ascii {
            return byte;
        }
        if byte < self.byte {
            self.byte = 0;
            self.chars = 0;
        }
        self.chars += self.text[self.byte..byte].chars().count();
        self.byte = byte;
        self.chars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_and_maps_back() {
        let s = "call \u{FF10}\u{FF16}\u{200B}12\u{00A0}34";
        let n = Normalized::new(s);
        assert_eq!(n.text, "call 0612 34");
        let (a, b) = n.original_span(5, n.text.len());
        assert_eq!(&s[a..b], "\u{FF10}\u{FF16}\u{200B}12\u{00A0}34");
        let plain = Normalized::new("plain text");
        assert!(matches!(plain.text, Cow::Borrowed(_)));
        assert_eq!(plain.original_span(1, 3), (1, 3));
    }

    #[test]
    fn counts_chars() {
        let s = "é1é2";
        let mut c = CharCounter::new(s);
        assert_eq!(c.at(2), 1);
        assert_eq!(c.at(5), 3);
        assert_eq!(c.at(0), 0);
    }
}
