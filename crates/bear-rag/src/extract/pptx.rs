//! PPTX: one page per slide, in the presentation's order (`ppt/presentation.xml` through its
//! relationships), each slide's text by paragraph (a title placeholder as a heading), then
//! its speaker notes. The package is opened under `package`'s bomb checks.

use quick_xml::events::{BytesStart, Event};

use super::package::{self, Archive, Depth, Kind, attr, entity, read_entry, xml_reader};
use super::{Extracted, Limits, Refusal};

const PRESENTATION: &str = "ppt/presentation.xml";
const NOTES_TYPE: &str = "/notesSlide";

pub(super) fn extract(bytes: &[u8], limits: &Limits) -> Result<Extracted, Refusal> {
    let mut zip = package::open(bytes, Kind::Pptx, limits)?;
    let mut budget = limits.max_decompressed_bytes;
    let slides = slide_parts(&mut zip, &mut budget, limits)?;
    if slides.len() > limits.max_pages {
        return Err(Refusal::TooManyPages {
            pages: slides.len(),
            limit: limits.max_pages,
        });
    }
    let secs = limits.secs_left();
    let mut text = String::new();
    let mut page_starts = Vec::with_capacity(slides.len());
    for part in &slides {
        limits.check_time(secs)?;
        page_starts.push(text.len());
        let xml = read_entry(&mut zip, Kind::Pptx, part, &mut budget)?
            .ok_or_else(|| Kind::Pptx.malformed(format!("{part} is listed but missing")))?;
        text.push_str(&shapes_text(&xml, part, limits)?);
        if let Some(notes) = notes_part(&mut zip, part, &mut budget, limits)? {
            let xml = read_entry(&mut zip, Kind::Pptx, &notes, &mut budget)?.unwrap_or_default();
            let said = shapes_text(&xml, &notes, limits)?;
            if !said.trim().is_empty() {
                text.push_str("Speaker notes:\n\n");
                text.push_str(&said);
            }
        }
    }
    let mut meta = package::properties(
        &mut zip,
        Kind::Pptx,
        "docProps/core.xml",
        &mut budget,
        limits,
    )?;
    meta.page_count = Some(slides.len() as u32);
    Ok(Extracted {
        text,
        page_starts,
        meta,
        ocr_pages: Vec::new(),
    })
}

/// The slides' part names in presentation order.
fn slide_parts(
    zip: &mut Archive<'_>,
    budget: &mut u64,
    limits: &Limits,
) -> Result<Vec<String>, Refusal> {
    let xml = read_entry(zip, Kind::Pptx, PRESENTATION, budget)?
        .ok_or_else(|| Kind::Pptx.malformed("no ppt/presentation.xml: not a presentation"))?;
    let rels = relationships(zip, "ppt/_rels/presentation.xml.rels", budget, limits)?;
    let mut parts = Vec::new();
    let mut r = xml_reader(&xml);
    let mut depth = Depth::new(limits);
    loop {
        match r
            .read_event()
            .map_err(|_| Kind::Pptx.bad_xml(PRESENTATION))?
        {
            Event::DocType(_) => return Err(Refusal::XmlEntities),
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "sldId" => {
                if let Some(id) = attr(&e, "r:id")
                    && let Some((_, target)) = rels
                        .iter()
                        .find(|(i, _, _)| *i == id)
                        .map(|(_, t, g)| (t, g))
                {
                    parts.push(resolve("ppt", target));
                }
            }
            Event::Start(_) => depth.open()?,
            Event::End(_) => depth.close(),
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(parts)
}

/// The notes slide of slide `part`, if it has one.
fn notes_part(
    zip: &mut Archive<'_>,
    part: &str,
    budget: &mut u64,
    limits: &Limits,
) -> Result<Option<String>, Refusal> {
    let (dir, file) = part.rsplit_once('/').unwrap_or(("", part));
    let rels = relationships(zip, &format!("{dir}/_rels/{file}.rels"), budget, limits)?;
    Ok(rels
        .iter()
        .find(|(_, kind, _)| kind.ends_with(NOTES_TYPE))
        .map(|(_, _, target)| resolve(dir, target)))
}

/// A relationships part: (id, type, target) of each relationship; none when it is absent.
fn relationships(
    zip: &mut Archive<'_>,
    part: &str,
    budget: &mut u64,
    limits: &Limits,
) -> Result<Vec<(String, String, String)>, Refusal> {
    let Some(xml) = read_entry(zip, Kind::Pptx, part, budget)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut r = xml_reader(&xml);
    let mut depth = Depth::new(limits);
    loop {
        match r.read_event().map_err(|_| Kind::Pptx.bad_xml(part))? {
            Event::DocType(_) => return Err(Refusal::XmlEntities),
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "Relationship" => {
                if let (Some(id), Some(target)) = (attr(&e, "Id"), attr(&e, "Target")) {
                    out.push((id, attr(&e, "Type").unwrap_or_default(), target));
                }
            }
            Event::Start(_) => depth.open()?,
            Event::End(_) => depth.close(),
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

/// A relationship target resolved against the folder of the part that names it.
fn resolve(dir: &str, target: &str) -> String {
    if let Some(absolute) = target.strip_prefix('/') {
        return absolute.to_string();
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for p in target.split('/') {
        match p {
            ".." => {
                parts.pop();
            }
            "." | "" => {}
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// Placeholders whose text is not the slide's content (numbers, dates, footers).
fn skipped_placeholder(kind: &str) -> bool {
    matches!(kind, "sldNum" | "dt" | "ftr" | "hdr" | "sldImg")
}

/// The text of a slide or notes part: one paragraph per line pair, a title as a heading.
fn shapes_text(xml: &[u8], part: &str, limits: &Limits) -> Result<String, Refusal> {
    let mut r = xml_reader(xml);
    let mut depth = Depth::new(limits);
    let mut text = String::new();
    let mut para = String::new();
    let (mut in_t, mut title, mut skip) = (false, false, false);
    loop {
        match r.read_event().map_err(|_| Kind::Pptx.bad_xml(part))? {
            Event::DocType(_) => return Err(Refusal::XmlEntities),
            Event::Start(e) => {
                depth.open()?;
                match e.local_name().as_ref() {
                    "sp" => (title, skip) = (false, false),
                    "t" => in_t = true,
                    "ph" => placeholder(&e, &mut title, &mut skip),
                    _ => {}
                }
            }
            Event::Empty(e) => match e.local_name().as_ref() {
                "ph" => placeholder(&e, &mut title, &mut skip),
                "br" => para.push('\n'),
                _ => {}
            },
            Event::End(e) => {
                depth.close();
                match e.local_name().as_ref() {
                    "t" => in_t = false,
                    "p" if !skip => package::push_paragraph(&mut text, &mut para, u8::from(title)),
                    "p" => para.clear(),
                    _ => {}
                }
            }
            Event::Text(t) if in_t => para.push_str(&t.xml10_content()),
            Event::GeneralRef(g) if in_t => para.push_str(&entity(&g, Kind::Pptx, part)?),
            Event::GeneralRef(g) => {
                entity(&g, Kind::Pptx, part)?;
            }
            Event::CData(c) if in_t => para.push_str(&c),
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(text)
}

fn placeholder(e: &BytesStart<'_>, title: &mut bool, skip: &mut bool) {
    let kind = attr(e, "type").unwrap_or_default();
    *title = matches!(kind.as_str(), "title" | "ctrTitle");
    *skip = skipped_placeholder(&kind);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    fn limits() -> Limits {
        Limits::for_tests()
    }

    fn slide(title: &str, body: &str) -> String {
        format!(
            r#"<p:sld xmlns:p="p" xmlns:a="a"><p:cSld><p:spTree>
            <p:sp><p:nvSpPr><p:nvPr><p:ph type="title"/></p:nvPr></p:nvSpPr><p:txBody><a:p><a:r><a:t>{title}</a:t></a:r></a:p></p:txBody></p:sp>
            <p:sp><p:txBody><a:p><a:r><a:t>{body}</a:t></a:r></a:p></p:txBody></p:sp>
            <p:sp><p:nvSpPr><p:nvPr><p:ph type="sldNum"/></p:nvPr></p:nvSpPr><p:txBody><a:p><a:r><a:t>7</a:t></a:r></a:p></p:txBody></p:sp>
            </p:spTree></p:cSld></p:sld>"#
        )
    }

    /// A deck whose slide files are numbered against their order, the first with notes.
    fn deck() -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        let mut z = zip::ZipWriter::new(&mut buf);
        let o = zip::write::SimpleFileOptions::default();
        let mut put = |name: &str, body: &str| {
            z.start_file(name, o).unwrap();
            z.write_all(body.as_bytes()).unwrap();
        };
        put(
            "ppt/presentation.xml",
            r#"<p:presentation xmlns:p="p" xmlns:r="r"><p:sldIdLst><p:sldId id="256" r:id="rId7"/><p:sldId id="257" r:id="rId3"/></p:sldIdLst></p:presentation>"#,
        );
        put(
            "ppt/_rels/presentation.xml.rels",
            r#"<Relationships><Relationship Id="rId3" Type="t/slide" Target="slides/slide1.xml"/><Relationship Id="rId7" Type="t/slide" Target="/ppt/slides/slide2.xml"/></Relationships>"#,
        );
        put(
            "ppt/slides/slide2.xml",
            &slide("Damages", "Lost profit &amp; costs: EUR 40,000."),
        );
        put(
            "ppt/slides/slide1.xml",
            &slide("Timeline", "Notice given on 3 May."),
        );
        put(
            "ppt/slides/_rels/slide2.xml.rels",
            r#"<Relationships><Relationship Id="rId2" Type="http://x/relationships/notesSlide" Target="../notesSlides/notesSlide1.xml"/></Relationships>"#,
        );
        put(
            "ppt/notesSlides/notesSlide1.xml",
            r#"<p:notes xmlns:p="p" xmlns:a="a"><p:cSld><p:spTree><p:sp><p:nvSpPr><p:nvPr><p:ph type="body"/></p:nvPr></p:nvSpPr><p:txBody><a:p><a:r><a:t>Stress the invoices.</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:notes>"#,
        );
        put(
            "docProps/core.xml",
            r#"<cp:coreProperties xmlns:cp="c" xmlns:dc="d"><dc:title>Pleading deck</dc:title></cp:coreProperties>"#,
        );
        z.finish().unwrap();
        buf.into_inner()
    }

    #[test]
    fn slides_in_presentation_order_with_notes_and_pages() {
        let e = extract(&deck(), &limits()).unwrap();
        assert_eq!(
            e.text,
            "# Damages\n\nLost profit & costs: EUR 40,000.\n\nSpeaker notes:\n\nStress the invoices.\n\n\
             # Timeline\n\nNotice given on 3 May.\n\n"
        );
        let second = e.text.find("# Timeline").unwrap();
        assert_eq!(e.page_starts, vec![0, second]);
        assert_eq!(e.page_of(e.text.find("Stress").unwrap()), Some(1));
        assert_eq!(e.page_of(e.text.find("3 May").unwrap()), Some(2));
        assert_eq!(e.meta.page_count, Some(2));
        assert_eq!(e.meta.title.as_deref(), Some("Pleading deck"));
    }

    #[test]
    fn not_a_presentation_and_too_many_slides_are_refused() {
        assert!(matches!(
            extract(b"PK\x03\x04 nothing", &limits()).unwrap_err(),
            Refusal::Malformed { .. }
        ));
        let few = Limits {
            max_pages: 1,
            ..limits()
        };
        assert_eq!(
            extract(&deck(), &few).unwrap_err(),
            Refusal::TooManyPages { pages: 2, limit: 1 }
        );
        assert_eq!(
            resolve("ppt/slides", "../notesSlides/n1.xml"),
            "ppt/notesSlides/n1.xml"
        );
    }
}
