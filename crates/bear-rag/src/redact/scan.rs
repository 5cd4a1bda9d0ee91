//! Scanned PDF pages (an image, no usable text layer): the page is rendered at 300 dpi and read
//! by OCR with each word's box; the words holding a value are filled in the rendered image,
//! which is read again to check nothing is left, and then replaces the page whole (a page
//! image re-rendered without the values, whatever encoding the scan had). Pages without a
//! value keep their original scan.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Instant;

use bear_core::{OcrPage, OcrWord, PageImage};
use lopdf::{Document, Object, ObjectId, Stream, dictionary};

use super::{Marker, Style, Tally};
use crate::extract::ocr::{GreyPage, OcrSetup};
use crate::extract::pdf::{load, load_error};
use crate::extract::render::Renderer;
use crate::extract::{Limits, Refusal};

/// Pixels added around each word's box when it is filled.
const PAD: u32 = 3;

/// The scanned pages (0-based) of `bytes` that hold a value, each as its rendered image with
/// the values filled.
pub(super) fn redact_scans(
    bytes: &[u8],
    pages: &[usize],
    marker: &dyn Marker,
    style: Style,
    limits: &Limits,
    tally: &mut Tally,
) -> Result<BTreeMap<usize, GreyPage>, Refusal> {
    let mut out = BTreeMap::new();
    let Some(&first) = pages.first() else {
        return Ok(out);
    };
    let Some(ocr) = &limits.ocr else {
        return Err(Refusal::Unredactable {
            detail: format!(
                "page {} is a scanned image without a usable text layer, and OCR is not \
                 available to read it: install Tesseract's language data (Debian: \
                 tesseract-ocr-eng)",
                first + 1
            ),
        });
    };
    let doc = load(bytes, limits)?;
    let ids: Vec<ObjectId> = doc.get_pages().into_values().collect();
    let renderer = Renderer::new(bytes, &doc, limits);
    for &page in pages {
        let unreadable = |detail: String| Refusal::Unredactable {
            detail: format!("scanned page {} cannot be read: {detail}", page + 1),
        };
        let id = *ids
            .get(page)
            .ok_or_else(|| unreadable("no such page".into()))?;
        let mut image = renderer.page(page, id).map_err(unreadable)?;
        let read = read(ocr, &image, page)?;
        let (text, spans) = joined(&read.words);
        let marks = marker.mark(&text);
        if marks.is_empty() {
            continue;
        }
        for m in &marks {
            tally.add(&m.kind, Some(page as u32 + 1), &text[m.start..m.end]);
        }
        for (word, span) in read.words.iter().zip(&spans) {
            if marks
                .iter()
                .any(|m| m.start < span.end && span.start < m.end)
            {
                fill(&mut image, word, style);
            }
        }
        check(ocr, &image, page, marker, tally)?;
        out.insert(page, image);
    }
    Ok(out)
}

/// Reads `image` within the per-page time limit.
fn read(ocr: &OcrSetup, image: &GreyPage, page: usize) -> Result<OcrPage, Refusal> {
    let view = PageImage {
        width: image.width,
        height: image.height,
        dpi: image.dpi,
        pixels: &image.pixels,
    };
    ocr.engine
        .recognize(&view, Instant::now() + ocr.page_timeout)
        .map_err(|e| Refusal::Unredactable {
            detail: format!("OCR could not read scanned page {}: {e}", page + 1),
        })
}

/// The filled image read again: the marker may find nothing, no removed value may be left.
fn check(
    ocr: &OcrSetup,
    image: &GreyPage,
    page: usize,
    marker: &dyn Marker,
    tally: &Tally,
) -> Result<(), Refusal> {
    let again = read(ocr, image, page)?;
    let (text, _) = joined(&again.words);
    tally.check(marker, &text, &format!("scanned page {}", page + 1))
}

/// The words as text (spaces between words, a line break between lines) and each word's
/// byte range in it.
fn joined(words: &[OcrWord]) -> (String, Vec<Range<usize>>) {
    let mut text = String::new();
    let mut spans = Vec::with_capacity(words.len());
    let mut line = None;
    for w in words {
        if let Some(l) = line {
            text.push(if l == w.line { ' ' } else { '\n' });
        }
        line = Some(w.line);
        let start = text.len();
        text.push_str(&w.text);
        spans.push(start..text.len());
    }
    (text, spans)
}

/// Fills a word's box (and a few pixels around it): black for a box, white for a blank.
fn fill(image: &mut GreyPage, word: &OcrWord, style: Style) {
    let shade = match style {
        Style::Box => 0,
        Style::Blank => 255,
    };
    let x0 = word.left.saturating_sub(PAD) as usize;
    let y0 = word.top.saturating_sub(PAD) as usize;
    let x1 = (word.left + word.width + PAD).min(image.width) as usize;
    let y1 = (word.top + word.height + PAD).min(image.height) as usize;
    let w = image.width as usize;
    for y in y0..y1 {
        if let Some(row) = image.pixels.get_mut(y * w + x0..y * w + x1) {
            row.fill(shade);
        }
    }
}

/// Makes page `id` of `doc` the image alone, at the size it was rendered at.
pub(super) fn replace_page(
    doc: &mut Document,
    id: ObjectId,
    image: &GreyPage,
) -> Result<(), Refusal> {
    let dpi = image.dpi.max(1) as f32;
    let (w, h) = (
        image.width as f32 * 72.0 / dpi,
        image.height as f32 * 72.0 / dpi,
    );
    let mut scan = Stream::new(
        dictionary! {
            "Type" => "XObject", "Subtype" => "Image",
            "Width" => image.width as i64, "Height" => image.height as i64,
            "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8,
        },
        image.pixels.clone(),
    );
    scan.compress().map_err(|e| Refusal::Unredactable {
        detail: format!("the re-rendered page could not be compressed: {e}"),
    })?;
    let scan = doc.add_object(scan);
    let draw = format!("q {w:.3} 0 0 {h:.3} 0 0 cm /Scan Do Q");
    let contents = doc.add_object(Stream::new(dictionary! {}, draw.into_bytes()));
    let page = doc.get_dictionary_mut(id).map_err(load_error)?;
    for key in [
        &b"CropBox"[..],
        b"TrimBox",
        b"BleedBox",
        b"ArtBox",
        b"Rotate",
        b"Group",
    ] {
        page.remove(key);
    }
    page.set(
        "MediaBox",
        vec![0.into(), 0.into(), Object::Real(w), Object::Real(h)],
    );
    page.set("Contents", contents);
    page.set(
        "Resources",
        dictionary! { "XObject" => dictionary! { "Scan" => scan } },
    );
    Ok(())
}
