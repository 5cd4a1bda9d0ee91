//! PDF redaction. lopdf checks the file first (decompression budget, page count, image sizes,
//! fonts whose text cannot be read with certainty); open-redact-pdf then reads each page's text
//! with its glyph positions, and the values the marker finds there are removed from the
//! content streams (glyphs, and the paths and image pixels under them, forms included). lopdf
//! strips what else can hold text and drops every object no longer reachable, and the written
//! file is read back and checked before it is returned. Scanned pages are read by OCR and
//! re-rendered without their values ([`super::scan`]).

use std::collections::BTreeMap;

use lopdf::{Dictionary, Document, Object, ObjectId};
use open_redact_pdf::{
    FillColor, PdfDocument, PdfError, RedactionMode, RedactionPlan, RedactionTarget,
};

use super::{Marker, Redacted, Style, Tally, scan};
use crate::extract::ocr::{GreyPage, layer_unusable};
use crate::extract::pdf::load;
use crate::extract::render::{dict, image_sizes, visit_resources};
use crate::extract::{Limits, Refusal};

/// The standard 14 fonts: a simple font naming one of them has a known encoding.
const STANDARD_FONTS: [&str; 14] = [
    "Courier",
    "Courier-Bold",
    "Courier-Oblique",
    "Courier-BoldOblique",
    "Helvetica",
    "Helvetica-Bold",
    "Helvetica-Oblique",
    "Helvetica-BoldOblique",
    "Times-Roman",
    "Times-Bold",
    "Times-Italic",
    "Times-BoldItalic",
    "Symbol",
    "ZapfDingbats",
];

/// Catalog entries that hold text or actions outside the pages' content.
const CATALOG_STRIPPED: [(&[u8], &str); 6] = [
    (b"AcroForm", "form fields"),
    (b"Outlines", "bookmarks"),
    (b"StructTreeRoot", "the structure tree"),
    (b"OpenAction", "actions"),
    (b"AA", "actions"),
    (b"PieceInfo", "private application data"),
];

/// Page entries that hold text or pictures of the page outside its content.
const PAGE_STRIPPED: [(&[u8], &str); 5] = [
    (b"Annots", "annotations"),
    (b"Thumb", "thumbnails"),
    (b"PieceInfo", "private application data"),
    (b"Metadata", "metadata"),
    (b"AA", "actions"),
];

pub(super) fn redact(
    bytes: &[u8],
    marker: &dyn Marker,
    style: Style,
    limits: &Limits,
) -> Result<Redacted, Refusal> {
    let secs = limits.secs_left();
    let images = preflight(bytes, limits)?;
    let mut doc = PdfDocument::open(bytes).map_err(refusal)?;
    let mut tally = Tally::default();
    let mut targets = Vec::new();
    let mut scans = Vec::new();
    for page in 0..doc.page_count() {
        limits.check_time(secs)?;
        let text = doc.extract_text(page).map_err(refusal)?.text;
        if images.get(page).copied().unwrap_or(false) && layer_unusable(&text) {
            scans.push(page);
        }
        targets.extend(page_targets(&doc, page, &text, marker, &mut tally)?);
    }
    let rescanned = scan::redact_scans(bytes, &scans, marker, style, limits, &mut tally)?;
    doc.apply_redactions(plan(targets, style))
        .map_err(refusal)?;
    let written = doc.save().map_err(refusal)?;
    let (bytes, mut stripped) = strip(&written, &rescanned, limits)?;
    verify(&bytes, marker, &tally)?;
    if !rescanned.is_empty() {
        stripped.push("scanned pages re-rendered".into());
    }
    Ok(Redacted {
        bytes,
        log: tally.log(),
        stripped,
    })
}

/// Where the values `marker` finds in page `page`'s `text` are drawn.
fn page_targets(
    doc: &PdfDocument,
    page: usize,
    text: &str,
    marker: &dyn Marker,
    tally: &mut Tally,
) -> Result<Vec<RedactionTarget>, Refusal> {
    let mut targets = Vec::new();
    for m in marker.mark(text) {
        let value = &text[m.start..m.end];
        let found = doc.search_text(page, value).map_err(refusal)?;
        if found.is_empty() {
            return Err(Refusal::Unredactable {
                detail: format!(
                    "a {} on page {} could not be placed on the page",
                    m.kind,
                    page + 1
                ),
            });
        }
        tally.add(&m.kind, Some(page as u32 + 1), value);
        targets.extend(found.into_iter().map(|f| RedactionTarget::QuadGroup {
            page_index: page,
            quads: f.quads.iter().map(|q| q.points).collect(),
        }));
    }
    Ok(targets)
}

fn plan(targets: Vec<RedactionTarget>, style: Style) -> RedactionPlan {
    RedactionPlan {
        targets,
        mode: Some(match style {
            Style::Box => RedactionMode::Redact,
            Style::Blank => RedactionMode::Erase,
        }),
        fill_color: Some(FillColor { r: 0, g: 0, b: 0 }),
        overlay_text: None,
        remove_intersecting_annotations: Some(true),
        strip_metadata: Some(true),
        strip_attachments: Some(true),
        sanitize_hidden_ocgs: Some(true),
    }
}

/// Checks the file with lopdf before open-redact-pdf (which has no limits of its own) reads
/// it; says which pages draw an image.
fn preflight(bytes: &[u8], limits: &Limits) -> Result<Vec<bool>, Refusal> {
    let doc = load(bytes, limits)?;
    if doc.is_encrypted() {
        return Err(Refusal::Encrypted);
    }
    let pages: Vec<ObjectId> = doc.get_pages().into_values().collect();
    if pages.len() > limits.max_pages {
        return Err(Refusal::TooManyPages {
            pages: pages.len(),
            limit: limits.max_pages,
        });
    }
    inflate_all(
        &doc,
        usize::try_from(limits.max_decompressed_bytes).unwrap_or(usize::MAX),
    )?;
    let mut scans = Vec::with_capacity(pages.len());
    for (i, &id) in pages.iter().enumerate() {
        scans.push(check_page(&doc, id, i + 1, limits)?);
    }
    Ok(scans)
}

/// Decodes every Flate stream against one budget, so that a bomb is refused before another
/// parser inflates it whole.
fn inflate_all(doc: &Document, budget: usize) -> Result<(), Refusal> {
    let mut left = budget;
    for o in doc.objects.values() {
        let Object::Stream(s) = o else { continue };
        if !s.dict.has(b"Filter") {
            continue;
        }
        match s.decompressed_content_with_limit(left) {
            Ok(d) => left = left.saturating_sub(d.len()),
            Err(lopdf::Error::Decompress(lopdf::DecompressError::MemoryLimitExceeded {
                ..
            })) => {
                return Err(Refusal::ZipBomb {
                    detail: "PDF streams decompress past rag.max_decompressed_bytes".into(),
                });
            }
            // Image encodings lopdf does not decode (DCT, JBIG2, ...) are sized by their
            // dictionaries in `check_page`.
            Err(_) => {}
        }
    }
    Ok(())
}

/// Refuses a page drawing an image over the pixel limit or text in a font whose characters
/// cannot be read with certainty; says whether the page draws an image.
fn check_page(doc: &Document, id: ObjectId, page: usize, limits: &Limits) -> Result<bool, Refusal> {
    let mut images = 0;
    let checked = visit_resources(doc, id, &mut |resources| {
        images += image_sizes(doc, resources, limits.max_image_pixels)
            .map_err(|e| format!("page {page}: {e}"))?;
        fonts_readable(doc, resources, page)
    });
    checked.map_err(|detail| Refusal::Unredactable { detail })?;
    Ok(images > 0)
}

/// Every font of a resource dictionary maps its codes to characters: through a ToUnicode map,
/// or as a simple font with a named encoding or a standard font.
fn fonts_readable(doc: &Document, resources: &Dictionary, page: usize) -> Result<(), String> {
    let Some(fonts) = resources.get(b"Font").ok().and_then(|o| dict(doc, o)) else {
        return Ok(());
    };
    for (name, o) in fonts.iter() {
        let Some(font) = dict(doc, o) else { continue };
        if font.has(b"ToUnicode") {
            continue;
        }
        let subtype = font
            .get(b"Subtype")
            .and_then(Object::as_name)
            .unwrap_or_default();
        let base = font
            .get(b"BaseFont")
            .and_then(Object::as_name)
            .unwrap_or_default();
        let standard = STANDARD_FONTS.iter().any(|f| f.as_bytes() == base);
        let simple = matches!(subtype, b"Type1" | b"TrueType" | b"MMType1");
        if !(simple && (font.has(b"Encoding") || standard)) {
            return Err(format!(
                "page {page} draws text in font {} ({}), which has no ToUnicode map, so BEAR \
                 cannot read with certainty what it says; make the PDF again with the fonts' \
                 Unicode maps (\"PDF/A\" or \"searchable\" output) and redact that",
                String::from_utf8_lossy(name),
                String::from_utf8_lossy(subtype)
            ));
        }
    }
    Ok(())
}

/// Puts the re-rendered scans in place of their pages, strips what can hold text outside the
/// pages' content and keeps only reachable objects.
fn strip(
    bytes: &[u8],
    rescanned: &BTreeMap<usize, GreyPage>,
    limits: &Limits,
) -> Result<(Vec<u8>, Vec<String>), Refusal> {
    let mut doc = load(bytes, limits)?;
    let ids: Vec<ObjectId> = doc.get_pages().into_values().collect();
    for (&page, image) in rescanned {
        if let Some(&id) = ids.get(page) {
            scan::replace_page(&mut doc, id, image)?;
        }
    }
    let mut stripped = vec![
        "metadata".to_string(),
        "attachments".to_string(),
        "hidden layers".to_string(),
    ];
    let mut note = |what: &str| {
        if !stripped.iter().any(|s| s == what) {
            stripped.push(what.to_string());
        }
    };
    if let Ok(catalog) = doc.catalog_mut() {
        for (key, what) in CATALOG_STRIPPED {
            if catalog.remove(key).is_some() {
                note(what);
            }
        }
        catalog.remove(b"Metadata");
        catalog.remove(b"Names");
    }
    for id in doc.get_pages().into_values().collect::<Vec<_>>() {
        drop_dangling_xobjects(&mut doc, id);
        if let Ok(page) = doc.get_dictionary_mut(id) {
            for (key, what) in PAGE_STRIPPED {
                if page.remove(key).is_some() {
                    note(what);
                }
            }
        }
    }
    doc.trailer.remove(b"Info");
    doc.prune_objects();
    doc.compress();
    let mut out = Vec::with_capacity(bytes.len());
    doc.save_to(&mut out).map_err(|e| Refusal::Unredactable {
        detail: format!("the redacted PDF could not be written: {e}"),
    })?;
    Ok((out, stripped))
}

/// Removes the names of a page's XObjects that no longer exist (the redactor deletes a
/// drawing it removes whole but leaves its name in the page's resources).
fn drop_dangling_xobjects(doc: &mut Document, page: ObjectId) {
    let gone: Vec<Vec<u8>> = match doc
        .get_dictionary(page)
        .ok()
        .and_then(|p| p.get(b"Resources").ok())
        .and_then(|r| dict(doc, r))
        .and_then(|r| r.get(b"XObject").ok())
        .and_then(|x| dict(doc, x))
    {
        Some(x) => x
            .iter()
            .filter(|(_, o)| matches!(o, Object::Reference(id) if doc.get_object(*id).is_err()))
            .map(|(name, _)| name.clone())
            .collect(),
        None => return,
    };
    if gone.is_empty() {
        return;
    }
    let resources = match doc
        .get_dictionary(page)
        .ok()
        .and_then(|p| p.get(b"Resources").ok())
    {
        Some(Object::Reference(id)) => Some(*id),
        _ => None,
    };
    let target = match resources {
        Some(id) => doc.get_dictionary_mut(id).ok(),
        None => doc
            .get_dictionary_mut(page)
            .ok()
            .and_then(|p| p.get_mut(b"Resources").ok())
            .and_then(|r| r.as_dict_mut().ok()),
    };
    if let Some(x) = target
        .and_then(|r| r.get_mut(b"XObject").ok())
        .and_then(|x| x.as_dict_mut().ok())
    {
        for name in gone {
            x.remove(&name);
        }
    }
}

/// Reads the written file back: no removed value may be left and the marker may find nothing.
fn verify(bytes: &[u8], marker: &dyn Marker, tally: &Tally) -> Result<(), Refusal> {
    let doc = PdfDocument::open(bytes).map_err(refusal)?;
    for page in 0..doc.page_count() {
        let text = doc.extract_text(page).map_err(refusal)?.text;
        tally.check(marker, &text, &format!("page {}", page + 1))?;
    }
    Ok(())
}

/// open-redact-pdf's errors, which describe structure, never text.
fn refusal(e: PdfError) -> Refusal {
    match e {
        PdfError::InvalidPassword => Refusal::Encrypted,
        PdfError::Unsupported(what) | PdfError::UnsupportedOption(what) => Refusal::Unredactable {
            detail: format!("the PDF uses something the redactor does not support ({what})"),
        },
        other => Refusal::MalformedPdf {
            detail: other.to_string(),
        },
    }
}
