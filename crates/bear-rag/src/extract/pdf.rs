//! PDF text layers through lopdf, one page at a time, with decompression, page and time limits.
//! lopdf guards its own traversals against cyclic page trees and xref chains. A page whose text
//! layer is missing or unusable is rendered and read by OCR when an engine is configured
//! ([`super::render`], [`super::ocr`]); mixed documents are read page by page.

use lopdf::{Document, LoadOptions, Object};

use super::ocr::{OcrPageInfo, OcrSetup, layer_unusable, read_pages};
use super::render::Renderer;
use super::{DocMeta, Extracted, Limits, Refusal};

/// Loads a PDF with lopdf, streams decompressed within `rag.max_decompressed_bytes`.
pub(crate) fn load(bytes: &[u8], limits: &Limits) -> Result<Document, Refusal> {
    let options = LoadOptions {
        max_decompressed_size: Some(max_inflate(limits)),
        ..LoadOptions::default()
    };
    Document::load_mem_with_options(bytes, options).map_err(load_error)
}

fn max_inflate(limits: &Limits) -> usize {
    usize::try_from(limits.max_decompressed_bytes).unwrap_or(usize::MAX)
}

pub(super) fn extract(bytes: &[u8], limits: &Limits) -> Result<Extracted, Refusal> {
    let secs = limits.secs_left();
    let max_inflate = max_inflate(limits);
    let doc = load(bytes, limits)?;
    if doc.is_encrypted() {
        return Err(Refusal::Encrypted);
    }
    let page_ids: Vec<lopdf::ObjectId> = doc.get_pages().into_values().collect();
    let pages: Vec<u32> = doc.get_pages().into_keys().collect();
    if pages.len() > limits.max_pages {
        return Err(Refusal::TooManyPages {
            pages: pages.len(),
            limit: limits.max_pages,
        });
    }
    let mut texts = Vec::with_capacity(pages.len());
    let mut budget = max_inflate;
    for &n in &pages {
        limits.check_time(secs)?;
        let page = doc
            .extract_text_with_limit(&[n], budget)
            .map_err(load_error)?;
        budget = budget.saturating_sub(page.len());
        texts.push(page.trim_end().to_string());
    }
    let ocr_pages = match &limits.ocr {
        Some(setup) => read_scanned(bytes, &doc, &page_ids, &mut texts, setup, limits),
        None => Vec::new(),
    };
    let mut text = String::new();
    let mut page_starts = Vec::with_capacity(pages.len());
    for t in texts {
        page_starts.push(text.len());
        text.push_str(&t);
        text.push_str("\n\x0c");
    }
    let info = info_dict(&doc);
    let field = |key: &[u8]| {
        info.and_then(|d| d.get(key).ok())
            .and_then(|o| lopdf::decode_text_string(o).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let meta = DocMeta {
        title: field(b"Title"),
        author: field(b"Author"),
        created: field(b"CreationDate").map(|d| pdf_date(&d)),
        modified: field(b"ModDate").map(|d| pdf_date(&d)),
        page_count: Some(pages.len() as u32),
        ..DocMeta::default()
    };
    Ok(Extracted {
        text,
        page_starts,
        meta,
        ocr_pages,
    })
}

/// Reads the pages of `texts` whose text layer is unusable by OCR, replacing a page's text when
/// OCR found more letters and digits than its layer held.
fn read_scanned(
    bytes: &[u8],
    doc: &Document,
    page_ids: &[lopdf::ObjectId],
    texts: &mut [String],
    setup: &OcrSetup,
    limits: &Limits,
) -> Vec<OcrPageInfo> {
    let wanted: Vec<usize> = (0..texts.len())
        .filter(|&i| layer_unusable(&texts[i]))
        .collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    let renderer = Renderer::new(bytes, doc, limits);
    let images = wanted
        .iter()
        .map(|&i| (i as u32 + 1, renderer.page(i, page_ids[i])));
    let reads = read_pages(setup, images, wanted.len());
    let mut infos = Vec::with_capacity(reads.len());
    for r in reads {
        let i = r.info.page as usize - 1;
        if alnum(&r.text) > alnum(&texts[i]) {
            texts[i] = r.text.trim_end().to_string();
        }
        infos.push(r.info);
    }
    infos
}

fn alnum(s: &str) -> usize {
    s.chars().filter(|c| c.is_alphanumeric()).count()
}

fn info_dict(doc: &Document) -> Option<&lopdf::Dictionary> {
    match doc.trailer.get(b"Info").ok()? {
        Object::Reference(id) => doc.get_dictionary(*id).ok(),
        Object::Dictionary(d) => Some(d),
        _ => None,
    }
}

pub(crate) fn load_error(e: lopdf::Error) -> Refusal {
    match e {
        lopdf::Error::InvalidPassword | lopdf::Error::Decryption(_) => Refusal::Encrypted,
        lopdf::Error::Decompress(lopdf::DecompressError::MemoryLimitExceeded { .. }) => {
            Refusal::ZipBomb {
                detail: "a PDF stream decompresses past rag.max_decompressed_bytes".into(),
            }
        }
        other => Refusal::MalformedPdf {
            detail: other.to_string(),
        },
    }
}

/// `D:YYYYMMDDHHmmSS...` to `YYYY-MM-DDTHH:mm:SS` (as much as is present); other text as is.
fn pdf_date(raw: &str) -> String {
    let d = raw.strip_prefix("D:").unwrap_or(raw);
    let digits: String = d
        .chars()
        .take_while(char::is_ascii_digit)
        .take(14)
        .collect();
    if digits.len() < 4 {
        return raw.to_string();
    }
    let part = |a: usize, b: usize| digits.get(a..b);
    let mut out = digits[..4].to_string();
    if let Some(m) = part(4, 6) {
        out += &format!("-{m}");
    }
    if let Some(day) = part(6, 8) {
        out += &format!("-{day}");
    }
    if let (Some(h), Some(mi)) = (part(8, 10), part(10, 12)) {
        out += &format!("T{h}:{mi}:{}", part(12, 14).unwrap_or("00"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::pdf_date;

    #[test]
    fn pdf_dates() {
        assert_eq!(pdf_date("D:20240315093000+01'00'"), "2024-03-15T09:30:00");
        assert_eq!(pdf_date("D:2024"), "2024");
        assert_eq!(pdf_date("yesterday"), "yesterday");
    }
}
