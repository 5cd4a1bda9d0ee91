//! DOCX: the zip package is opened under `package`'s bomb checks, then `word/document.xml` is
//! read with quick-xml. Explicit and last-rendered page breaks give page numbers.

use quick_xml::events::Event;

use super::package::{self, Depth, Kind, entity, read_entry, xml_reader};
use super::{Extracted, Limits, Refusal};

const DOCUMENT: &str = "word/document.xml";

pub(super) fn extract(bytes: &[u8], limits: &Limits) -> Result<Extracted, Refusal> {
    let mut zip = package::open(bytes, Kind::Docx, limits)?;
    let mut budget = limits.max_decompressed_bytes;
    let document = read_entry(&mut zip, Kind::Docx, DOCUMENT, &mut budget)?
        .ok_or_else(|| Kind::Docx.malformed("no word/document.xml: not a Word document"))?;
    let (text, page_starts) = body_text(&document, limits)?;
    let mut meta = package::properties(
        &mut zip,
        Kind::Docx,
        "docProps/core.xml",
        &mut budget,
        limits,
    )?;
    meta.page_count = Some(page_starts.len() as u32);
    if page_starts.len() > limits.max_pages {
        return Err(Refusal::TooManyPages {
            pages: page_starts.len(),
            limit: limits.max_pages,
        });
    }
    Ok(Extracted {
        text,
        page_starts,
        meta,
        ocr_pages: Vec::new(),
    })
}

/// The body's text: paragraphs separated by blank lines, headings prefixed with `#`, tabs and
/// breaks kept; page starts from explicit page breaks and Word's last rendered breaks.
fn body_text(xml: &[u8], limits: &Limits) -> Result<(String, Vec<usize>), Refusal> {
    let secs = limits.secs_left();
    let mut r = xml_reader(xml);
    let mut text = String::new();
    let mut pages = vec![0usize];
    let mut depth = Depth::new(limits);
    let mut in_t = false;
    let mut para = String::new();
    let mut heading = 0u8;
    let mut n = 0u64;
    let mut page_break_pending = false;
    loop {
        n += 1;
        if n.is_multiple_of(4096) {
            limits.check_time(secs)?;
        }
        let ev = r.read_event().map_err(|_| Kind::Docx.bad_xml(DOCUMENT))?;
        match ev {
            Event::DocType(_) => return Err(Refusal::XmlEntities),
            Event::Start(e) => {
                depth.open()?;
                match e.name().as_ref() {
                    "w:t" => in_t = true,
                    "w:p" => {
                        para.clear();
                        heading = 0;
                    }
                    _ => {}
                }
            }
            Event::Empty(e) => match e.name().as_ref() {
                "w:tab" => para.push('\t'),
                "w:br" | "w:cr" => {
                    let is_page = e
                        .attributes()
                        .flatten()
                        .any(|a| a.key.as_ref() == "w:type" && a.value.as_ref() == "page");
                    if is_page {
                        page_break_pending = true;
                    } else {
                        para.push('\n');
                    }
                }
                "w:lastRenderedPageBreak" => page_break_pending = true,
                "w:pStyle" => {
                    for a in e.attributes().flatten() {
                        if a.key.as_ref() == "w:val" {
                            let v: &str = a.value.as_ref();
                            if let Some(level) =
                                v.strip_prefix("Heading").and_then(|l| l.parse::<u8>().ok())
                            {
                                heading = level.clamp(1, 6);
                            } else if v == "Title" {
                                heading = 1;
                            }
                        }
                    }
                }
                _ => {}
            },
            Event::End(e) => {
                depth.close();
                match e.name().as_ref() {
                    "w:t" => in_t = false,
                    "w:p" => {
                        if page_break_pending {
                            // A break inside a paragraph: the next paragraph opens the page.
                            page_break_pending = false;
                            package::push_paragraph(&mut text, &mut para, heading);
                            if text.len() > pages.last().copied().unwrap_or(0) {
                                pages.push(text.len());
                            }
                            continue;
                        }
                        package::push_paragraph(&mut text, &mut para, heading);
                    }
                    _ => {}
                }
            }
            Event::Text(t) if in_t => {
                para.push_str(&t.xml10_content());
            }
            Event::GeneralRef(r) if in_t => para.push_str(&entity(&r, Kind::Docx, DOCUMENT)?),
            Event::GeneralRef(r) => {
                entity(&r, Kind::Docx, DOCUMENT)?;
            }
            Event::CData(c) if in_t => {
                para.push_str(&c);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if pages.len() > 1 && pages.last() == Some(&text.len()) {
        pages.pop();
    }
    Ok((text, pages))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    fn limits() -> Limits {
        Limits::for_tests()
    }

    fn docx(document_xml: &str) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        let mut z = zip::ZipWriter::new(&mut buf);
        let o = zip::write::SimpleFileOptions::default();
        z.start_file("word/document.xml", o).unwrap();
        z.write_all(document_xml.as_bytes()).unwrap();
        z.start_file("docProps/core.xml", o).unwrap();
        z.write_all(
            br#"<?xml version="1.0"?><cp:coreProperties xmlns:cp="c" xmlns:dc="d" xmlns:dcterms="t"><dc:title>Lease</dc:title><dc:creator>Kim &amp; Co</dc:creator><dcterms:created>2024-01-02T03:04:05Z</dcterms:created></cp:coreProperties>"#,
        )
        .unwrap();
        z.finish().unwrap();
        buf.into_inner()
    }

    #[test]
    fn paragraphs_headings_pages_and_metadata() {
        let xml = r#"<w:document xmlns:w="w"><w:body>
            <w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Article 1</w:t></w:r></w:p>
            <w:p><w:r><w:t xml:space="preserve">Rent is &lt;due&gt; </w:t></w:r><w:r><w:t>monthly.</w:t></w:r></w:p>
            <w:p><w:r><w:br w:type="page"/></w:r></w:p>
            <w:p><w:r><w:t>Second page.</w:t></w:r></w:p>
            </w:body></w:document>"#;
        let e = extract(&docx(xml), &limits()).unwrap();
        assert_eq!(
            e.text,
            "# Article 1\n\nRent is <due> monthly.\n\nSecond page.\n\n"
        );
        assert_eq!(e.page_starts, vec![0, e.text.find("Second").unwrap()]);
        assert_eq!(e.page_of(e.text.find("Second").unwrap()), Some(2));
        assert_eq!(e.meta.title.as_deref(), Some("Lease"));
        assert_eq!(e.meta.author.as_deref(), Some("Kim & Co"));
        assert_eq!(e.meta.created.as_deref(), Some("2024-01-02T03:04:05Z"));
    }

    #[test]
    fn refuses_entities_depth_and_bombs() {
        let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><w:document xmlns:w="w"><w:body><w:p><w:r><w:t>&lol2;</w:t></w:r></w:p></w:body></w:document>"#;
        assert_eq!(
            extract(&docx(laughs), &limits()).unwrap_err(),
            Refusal::XmlEntities
        );
        let undeclared = r#"<w:document xmlns:w="w"><w:body><w:p><w:r><w:t>&lol;</w:t></w:r></w:p></w:body></w:document>"#;
        assert_eq!(
            extract(&docx(undeclared), &limits()).unwrap_err(),
            Refusal::XmlEntities
        );
        let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
        assert_eq!(
            extract(&docx(&deep), &limits()).unwrap_err(),
            Refusal::XmlTooDeep { limit: 64 }
        );
        // 4 MiB of zeros compresses to a few KiB; the limit is 1 MiB.
        let big = format!(
            "<w:document xmlns:w=\"w\"><w:body><w:p><w:r><w:t>{}</w:t></w:r></w:p></w:body></w:document>",
            "0".repeat(4 << 20)
        );
        let packed = docx(&big);
        assert!(packed.len() < 64 << 10);
        assert!(matches!(
            extract(&packed, &limits()).unwrap_err(),
            Refusal::ZipBomb { .. }
        ));
        assert!(matches!(
            extract(b"PK\x03\x04 not really", &limits()).unwrap_err(),
            Refusal::MalformedDocx { .. }
        ));
    }
}
