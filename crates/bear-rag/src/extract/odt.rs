//! ODT (OpenDocument text): `content.xml`'s paragraphs and headings (`text:h` by outline
//! level), spaces, tabs and line breaks as written; metadata from `meta.xml`. OpenDocument
//! stores no page layout, so the text is unpaged. The package is opened under `package`'s
//! bomb checks.

use quick_xml::events::{BytesStart, Event};

use super::package::{self, Depth, Kind, entity, read_entry, xml_reader};
use super::{Extracted, Limits, Refusal};

const CONTENT: &str = "content.xml";
/// Most spaces one `text:s` may stand for.
const MAX_SPACES: usize = 1024;

pub(super) fn extract(bytes: &[u8], limits: &Limits) -> Result<Extracted, Refusal> {
    let mut zip = package::open(bytes, Kind::Odt, limits)?;
    let mut budget = limits.max_decompressed_bytes;
    let content = read_entry(&mut zip, Kind::Odt, CONTENT, &mut budget)?
        .ok_or_else(|| Kind::Odt.malformed("no content.xml: not an OpenDocument file"))?;
    let text = body_text(&content, limits)?;
    let meta = package::properties(&mut zip, Kind::Odt, "meta.xml", &mut budget, limits)?;
    Ok(Extracted {
        text,
        page_starts: Vec::new(),
        meta,
        ocr_pages: Vec::new(),
    })
}

fn level(e: &BytesStart<'_>) -> u8 {
    package::attr(e, "text:outline-level")
        .and_then(|v| v.parse::<u8>().ok())
        .unwrap_or(1)
        .clamp(1, 6)
}

fn spaces(e: &BytesStart<'_>) -> usize {
    package::attr(e, "text:c")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .min(MAX_SPACES)
}

/// Paragraphs separated by blank lines, headings prefixed with `#`.
fn body_text(xml: &[u8], limits: &Limits) -> Result<String, Refusal> {
    let secs = limits.secs_left();
    let mut r = xml_reader(xml);
    let mut depth = Depth::new(limits);
    let mut text = String::new();
    let mut para = String::new();
    let (mut open, mut heading) = (0usize, 0u8);
    let mut n = 0u64;
    loop {
        n += 1;
        if n.is_multiple_of(4096) {
            limits.check_time(secs)?;
        }
        match r.read_event().map_err(|_| Kind::Odt.bad_xml(CONTENT))? {
            Event::DocType(_) => return Err(Refusal::XmlEntities),
            Event::Start(e) => {
                depth.open()?;
                match e.name().as_ref() {
                    "text:p" => open += 1,
                    "text:h" => {
                        open += 1;
                        heading = level(&e);
                    }
                    _ => {}
                }
            }
            Event::Empty(e) if open > 0 => match e.name().as_ref() {
                "text:s" => para.extend(std::iter::repeat_n(' ', spaces(&e))),
                "text:tab" => para.push('\t'),
                "text:line-break" => para.push('\n'),
                _ => {}
            },
            Event::End(e) => {
                depth.close();
                if matches!(e.name().as_ref(), "text:p" | "text:h") {
                    open = open.saturating_sub(1);
                    package::push_paragraph(&mut text, &mut para, heading);
                    heading = 0;
                }
            }
            Event::Text(t) if open > 0 => para.push_str(&t.xml10_content()),
            Event::GeneralRef(g) if open > 0 => para.push_str(&entity(&g, Kind::Odt, CONTENT)?),
            Event::GeneralRef(g) => {
                entity(&g, Kind::Odt, CONTENT)?;
            }
            Event::CData(c) if open > 0 => para.push_str(&c),
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    fn limits() -> Limits {
        Limits::for_tests()
    }

    fn odt(content: &str) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        let mut z = zip::ZipWriter::new(&mut buf);
        let o = zip::write::SimpleFileOptions::default();
        z.start_file("mimetype", o).unwrap();
        z.write_all(b"application/vnd.oasis.opendocument.text")
            .unwrap();
        z.start_file("content.xml", o).unwrap();
        z.write_all(content.as_bytes()).unwrap();
        z.start_file("meta.xml", o).unwrap();
        z.write_all(br#"<office:document-meta xmlns:office="o" xmlns:meta="m" xmlns:dc="d"><office:meta><dc:title>Settlement</dc:title><meta:initial-creator>A. Visser</meta:initial-creator><meta:creation-date>2025-02-03T10:00:00</meta:creation-date></office:meta></office:document-meta>"#).unwrap();
        z.finish().unwrap();
        buf.into_inner()
    }

    #[test]
    fn headings_paragraphs_spaces_and_metadata() {
        let xml = r#"<office:document-content xmlns:office="o" xmlns:text="t"><office:body><office:text>
            <text:h text:outline-level="2">Article 4</text:h>
            <text:p>The buyer pays <text:span>EUR 12,500</text:span>,<text:s text:c="2"/>net.<text:line-break/>Within 30 days &amp; no later.</text:p>
            <text:p/>
            </office:text></office:body></office:document-content>"#;
        let e = extract(&odt(xml), &limits()).unwrap();
        assert_eq!(
            e.text,
            "## Article 4\n\nThe buyer pays EUR 12,500,  net.\nWithin 30 days & no later.\n\n"
        );
        assert!(e.page_starts.is_empty());
        assert_eq!(e.meta.title.as_deref(), Some("Settlement"));
        assert_eq!(e.meta.author.as_deref(), Some("A. Visser"));
        assert_eq!(e.meta.created.as_deref(), Some("2025-02-03T10:00:00"));
    }

    #[test]
    fn entities_and_missing_content_are_refused() {
        let laughs = r#"<!DOCTYPE x [<!ENTITY a "a">]><office:document-content xmlns:text="t"><text:p>&a;</text:p></office:document-content>"#;
        assert_eq!(
            extract(&odt(laughs), &limits()).unwrap_err(),
            Refusal::XmlEntities
        );
        let mut buf = Cursor::new(Vec::new());
        let mut z = zip::ZipWriter::new(&mut buf);
        z.start_file("other.xml", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(b"<a/>").unwrap();
        z.finish().unwrap();
        assert!(matches!(
            extract(&buf.into_inner(), &limits()).unwrap_err(),
            Refusal::Malformed { .. }
        ));
    }
}
