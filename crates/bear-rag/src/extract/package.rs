//! Zip packages (DOCX, PPTX, ODT, XLSX, ODS): opened only after their entries pass the bomb
//! checks (entry count, declared sizes, overlapping entries), every entry inflated against one
//! budget of really produced bytes, and XML read with quick-xml refusing DOCTYPEs and unknown
//! entities and bounding nesting depth.

use std::io::{Cursor, Read};

use quick_xml::events::Event;

use super::{DocMeta, Limits, Refusal};

pub(crate) type Archive<'a> = zip::ZipArchive<Cursor<&'a [u8]>>;

/// Most entries a package may hold.
const MAX_ENTRIES: usize = 10_000;

/// Which kind of package, for what a refusal says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Docx,
    Pptx,
    Odt,
    Sheet,
    Zip,
}

impl Kind {
    pub(crate) fn malformed(self, detail: impl Into<String>) -> Refusal {
        let detail = detail.into();
        match self {
            Self::Docx => Refusal::MalformedDocx { detail },
            Self::Pptx => Refusal::Malformed {
                format: "PowerPoint file".into(),
                detail,
            },
            Self::Odt => Refusal::Malformed {
                format: "OpenDocument text".into(),
                detail,
            },
            Self::Sheet => Refusal::Malformed {
                format: "spreadsheet".into(),
                detail,
            },
            Self::Zip => Refusal::Malformed {
                format: "ZIP archive".into(),
                detail,
            },
        }
    }

    /// quick-xml's messages can quote markup, never character data; keep only which part.
    pub(crate) fn bad_xml(self, part: &str) -> Refusal {
        self.malformed(format!("{part} is not well-formed XML"))
    }
}

/// Opens `bytes` as a zip package and checks it against bombs.
pub(crate) fn open<'a>(
    bytes: &'a [u8],
    kind: Kind,
    limits: &Limits,
) -> Result<Archive<'a>, Refusal> {
    // A password-protected Office file is an OLE compound file holding an `EncryptedPackage`
    // stream; any other OLE file is a legacy binary format.
    if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        let stream: Vec<u8> = "EncryptedPackage"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        if bytes.windows(stream.len()).any(|w| w == stream) {
            return Err(Refusal::Protected);
        }
        return Err(kind.malformed(
            "a legacy binary Office file, not a zip package (save it in the current format)",
        ));
    }
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| kind.malformed(format!("not a zip package ({e})")))?;
    check(&mut zip, kind, limits)?;
    Ok(zip)
}

/// Declared sizes within the limit, and no two entries sharing compressed bytes (the
/// overlapping-entry bomb).
fn check(zip: &mut Archive<'_>, kind: Kind, limits: &Limits) -> Result<(), Refusal> {
    if zip.len() > MAX_ENTRIES {
        return Err(Refusal::ZipBomb {
            detail: format!("{} entries", zip.len()),
        });
    }
    let mut declared = 0u64;
    let mut spans = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let f = zip
            .by_index_raw(i)
            .map_err(|e| kind.malformed(format!("entry {i}: {e}")))?;
        declared = declared.saturating_add(f.size());
        let start = f.header_start();
        let end = f
            .data_start()
            .unwrap_or(start)
            .saturating_add(f.compressed_size());
        spans.push((start, end));
    }
    if declared > limits.max_decompressed_bytes {
        return Err(Refusal::ZipBomb {
            detail: format!(
                "entries declare {declared} bytes, over rag.max_decompressed_bytes ({})",
                limits.max_decompressed_bytes
            ),
        });
    }
    spans.sort_unstable();
    if spans.windows(2).any(|w| w[1].0 < w[0].1) {
        return Err(Refusal::ZipBomb {
            detail: "entries overlap".into(),
        });
    }
    Ok(())
}

/// Inflates one entry, counting what is really produced against `budget`.
pub(crate) fn read_entry(
    zip: &mut Archive<'_>,
    kind: Kind,
    name: &str,
    budget: &mut u64,
) -> Result<Option<Vec<u8>>, Refusal> {
    let mut f = match zip.by_name(name) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(kind.malformed(format!("{name}: {e}"))),
    };
    let mut out = Vec::with_capacity(f.size().min(*budget).min(16 << 20) as usize);
    let read = (&mut f)
        .take(budget.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| kind.malformed(format!("{name}: {}", e.kind())))?;
    if read as u64 > *budget {
        return Err(Refusal::ZipBomb {
            detail: "the package inflates past rag.max_decompressed_bytes".into(),
        });
    }
    *budget -= read as u64;
    Ok(Some(out))
}

/// Inflates every entry against one budget without keeping them: for packages another crate
/// reads, so that a lying declared size is caught before it does.
pub(crate) fn inflate_all(
    zip: &mut Archive<'_>,
    kind: Kind,
    limits: &Limits,
) -> Result<(), Refusal> {
    let mut budget = limits.max_decompressed_bytes;
    let mut sink = vec![0u8; 64 << 10];
    for i in 0..zip.len() {
        let mut f = zip
            .by_index(i)
            .map_err(|e| kind.malformed(format!("entry {i}: {e}")))?;
        loop {
            let n = f
                .read(&mut sink)
                .map_err(|e| kind.malformed(format!("entry {i}: {}", e.kind())))?;
            if n == 0 {
                break;
            }
            budget = budget
                .checked_sub(n as u64)
                .ok_or_else(|| Refusal::ZipBomb {
                    detail: "the package inflates past rag.max_decompressed_bytes".into(),
                })?;
        }
    }
    Ok(())
}

pub(crate) fn xml_reader(xml: &[u8]) -> quick_xml::Reader<&[u8]> {
    let mut r = quick_xml::Reader::from_reader(xml);
    r.config_mut().expand_empty_elements = false;
    r
}

/// Resolves `&name;` / `&#n;`: the five XML entities and character references only.
pub(crate) fn entity(
    r: &quick_xml::events::BytesRef<'_>,
    kind: Kind,
    part: &str,
) -> Result<String, Refusal> {
    if let Some(c) = r.resolve_char_ref().map_err(|_| kind.bad_xml(part))? {
        return Ok(c.to_string());
    }
    let name: &str = r;
    match quick_xml::escape::resolve_predefined_entity(name) {
        Some(s) => Ok(s.to_string()),
        None => Err(Refusal::XmlEntities),
    }
}

/// A depth counter that refuses XML nested past the limit.
pub(crate) struct Depth {
    now: usize,
    limit: usize,
}

impl Depth {
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            now: 0,
            limit: limits.max_xml_depth,
        }
    }

    pub(crate) fn open(&mut self) -> Result<(), Refusal> {
        self.now += 1;
        if self.now > self.limit {
            return Err(Refusal::XmlTooDeep { limit: self.limit });
        }
        Ok(())
    }

    pub(crate) fn close(&mut self) {
        self.now = self.now.saturating_sub(1);
    }
}

/// Leaf elements of a small XML part (document properties), by local name.
pub(crate) fn simple_fields(
    xml: &[u8],
    kind: Kind,
    part: &str,
    limits: &Limits,
) -> Result<Vec<(String, String)>, Refusal> {
    let mut r = xml_reader(xml);
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    let mut depth = Depth::new(limits);
    loop {
        match r.read_event().map_err(|_| kind.bad_xml(part))? {
            Event::DocType(_) => return Err(Refusal::XmlEntities),
            Event::Start(e) => {
                depth.open()?;
                let local = e.local_name();
                current = Some(local.as_ref().to_string());
                out.push((current.clone().unwrap_or_default(), String::new()));
            }
            Event::End(_) => {
                depth.close();
                current = None;
            }
            Event::Text(t) => {
                if let (Some(_), Some(last)) = (&current, out.last_mut()) {
                    last.1.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(g) => {
                let s = entity(&g, kind, part)?;
                if let (Some(_), Some(last)) = (&current, out.last_mut()) {
                    last.1.push_str(&s);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

/// Title, author and dates from a properties part: Office's `docProps/core.xml` or
/// OpenDocument's `meta.xml` (local names; the first non-empty of each list wins).
pub(crate) fn properties(
    zip: &mut Archive<'_>,
    kind: Kind,
    part: &str,
    budget: &mut u64,
    limits: &Limits,
) -> Result<DocMeta, Refusal> {
    let mut meta = DocMeta::default();
    let Some(xml) = read_entry(zip, kind, part, budget)? else {
        return Ok(meta);
    };
    let fields = simple_fields(&xml, kind, part, limits)?;
    let get = |names: &[&str]| {
        names.iter().find_map(|k| {
            fields
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        })
    };
    meta.title = get(&["title"]);
    meta.author = get(&["creator", "initial-creator"]);
    meta.created = get(&["created", "creation-date"]);
    meta.modified = get(&["modified", "date"]);
    Ok(meta)
}

/// Appends paragraph `para` (trimmed, if not empty) to `text` followed by a blank line, as a
/// markdown heading of `heading` levels when `heading > 0`; empties `para`.
pub(crate) fn push_paragraph(text: &mut String, para: &mut String, heading: u8) {
    let p = para.trim();
    if !p.is_empty() {
        if heading > 0 {
            text.push_str(&"#".repeat(heading as usize));
            text.push(' ');
        }
        text.push_str(p);
        text.push_str("\n\n");
    }
    para.clear();
}

/// Attribute `key` of `e`, unescaped.
pub(crate) fn attr(e: &quick_xml::events::BytesStart<'_>, key: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == key)
        .and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
}
