//! Rich Text Format (`.rtf`) to text, by BEAR's own small reader. No maintained Rust crate
//! reads RTF to text well enough (rtf-parser 0.4 keeps picture data and the document info in
//! the text and drops `\u` characters and paragraph breaks), and the part text needs is small:
//! groups, control words, destinations that hold no body text (font and colour tables,
//! pictures, objects, field instructions, every `\*` destination), `\'hh` bytes in the
//! document's code page (`\ansicpg`, through encoding_rs), `\uN` characters with their `\ucN`
//! fallbacks skipped, `\binN` data skipped, and the title and author of `\info`.
//!
//! The reader is one loop over the bytes with an explicit group stack whose depth is limited
//! (`rag.max_xml_depth`), so a hostile file cannot overflow the stack; its text is bounded by
//! the file's size.

use encoding_rs::{Encoding, WINDOWS_1252};

use super::{DocMeta, Extracted, Limits, Refusal};

pub(super) fn extract(bytes: &[u8], limits: &Limits) -> Result<Extracted, Refusal> {
    if !bytes.trim_ascii_start().starts_with(b"{\\rtf") {
        return Err(malformed("it does not start with {\\rtf"));
    }
    let mut r = Reader::new(limits);
    r.run(bytes)?;
    r.flush();
    let meta = DocMeta {
        title: Some(r.title.trim().to_string()).filter(|t| !t.is_empty()),
        author: Some(r.author.trim().to_string()).filter(|t| !t.is_empty()),
        ..DocMeta::default()
    };
    Ok(Extracted {
        text: tidy(&r.text),
        page_starts: Vec::new(),
        meta,
        ocr_pages: Vec::new(),
    })
}

fn malformed(detail: &str) -> Refusal {
    Refusal::Malformed {
        format: "Rich Text file".into(),
        detail: detail.into(),
    }
}

/// Where a group's text goes.
#[derive(Clone, Copy, PartialEq)]
enum Dest {
    Body,
    Skip,
    Title,
    Author,
}

#[derive(Clone, Copy)]
struct Group {
    dest: Dest,
    /// Fallback characters that follow a `\uN`.
    uc: u32,
}

/// Destinations that hold no body text.
const SKIPPED: [&str; 25] = [
    "fonttbl",
    "colortbl",
    "stylesheet",
    "listtable",
    "listoverridetable",
    "revtbl",
    "rsidtbl",
    "generator",
    "pict",
    "object",
    "objdata",
    "themedata",
    "colorschememapping",
    "datastore",
    "latentstyles",
    "xmlnstbl",
    "filetbl",
    "fldinst",
    "nonshppict",
    "pgdsctbl",
    "listtext",
    "pntext",
    "info",
    "private",
    "userprops",
];

/// The reader's state as it walks the bytes.
struct Reader<'l> {
    limits: &'l Limits,
    secs: u64,
    group: Group,
    stack: Vec<Group>,
    /// Bytes of the code page not yet decoded (a double-byte character may span two `\'hh`).
    pending: Vec<u8>,
    pending_dest: Dest,
    encoding: &'static Encoding,
    /// Fallback characters still to skip after a `\uN`.
    skip: u32,
    text: String,
    title: String,
    author: String,
}

impl<'l> Reader<'l> {
    fn new(limits: &'l Limits) -> Self {
        Self {
            limits,
            secs: limits.secs_left(),
            group: Group {
                dest: Dest::Body,
                uc: 1,
            },
            stack: Vec::new(),
            pending: Vec::new(),
            pending_dest: Dest::Body,
            encoding: WINDOWS_1252,
            skip: 0,
            text: String::new(),
            title: String::new(),
            author: String::new(),
        }
    }

    fn run(&mut self, b: &[u8]) -> Result<(), Refusal> {
        let mut i = 0;
        let mut steps = 0u32;
        while i < b.len() {
            steps = steps.wrapping_add(1);
            if steps.is_multiple_of(1 << 16) {
                self.limits.check_time(self.secs)?;
            }
            i = match b[i] {
                b'{' => {
                    self.open()?;
                    i + 1
                }
                b'}' => {
                    self.close();
                    i + 1
                }
                b'\\' => self.control(b, i + 1)?,
                b'\r' | b'\n' => i + 1,
                c => {
                    self.byte(c);
                    i + 1
                }
            };
        }
        Ok(())
    }

    fn open(&mut self) -> Result<(), Refusal> {
        self.flush();
        self.skip = 0;
        if self.stack.len() >= self.limits.max_xml_depth {
            return Err(malformed(&format!(
                "groups nest deeper than {} (rag.max_xml_depth)",
                self.limits.max_xml_depth
            )));
        }
        self.stack.push(self.group);
        Ok(())
    }

    fn close(&mut self) {
        self.flush();
        self.skip = 0;
        if let Some(g) = self.stack.pop() {
            self.group = g;
        }
    }

    /// A byte of text in the document's code page.
    fn byte(&mut self, c: u8) {
        if self.skip > 0 {
            self.skip -= 1;
            return;
        }
        if self.group.dest == Dest::Skip {
            return;
        }
        if self.pending_dest != self.group.dest {
            self.flush();
            self.pending_dest = self.group.dest;
        }
        self.pending.push(c);
    }

    /// Text already decoded.
    fn push(&mut self, s: &str) {
        self.flush();
        match self.group.dest {
            Dest::Body => self.text.push_str(s),
            Dest::Title => self.title.push_str(s),
            Dest::Author => self.author.push_str(s),
            Dest::Skip => {}
        }
    }

    /// Decodes the pending code-page bytes into where they belong.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let (s, _) = self.encoding.decode_without_bom_handling(&self.pending);
        match self.pending_dest {
            Dest::Body => self.text.push_str(&s),
            Dest::Title => self.title.push_str(&s),
            Dest::Author => self.author.push_str(&s),
            Dest::Skip => {}
        }
        self.pending.clear();
    }

    /// The control word or symbol after a backslash at `i`; where reading goes on.
    fn control(&mut self, b: &[u8], i: usize) -> Result<usize, Refusal> {
        let Some(&c) = b.get(i) else {
            return Ok(i);
        };
        match c {
            b'\\' | b'{' | b'}' => {
                self.byte(c);
                Ok(i + 1)
            }
            b'\'' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => self.byte(v),
                    None => return Ok(i + 1),
                }
                Ok(i + 3)
            }
            b'*' => {
                self.group.dest = Dest::Skip;
                Ok(i + 1)
            }
            b'~' => {
                self.push(" ");
                Ok(i + 1)
            }
            b'_' => {
                self.push("-");
                Ok(i + 1)
            }
            b'\r' | b'\n' => {
                self.push("\n\n");
                Ok(i + 1)
            }
            c if c.is_ascii_alphabetic() => self.word(b, i),
            _ => Ok(i + 1),
        }
    }

    /// A control word at `i`: letters, an optional signed number, an optional space.
    fn word(&mut self, b: &[u8], i: usize) -> Result<usize, Refusal> {
        let mut j = i;
        while j < b.len() && j - i < 32 && b[j].is_ascii_alphabetic() {
            j += 1;
        }
        let name = std::str::from_utf8(&b[i..j]).unwrap_or_default();
        let digits_from = j;
        if j < b.len() && b[j] == b'-' {
            j += 1;
        }
        while j < b.len() && j - digits_from < 11 && b[j].is_ascii_digit() {
            j += 1;
        }
        let param: Option<i64> = std::str::from_utf8(&b[digits_from..j])
            .ok()
            .and_then(|d| d.parse().ok());
        if j < b.len() && b[j] == b' ' {
            j += 1;
        }
        if name == "bin" {
            let n = usize::try_from(param.unwrap_or(0)).unwrap_or(0);
            return Ok(j.saturating_add(n).min(b.len()));
        }
        self.apply(name, param);
        Ok(j)
    }

    fn apply(&mut self, name: &str, param: Option<i64>) {
        let text = match name {
            "par" | "sect" | "page" => "\n\n",
            "line" | "row" => "\n",
            "tab" => "\t",
            "cell" => " | ",
            "emdash" => "\u{2014}",
            "endash" => "\u{2013}",
            "lquote" => "\u{2018}",
            "rquote" => "\u{2019}",
            "ldblquote" => "\u{201C}",
            "rdblquote" => "\u{201D}",
            "bullet" => "\u{2022}",
            "emspace" | "enspace" | "qmspace" => " ",
            _ => "",
        };
        if !text.is_empty() {
            return self.push(text);
        }
        match name {
            "u" => {
                let v = param.unwrap_or(0);
                let v = if v < 0 { v + 65536 } else { v };
                let ch = u32::try_from(v).ok().and_then(char::from_u32);
                self.push(&ch.unwrap_or('\u{FFFD}').to_string());
                self.skip = self.group.uc;
            }
            "uc" => self.group.uc = param.unwrap_or(1).clamp(0, 16) as u32,
            "ansicpg" => self.encoding = code_page(param.unwrap_or(1252)),
            "mac" => self.encoding = encoding_rs::MACINTOSH,
            "title" => self.group.dest = Dest::Title,
            "author" => self.group.dest = Dest::Author,
            n if SKIPPED.contains(&n) => self.group.dest = Dest::Skip,
            _ => {}
        }
    }
}

/// The encoding of Windows code page `cp` (Windows-1252 for one encoding_rs does not know).
fn code_page(cp: i64) -> &'static Encoding {
    let label = match cp {
        65001 => "utf-8".to_string(),
        932 => "shift_jis".to_string(),
        936 => "gbk".to_string(),
        949 => "euc-kr".to_string(),
        950 => "big5".to_string(),
        cp => format!("windows-{cp}"),
    };
    Encoding::for_label(label.as_bytes()).unwrap_or(WINDOWS_1252)
}

/// Lines trimmed at their ends and at most one blank line in a row.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = true;
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            if !blank {
                out.push('\n');
            }
            blank = true;
            continue;
        }
        out.push_str(line.trim_start_matches(' '));
        out.push('\n');
        blank = false;
    }
    if out.ends_with("\n\n") {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(rtf: &str) -> Extracted {
        extract(rtf.as_bytes(), &Limits::for_tests()).unwrap()
    }

    #[test]
    fn code_pages_and_unicode_escapes_are_decoded() {
        let e = read(r"{\rtf1\ansi\ansicpg1252 Caf\'e9 M\'fcller \u8364? 5\par}");
        assert_eq!(e.text, "Café Müller € 5\n");
        // \uc2: two fallback characters skipped; a negative value is above 32767.
        let e = read(r"{\rtf1\uc2 \u-3913\'3f\'3fx\par}");
        assert_eq!(e.text, "\u{F0B7}x\n");
        let e = read(r"{\rtf1\ansicpg1251 \'cf\'f0\'e8\'e2\'e5\'f2\par}");
        assert_eq!(e.text, "Привет\n");
    }

    #[test]
    fn tables_pictures_and_hidden_destinations_are_not_text() {
        let e = read(concat!(
            r"{\rtf1{\fonttbl{\f0 Times;}}{\colortbl;\red0;}{\info{\title Draft}{\author A. Visser}}",
            r"{\*\generator Word;}{\pict\pngblip 89504e47}",
            r"Pays {\b EUR 12,500}.\par {\field{\*\fldinst HYPERLINK x}{\fldrslt link}}\par",
            r"{\bin4 {{{{}A\tab B\cell C\row}"
        ));
        assert_eq!(e.text, "Pays EUR 12,500.\n\nlink\n\nA\tB | C\n");
        assert_eq!(e.meta.title.as_deref(), Some("Draft"));
        assert_eq!(e.meta.author.as_deref(), Some("A. Visser"));
    }

    #[test]
    fn hostile_nesting_and_non_rtf_are_refused() {
        let deep = format!("{{\\rtf1 {}x{}}}", "{".repeat(100_000), "}".repeat(100_000));
        let r = extract(deep.as_bytes(), &Limits::for_tests());
        assert!(matches!(r, Err(Refusal::Malformed { .. })), "{r:?}");
        let r = extract(b"just text", &Limits::for_tests());
        assert!(matches!(r, Err(Refusal::Malformed { .. })), "{r:?}");
        // Cut anywhere: text or a refusal, never a panic.
        let rtf = br"{\rtf1\ansi Caf\'e9 \u8364? {\b bold}\par}";
        for cut in 1..rtf.len() {
            let _ = extract(&rtf[..cut], &Limits::for_tests());
        }
    }
}
