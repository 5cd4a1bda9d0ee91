//! DOCX redaction. The package is opened under the extractors' bomb checks; every XML part
//! under `word/` (body, headers, footers, notes) is rewritten: tracked changes are accepted
//! (deletions and their authors dropped, insertions kept), hidden runs, comment anchors and XML
//! comments dropped, and each value the marker finds in a paragraph's text is cut from the
//! runs that hold it, `[REDACTED]` in its place. Document properties and comments are
//! emptied; external links, alt texts, field codes and tooltips holding a value are cut.
//! Embedded files refuse the document. The written package is read back and checked before it
//! is returned.

use std::collections::BTreeSet;
use std::io::{Cursor, Write};

use quick_xml::events::{BytesStart, BytesText, Event};

use super::{LABEL, Marker, Redacted, Tally};
use crate::extract::package::{self, Depth, Kind, entity, read_entry, xml_reader};
use crate::extract::{Format, Limits, Refusal};

/// Parts replaced by an empty part of the same kind, and what they held.
const EMPTIED: [(&str, &str, &str); 8] = [
    (
        "docProps/core.xml",
        "metadata",
        r#"<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/"/>"#,
    ),
    (
        "docProps/app.xml",
        "metadata",
        r#"<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties"/>"#,
    ),
    (
        "docProps/custom.xml",
        "metadata",
        r#"<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"/>"#,
    ),
    (
        "word/comments.xml",
        "comments",
        r#"<w:comments xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"/>"#,
    ),
    (
        "word/commentsExtended.xml",
        "comments",
        r#"<w15:commentsEx xmlns:w15="http://schemas.microsoft.com/office/word/2012/wordml"/>"#,
    ),
    (
        "word/commentsIds.xml",
        "comments",
        r#"<w16cid:commentsIds xmlns:w16cid="http://schemas.microsoft.com/office/word/2016/wordml/cid"/>"#,
    ),
    (
        "word/commentsExtensible.xml",
        "comments",
        r#"<w16cex:commentsExtensible xmlns:w16cex="http://schemas.microsoft.com/office/word/2018/wordml/cex"/>"#,
    ),
    (
        "word/people.xml",
        "comment authors",
        r#"<w15:people xmlns:w15="http://schemas.microsoft.com/office/word/2012/wordml"/>"#,
    ),
];

/// Elements dropped whole: tracked deletions and formatting changes, comment anchors.
const DROPPED: [&str; 14] = [
    "w:del",
    "w:moveFrom",
    "w:rPrChange",
    "w:pPrChange",
    "w:sectPrChange",
    "w:tblPrChange",
    "w:tblPrExChange",
    "w:trPrChange",
    "w:tcPrChange",
    "w:tblGridChange",
    "w:numberingChange",
    "w:commentRangeStart",
    "w:commentRangeEnd",
    "w:commentReference",
];

/// Elements whose tags are dropped and content kept (accepted insertions).
const UNWRAPPED: [&str; 2] = ["w:ins", "w:moveTo"];

/// Elements holding text a reader sees or a program runs.
const TEXT: [&str; 2] = ["w:t", "w:instrText"];

const DECL: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#;

pub(super) fn redact(
    bytes: &[u8],
    marker: &dyn Marker,
    limits: &Limits,
) -> Result<Redacted, Refusal> {
    let mut zip = package::open(bytes, Kind::Docx, limits)?;
    let names = names_of(&zip)?;
    refuse_embedded(&names)?;
    let mut budget = limits.max_decompressed_bytes;
    let mut tally = Tally::default();
    let mut stripped = BTreeSet::new();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for name in names.iter().filter(|n| !n.ends_with('/')) {
        let data = read_entry(&mut zip, Kind::Docx, name, &mut budget)?.unwrap_or_default();
        if name.starts_with("docProps/thumbnail") {
            stripped.insert("thumbnail");
            continue;
        }
        let new = match EMPTIED.iter().find(|(n, ..)| *n == name) {
            Some((_, what, xml)) => {
                stripped.insert(*what);
                format!("{DECL}\n{xml}").into_bytes()
            }
            None if is_text_part(name) => {
                Part::new(name, marker, limits).rewrite(&data, &mut tally, &mut stripped)?
            }
            None if name.ends_with(".rels") => rels(&data, name, marker, &mut tally, limits)?,
            None => data,
        };
        write_entry(&mut out, name, &new)?;
    }
    let bytes = out
        .finish()
        .map_err(|e| unwritable(&e.to_string()))?
        .into_inner();
    verify(&bytes, marker, &tally, limits)?;
    Ok(Redacted {
        bytes,
        log: tally.log(),
        stripped: stripped.into_iter().map(str::to_string).collect(),
    })
}

/// The package's entry names, in its order.
fn names_of(zip: &package::Archive<'_>) -> Result<Vec<String>, Refusal> {
    zip.file_names()
        .map(|n| {
            n.map(|n| n.into_owned())
                .map_err(|e| Kind::Docx.malformed(format!("an entry's name: {e}")))
        })
        .collect()
}

fn is_text_part(name: &str) -> bool {
    name.starts_with("word/") && name.ends_with(".xml")
}

fn refuse_embedded(names: &[String]) -> Result<(), Refusal> {
    let embedded = names
        .iter()
        .filter(|n| n.starts_with("word/embeddings/") || n.ends_with("vbaProject.bin"))
        .count();
    if embedded > 0 {
        return Err(Refusal::Unredactable {
            detail: format!(
                "the document embeds {embedded} other file(s) or macros, which BEAR cannot \
                 redact; remove them in Word (or save a copy without them) and redact that"
            ),
        });
    }
    Ok(())
}

fn write_entry(
    out: &mut zip::ZipWriter<Cursor<Vec<u8>>>,
    name: &str,
    data: &[u8],
) -> Result<(), Refusal> {
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    out.start_file(name, options)
        .map_err(|e| unwritable(&e.to_string()))?;
    out.write_all(data).map_err(|e| unwritable(&e.to_string()))
}

fn unwritable(why: &str) -> Refusal {
    Refusal::Unredactable {
        detail: format!("the redacted DOCX could not be written: {why}"),
    }
}

/// A relationship part: an external target (a link, an attached template's path) in which the
/// marker finds a value is cut to `#`; the thumbnail's relationship goes with the thumbnail.
fn rels(
    xml: &[u8],
    name: &str,
    marker: &dyn Marker,
    tally: &mut Tally,
    limits: &Limits,
) -> Result<Vec<u8>, Refusal> {
    let events = read_events(xml, name, limits)?;
    let mut w = quick_xml::Writer::new(Vec::with_capacity(xml.len()));
    for ev in events {
        let ev = match ev {
            Event::Empty(e) if e.name().as_ref() == "Relationship" => {
                let kind = e.try_get_attribute("Type").ok().flatten();
                if kind.is_some_and(|k| k.value.ends_with("/thumbnail")) {
                    continue;
                }
                Event::Empty(cut_attrs(&e, &["Target"], marker, tally, "#"))
            }
            other => other,
        };
        w.write_event(ev).map_err(|e| unwritable(&e.to_string()))?;
    }
    Ok(w.into_inner())
}

/// `e` with each of `keys` in which the marker finds a value replaced by `with`.
fn cut_attrs(
    e: &BytesStart<'_>,
    keys: &[&str],
    marker: &dyn Marker,
    tally: &mut Tally,
    with: &str,
) -> BytesStart<'static> {
    let mut out = BytesStart::new(e.name().as_ref().to_owned());
    for a in e.attributes().flatten() {
        let key = a.key.as_ref().to_owned();
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map(|v| v.into_owned())
            .unwrap_or_default();
        let marks = if keys.contains(&key.as_str()) {
            marker.mark(&value)
        } else {
            Vec::new()
        };
        for m in &marks {
            tally.add(&m.kind, None, &value[m.start..m.end]);
        }
        let value = if marks.is_empty() {
            value
        } else {
            with.to_string()
        };
        out.push_attribute((key.as_str(), value.as_str()));
    }
    out
}

/// Reads a part into owned events, refusing DOCTYPEs and nesting past the limit.
fn read_events(xml: &[u8], name: &str, limits: &Limits) -> Result<Vec<Event<'static>>, Refusal> {
    let mut r = xml_reader(xml);
    let mut depth = Depth::new(limits);
    let mut events = Vec::new();
    loop {
        let ev = r.read_event().map_err(|_| Kind::Docx.bad_xml(name))?;
        match &ev {
            Event::Eof => return Ok(events),
            Event::DocType(_) => return Err(Refusal::XmlEntities),
            Event::Start(_) => depth.open()?,
            Event::End(_) => depth.close(),
            Event::GeneralRef(g) => {
                entity(g, Kind::Docx, name)?;
            }
            _ => {}
        }
        events.push(ev.into_owned());
    }
}

/// One run of text in a part: the events it spans and what it says.
struct TextNode {
    /// Index of its start tag; its end tag's index is `end`.
    start: usize,
    end: usize,
    text: String,
    /// The new text once the values are cut.
    cut: Option<String>,
}

/// A paragraph's text, joined from its nodes, with where each node's text starts.
#[derive(Default)]
struct Paragraph {
    text: String,
    nodes: Vec<(usize, usize)>,
}

/// The rewriting of one XML part.
struct Part<'a> {
    name: &'a str,
    marker: &'a dyn Marker,
    limits: &'a Limits,
}

impl<'a> Part<'a> {
    fn new(name: &'a str, marker: &'a dyn Marker, limits: &'a Limits) -> Self {
        Self {
            name,
            marker,
            limits,
        }
    }

    fn rewrite(
        &self,
        xml: &[u8],
        tally: &mut Tally,
        stripped: &mut BTreeSet<&'static str>,
    ) -> Result<Vec<u8>, Refusal> {
        let events = read_events(xml, self.name, self.limits)?;
        let keep = Keep::of(&events, stripped);
        let (mut nodes, paragraphs) = self.texts(&events, &keep)?;
        for p in &paragraphs {
            self.cut(p, &mut nodes, tally);
        }
        self.write(events, &keep, &nodes, tally)
    }

    /// The text nodes outside dropped ranges, and the paragraphs they make up.
    fn texts(
        &self,
        events: &[Event<'static>],
        keep: &Keep,
    ) -> Result<(Vec<TextNode>, Vec<Paragraph>), Refusal> {
        let mut nodes: Vec<TextNode> = Vec::new();
        let mut paragraphs = vec![Paragraph::default()];
        let mut open: Vec<usize> = vec![0];
        let mut node: Option<TextNode> = None;
        for (i, ev) in events.iter().enumerate() {
            if !keep.event(i) {
                continue;
            }
            match ev {
                Event::Start(e) if e.name().as_ref() == "w:p" => {
                    open.push(paragraphs.len());
                    paragraphs.push(Paragraph::default());
                }
                Event::End(e) if e.name().as_ref() == "w:p" && open.len() > 1 => {
                    open.pop();
                }
                Event::Start(e) if TEXT.contains(&e.name().as_ref()) => {
                    node = Some(TextNode {
                        start: i,
                        end: i,
                        text: String::new(),
                        cut: None,
                    });
                }
                Event::Text(t) if node.is_some() => {
                    if let Some(n) = node.as_mut() {
                        n.text.push_str(&t.xml10_content());
                    }
                }
                Event::CData(c) if node.is_some() => {
                    if let Some(n) = node.as_mut() {
                        n.text.push_str(c);
                    }
                }
                Event::GeneralRef(g) if node.is_some() => {
                    let s = entity(g, Kind::Docx, self.name)?;
                    if let Some(n) = node.as_mut() {
                        n.text.push_str(&s);
                    }
                }
                Event::End(_) if node.is_some() => {
                    if let Some(mut n) = node.take() {
                        n.end = i;
                        let p = &mut paragraphs[*open.last().unwrap_or(&0)];
                        p.nodes.push((nodes.len(), p.text.len()));
                        p.text.push_str(&n.text);
                        nodes.push(n);
                    }
                }
                Event::Empty(e) if matches!(e.name().as_ref(), "w:tab" | "w:br" | "w:cr") => {
                    paragraphs[*open.last().unwrap_or(&0)].text.push(' ');
                }
                _ => {}
            }
        }
        Ok((nodes, paragraphs))
    }

    /// Cuts the values the marker finds in `p` from the nodes holding them.
    fn cut(&self, p: &Paragraph, nodes: &mut [TextNode], tally: &mut Tally) {
        let marks = self.marker.mark(&p.text);
        if marks.is_empty() {
            return;
        }
        for m in &marks {
            tally.add(&m.kind, None, &p.text[m.start..m.end]);
        }
        for &(id, at) in &p.nodes {
            let node = &mut nodes[id];
            let len = node.text.len();
            let mut out = String::with_capacity(len);
            let mut pos = 0;
            let mut touched = false;
            for m in &marks {
                let (s, e) = (m.start.max(at), m.end.min(at + len));
                if s >= e {
                    continue;
                }
                let (s, e) = (s - at, e - at);
                touched = true;
                out.push_str(&node.text[pos.min(s)..s]);
                if m.start >= at {
                    out.push_str(LABEL);
                }
                pos = pos.max(e);
            }
            if touched {
                out.push_str(&node.text[pos.min(len)..]);
                node.cut = Some(out);
            }
        }
    }

    /// Writes the kept events, each text node with its cut text and alt texts checked.
    fn write(
        &self,
        events: Vec<Event<'static>>,
        keep: &Keep,
        nodes: &[TextNode],
        tally: &mut Tally,
    ) -> Result<Vec<u8>, Refusal> {
        let mut w = quick_xml::Writer::new(Vec::new());
        let mut nodes = nodes.iter().peekable();
        let mut skip_to = None;
        for (i, ev) in events.into_iter().enumerate() {
            if skip_to.is_some_and(|end| i < end) || !keep.event(i) {
                continue;
            }
            skip_to = None;
            let ev = match ev {
                Event::Start(e) if nodes.peek().is_some_and(|n| n.start == i) => {
                    let n = nodes.next().expect("peeked");
                    if let Some(cut) = &n.cut {
                        let mut e = e.into_owned();
                        if e.try_get_attribute("xml:space").ok().flatten().is_none() {
                            e.push_attribute(("xml:space", "preserve"));
                        }
                        self.emit(&mut w, Event::Start(e))?;
                        self.emit(&mut w, Event::Text(BytesText::new(cut).into_owned()))?;
                        skip_to = Some(n.end);
                        continue;
                    }
                    Event::Start(e)
                }
                Event::Empty(e) if !texts_in_attrs(&e).is_empty() => {
                    Event::Empty(cut_attrs(&e, texts_in_attrs(&e), self.marker, tally, LABEL))
                }
                Event::Start(e) if !texts_in_attrs(&e).is_empty() => {
                    Event::Start(cut_attrs(&e, texts_in_attrs(&e), self.marker, tally, LABEL))
                }
                Event::Comment(_) => continue,
                other => other,
            };
            self.emit(&mut w, ev)?;
        }
        Ok(w.into_inner())
    }

    fn emit(&self, w: &mut quick_xml::Writer<Vec<u8>>, ev: Event<'_>) -> Result<(), Refusal> {
        w.write_event(ev).map_err(|e| unwritable(&e.to_string()))
    }
}

/// The attributes of an element that hold text a reader can see: alt texts, simple fields'
/// codes (`HYPERLINK "mailto:..."`), link tooltips.
fn texts_in_attrs(e: &BytesStart<'_>) -> &'static [&'static str] {
    match e.name().as_ref() {
        "wp:docPr" | "pic:cNvPr" => &["descr", "title"],
        "w:fldSimple" => &["w:instr"],
        "w:hyperlink" => &["w:tooltip"],
        _ => &[],
    }
}

/// Which events of a part are written: not those inside dropped elements, not the tags of
/// unwrapped ones, not hidden runs.
struct Keep {
    dropped: Vec<bool>,
}

impl Keep {
    fn of(events: &[Event<'static>], stripped: &mut BTreeSet<&'static str>) -> Self {
        let mut dropped = vec![false; events.len()];
        // Open elements: (name, index of the start tag, whether the whole element goes).
        let mut open: Vec<(String, usize, bool)> = Vec::new();
        for (i, ev) in events.iter().enumerate() {
            match ev {
                Event::Start(e) => {
                    let name = e.name().as_ref().to_string();
                    let whole = is_dropped(&name);
                    if whole || is_unwrapped(&name) {
                        stripped.insert(change_kind(&name));
                        dropped[i] = true;
                    }
                    open.push((name, i, whole));
                }
                Event::Empty(e) => {
                    let qname = e.name();
                    let name = qname.as_ref();
                    if is_dropped(name) || is_unwrapped(name) {
                        stripped.insert(change_kind(name));
                        dropped[i] = true;
                    }
                    if is_hidden(e, &open) {
                        stripped.insert("hidden text");
                        if let Some(run) = open.iter_mut().rev().find(|o| o.0 == "w:r") {
                            run.2 = true;
                        }
                    }
                }
                Event::End(_) => {
                    if let Some((name, start, whole)) = open.pop() {
                        if whole {
                            dropped[start..=i].iter_mut().for_each(|d| *d = true);
                        } else if is_unwrapped(&name) {
                            dropped[i] = true;
                        }
                    }
                }
                _ => {}
            }
        }
        Self { dropped }
    }

    fn event(&self, i: usize) -> bool {
        !self.dropped[i]
    }
}

fn is_dropped(name: &str) -> bool {
    DROPPED.contains(&name)
}

fn is_unwrapped(name: &str) -> bool {
    UNWRAPPED.contains(&name)
}

fn change_kind(name: &str) -> &'static str {
    if name.starts_with("w:comment") {
        "comments"
    } else {
        "tracked changes"
    }
}

/// `<w:vanish/>` (not switched off) in the properties of a run: hidden text.
fn is_hidden(e: &BytesStart<'_>, open: &[(String, usize, bool)]) -> bool {
    if e.name().as_ref() != "w:vanish" {
        return false;
    }
    let n = open.len();
    let in_run = n >= 2 && open[n - 1].0 == "w:rPr" && open[n - 2].0 == "w:r";
    let off = e
        .try_get_attribute("w:val")
        .ok()
        .flatten()
        .is_some_and(|a| matches!(a.value.as_ref(), "0" | "false" | "off"));
    in_run && !off
}

/// Reads the written package back: no removed value may be left in any part's text or
/// attributes, and the marker may find nothing in the document's text.
fn verify(
    bytes: &[u8],
    marker: &dyn Marker,
    tally: &Tally,
    limits: &Limits,
) -> Result<(), Refusal> {
    let mut zip = package::open(bytes, Kind::Docx, limits)?;
    let names = names_of(&zip)?;
    let mut budget = limits.max_decompressed_bytes;
    for name in names
        .iter()
        .filter(|n| n.ends_with(".xml") || n.ends_with(".rels"))
    {
        let data = read_entry(&mut zip, Kind::Docx, name, &mut budget)?.unwrap_or_default();
        // Markup is only searched for the removed values; the marker reads the text below.
        let text = all_text(&data, name, limits)?;
        if tally.left_in(&text) {
            tally.check(marker, &text, name)?;
        }
    }
    let body = crate::extract::extract(bytes, Format::Docx, limits)?;
    tally.check(marker, &body.text, "the document's text")
}

/// Every text node (joined as a reader would see them) and attribute value of a part.
fn all_text(xml: &[u8], name: &str, limits: &Limits) -> Result<String, Refusal> {
    let mut out = String::new();
    for ev in read_events(xml, name, limits)? {
        match ev {
            Event::Text(t) => out.push_str(&t.xml10_content()),
            Event::GeneralRef(g) => out.push_str(&entity(&g, Kind::Docx, name)?),
            Event::CData(c) => out.push_str(&c),
            Event::Start(e) | Event::Empty(e) => {
                for a in e.attributes().flatten() {
                    out.push('\n');
                    out.push_str(
                        &a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .unwrap_or_default(),
                    );
                    out.push('\n');
                }
            }
            _ => {}
        }
    }
    Ok(out)
}
