//! PDF pages rendered to grey images for OCR, with `hayro` (pure Rust; it decodes the scanner
//! encodings JPEG, CCITT G4, JBIG2, Flate and JPEG 2000 itself).
//!
//! hayro has no size limits of its own, so before a page is rendered every image it draws
//! (directly or inside forms, found through lopdf) is checked against `rag.max_image_pixels`,
//! and the page is rendered at 300 dpi or less so that it fits the same limit. A renderer panic
//! skips the page with a reason.

use std::collections::HashSet;

use hayro::hayro_syntax::Pdf;
use hayro::vello_cpu::color::palette::css::WHITE;
use lopdf::{Dictionary, Document, Object, ObjectId};

use super::Limits;
use super::ocr::{GreyPage, grey_from};

/// The resolution pages are rendered at (what Tesseract reads best), unless too large.
pub(super) const DPI: f32 = 300.0;
/// Forms inside forms followed when looking for images.
const MAX_FORM_DEPTH: usize = 8;

/// Renders pages of one PDF.
pub(crate) struct Renderer<'a> {
    pdf: Result<Pdf, String>,
    doc: &'a Document,
    limits: &'a Limits,
}

impl<'a> Renderer<'a> {
    /// A renderer over the PDF `bytes`, already loaded by lopdf as `doc`.
    pub(crate) fn new(bytes: &[u8], doc: &'a Document, limits: &'a Limits) -> Self {
        let pdf =
            Pdf::new(bytes.to_vec()).map_err(|e| format!("the page cannot be rendered: {e:?}"));
        Self { pdf, doc, limits }
    }

    /// Page `index` (0-based; lopdf's `page_id`) as a grey image.
    pub(crate) fn page(&self, index: usize, page_id: ObjectId) -> Result<GreyPage, String> {
        let pdf = self.pdf.as_ref().map_err(Clone::clone)?;
        self.check_images(page_id)?;
        let page = pdf
            .pages()
            .get(index)
            .ok_or_else(|| "the renderer does not find this page".to_string())?;
        let (w, h) = page.render_dimensions();
        let scale = self.scale(w, h)?;
        let pixmap = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            hayro::render(
                page,
                &hayro::RenderCache::new(),
                &hayro::hayro_interpret::InterpreterSettings::default(),
                &hayro::RenderSettings::default(),
                &hayro::PixmapSettings {
                    x_scale: scale,
                    y_scale: scale,
                    bg_color: WHITE,
                },
            )
        }))
        .map_err(|_| "the page could not be rendered".to_string())?;
        // Opaque (drawn on white), so premultiplied RGBA is plain RGBA.
        let pixels = grey_from(pixmap.data_as_u8_slice(), 4);
        Ok(GreyPage {
            width: pixmap.width() as u32,
            height: pixmap.height() as u32,
            dpi: (72.0 * scale).round() as u32,
            pixels,
        })
    }

    /// The scale (pixels per point) that renders a `w` x `h` point page at 300 dpi, or
    /// smaller to stay within the pixel limit and 65,535 pixels a side.
    fn scale(&self, w: f32, h: f32) -> Result<f32, String> {
        if !(w.is_finite() && h.is_finite() && w >= 1.0 && h >= 1.0) {
            return Err("the page has no area".into());
        }
        let mut scale = DPI / 72.0;
        let pixels = (w * scale) as f64 * (h * scale) as f64;
        let max = self.limits.max_image_pixels as f64;
        if pixels > max {
            scale *= (max / pixels).sqrt() as f32;
        }
        scale = scale.min(65_535.0 / w).min(65_535.0 / h);
        if w * scale < 16.0 || h * scale < 16.0 {
            return Err("the page is too large to render within rag.max_image_pixels".into());
        }
        Ok(scale)
    }

    /// Refuses a page drawing an image over the pixel limit (it would be decoded whole).
    fn check_images(&self, page_id: ObjectId) -> Result<(), String> {
        let limit = self.limits.max_image_pixels;
        visit_resources(self.doc, page_id, &mut |resources| {
            image_sizes(self.doc, resources, limit).map(|_| ())
        })
    }
}

/// Refuses an image of a resource dictionary over `limit` pixels (sizes from its dictionary,
/// nothing decoded); says how many images it names.
pub(crate) fn image_sizes(
    doc: &Document,
    resources: &Dictionary,
    limit: u64,
) -> Result<usize, String> {
    let mut images = 0;
    for d in xobjects(doc, resources, b"Image") {
        images += 1;
        let dim = |k: &[u8]| d.get(k).and_then(Object::as_i64).unwrap_or(0).max(0) as u64;
        let (w, h) = (dim(b"Width"), dim(b"Height"));
        if w.saturating_mul(h) > limit {
            return Err(format!(
                "an image on the page is {w} x {h} pixels, over the limit of {limit} \
                 (rag.max_image_pixels)"
            ));
        }
    }
    Ok(images)
}

/// Calls `visit` with the page's resource dictionary and those of the forms it draws, forms
/// inside forms followed 8 deep, each once.
pub(crate) fn visit_resources(
    doc: &Document,
    page_id: ObjectId,
    visit: &mut dyn FnMut(&Dictionary) -> Result<(), String>,
) -> Result<(), String> {
    let page = doc
        .get_dictionary(page_id)
        .map_err(|e| format!("the page cannot be read: {e}"))?;
    let Some(resources) = page.get(b"Resources").ok().and_then(|o| dict(doc, o)) else {
        return Ok(());
    };
    let mut level = vec![resources];
    let mut seen = HashSet::new();
    for _ in 0..=MAX_FORM_DEPTH {
        let mut next = Vec::new();
        for r in level {
            visit(r)?;
            for form in xobjects(doc, r, b"Form") {
                if seen.insert(form as *const Dictionary)
                    && let Some(inner) = form.get(b"Resources").ok().and_then(|o| dict(doc, o))
                {
                    next.push(inner);
                }
            }
        }
        level = next;
    }
    Ok(())
}

/// The XObjects of `subtype` (`Image`, `Form`) a resource dictionary names, by their stream
/// dictionaries.
fn xobjects<'a>(
    doc: &'a Document,
    resources: &'a Dictionary,
    subtype: &'a [u8],
) -> impl Iterator<Item = &'a Dictionary> + 'a {
    resources
        .get(b"XObject")
        .ok()
        .and_then(|o| dict(doc, o))
        .into_iter()
        .flat_map(|x| x.iter())
        .filter_map(|(_, o)| match o {
            Object::Reference(id) => doc.get_object(*id).and_then(Object::as_stream).ok(),
            _ => None,
        })
        .map(|s| &s.dict)
        .filter(move |d| d.get(b"Subtype").and_then(Object::as_name).ok() == Some(subtype))
}

/// A dictionary given directly or by reference.
pub(crate) fn dict<'a>(doc: &'a Document, o: &'a Object) -> Option<&'a Dictionary> {
    match o {
        Object::Dictionary(d) => Some(d),
        Object::Reference(id) => doc.get_dictionary(*id).ok(),
        _ => None,
    }
}
