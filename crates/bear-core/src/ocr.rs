//! Optical character recognition: [`Ocr`] reads the text on a page image.

use std::time::Instant;

use crate::error::Result;

/// Mean word confidence (0-100) under which a page's text is low confidence: its chunks say
/// so in search results and citations.
pub const LOW_OCR_CONFIDENCE: f32 = 60.0;

/// One page as 8-bit grey pixels, row after row, dark text on a light ground.
#[derive(Clone, Copy)]
pub struct PageImage<'a> {
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// The resolution the page was scanned or rendered at, in dots per inch (0: unknown).
    pub dpi: u32,
    /// `width * height` bytes, 0 black to 255 white.
    pub pixels: &'a [u8],
}

impl std::fmt::Debug for PageImage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PageImage({}x{} at {} dpi)",
            self.width, self.height, self.dpi
        )
    }
}

/// The text read from one page.
#[derive(Clone, PartialEq)]
pub struct OcrPage {
    /// The page's text, lines separated by newlines.
    pub text: String,
    /// The engine's mean word confidence, 0 to 100.
    pub confidence: f32,
    /// Each word with where it is on the image, in reading order.
    pub words: Vec<OcrWord>,
}

impl std::fmt::Debug for OcrPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcrPage")
            .field("chars", &self.text.chars().count())
            .field("confidence", &self.confidence)
            .field("words", &self.words.len())
            .finish()
    }
}

/// One word read, with its box in pixels of the page image (origin top left).
#[derive(Clone, PartialEq, Eq)]
pub struct OcrWord {
    /// What it says.
    pub text: String,
    /// Left edge.
    pub left: u32,
    /// Top edge.
    pub top: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// The line it is on, counted from 0 over the page.
    pub line: u32,
}

impl std::fmt::Debug for OcrWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "OcrWord({} chars at {},{} {}x{}, line {})",
            self.text.chars().count(),
            self.left,
            self.top,
            self.width,
            self.height,
            self.line
        )
    }
}

/// Reads page images.
///
/// Implemented by bear-models' `TesseractOcr`. Called by bear-rag's extraction for image files
/// and for PDF pages without a usable text layer.
///
/// Callers may assume:
/// - `recognize` may be called from several threads at once (an engine per call);
/// - a page that is still being read at `deadline` is an [`crate::ErrorKind::Timeout`] error,
///   returned soon after the deadline;
/// - an empty page is `Ok` with empty text, not an error.
pub trait Ocr: Send + Sync {
    /// The languages read, as configured (`eng+nld`).
    fn languages(&self) -> &str;

    /// Reads one page.
    fn recognize(&self, page: &PageImage<'_>, deadline: Instant) -> Result<OcrPage>;
}
