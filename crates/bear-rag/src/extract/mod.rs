//! Text extraction from txt, md, html, pdf, docx, pptx, odt, rtf, xlsx, xls, ods, eml, mbox, msg, zip
//! and images (PNG, JPEG, TIFF, BMP, WebP, read by OCR), under limits against hostile
//! documents; an e-mail file or a ZIP archive yields several documents ([`parts`]). PDF pages without a usable text layer are read by
//! OCR too ([`ocr`]), page by page.
//!
//! [`extract`] takes a file's bytes and returns its text, where each page starts (for paged
//! formats) and its metadata. It never panics on bad input: every problem is a [`Refusal`] that
//! says what is wrong and, where there is one, what to do. Extraction is synchronous and
//! CPU-bound; [`crate::ingest`] runs it on its own thread with a large stack and a time limit.

mod archive;
mod docx;
mod image;
pub mod mail;
mod msg;
pub mod ocr;
mod ods;
mod odt;
pub(crate) mod package;
pub(crate) mod pdf;
mod pptx;
pub(crate) mod render;
mod rtf;
mod sheet;
mod text;
mod xls;

use std::fmt;
use std::time::Instant;

pub use ocr::{OcrClock, OcrPageInfo, OcrSetup};

use serde::{Deserialize, Serialize};

pub use text::decode_text;

/// The document formats BEAR reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Plain text in any encoding.
    Text,
    /// Markdown, kept as text (headings guide chunking).
    Markdown,
    /// HTML, rendered to text.
    Html,
    /// PDF: the text layer.
    Pdf,
    /// Word (Office Open XML).
    Docx,
    /// PowerPoint (Office Open XML): one page per slide, speaker notes included.
    Pptx,
    /// OpenDocument text.
    Odt,
    /// Rich Text Format.
    Rtf,
    /// Excel workbook (Office Open XML, `.xlsx`/`.xlsm`): one page per sheet.
    Xlsx,
    /// Legacy Excel workbook (`.xls`, BIFF5/8): one page per sheet.
    Xls,
    /// OpenDocument spreadsheet: one page per sheet.
    Ods,
    /// One e-mail message (RFC 5322); its attachments are documents of their own.
    Eml,
    /// A mailbox: one document per message, and per attachment.
    Mbox,
    /// An Outlook message; its attachments are documents of their own.
    Msg,
    /// A PNG image, read by OCR.
    Png,
    /// A JPEG image, read by OCR.
    Jpeg,
    /// A TIFF image, read by OCR one page at a time.
    Tiff,
    /// A BMP image, read by OCR.
    Bmp,
    /// A WebP image, read by OCR.
    Webp,
    /// A ZIP archive, read as a folder: each file inside is a document of its own.
    Zip,
}

impl Format {
    /// The format for a file name's extension, if BEAR reads it.
    pub fn from_path(path: &std::path::Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "txt" | "text" => Self::Text,
            "md" | "markdown" => Self::Markdown,
            "html" | "htm" | "xhtml" => Self::Html,
            "pdf" => Self::Pdf,
            "docx" => Self::Docx,
            "pptx" => Self::Pptx,
            "odt" => Self::Odt,
            "rtf" => Self::Rtf,
            "xlsx" | "xlsm" => Self::Xlsx,
            "xls" => Self::Xls,
            "ods" => Self::Ods,
            "eml" => Self::Eml,
            "mbox" | "mbx" => Self::Mbox,
            "msg" => Self::Msg,
            "png" => Self::Png,
            "jpg" | "jpeg" => Self::Jpeg,
            "tif" | "tiff" => Self::Tiff,
            "bmp" => Self::Bmp,
            "webp" => Self::Webp,
            "zip" => Self::Zip,
            _ => return None,
        })
    }

    /// The MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Text => "text/plain",
            Self::Markdown => "text/markdown",
            Self::Html => "text/html",
            Self::Pdf => "application/pdf",
            Self::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Self::Pptx => {
                "application/vnd.openxmlformats-officedocument.presentationml.presentation"
            }
            Self::Odt => "application/vnd.oasis.opendocument.text",
            Self::Rtf => "application/rtf",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Self::Xls => "application/vnd.ms-excel",
            Self::Ods => "application/vnd.oasis.opendocument.spreadsheet",
            Self::Eml => "message/rfc822",
            Self::Mbox => "application/mbox",
            Self::Msg => "application/vnd.ms-outlook",
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Tiff => "image/tiff",
            Self::Bmp => "image/bmp",
            Self::Webp => "image/webp",
            Self::Zip => "application/zip",
        }
    }

    /// How messages name a file of this format.
    pub fn label(self) -> &'static str {
        match self {
            Self::Text => "text file",
            Self::Markdown => "Markdown file",
            Self::Html => "HTML file",
            Self::Pdf => "PDF",
            Self::Docx => "DOCX",
            Self::Pptx => "PowerPoint file",
            Self::Odt => "OpenDocument text",
            Self::Rtf => "Rich Text file",
            Self::Xlsx | Self::Xls | Self::Ods => "spreadsheet",
            Self::Eml | Self::Mbox | Self::Msg => "e-mail",
            Self::Png => "PNG image",
            Self::Jpeg => "JPEG image",
            Self::Tiff => "TIFF image",
            Self::Bmp => "BMP image",
            Self::Webp => "WebP image",
            Self::Zip => "ZIP archive",
        }
    }

    /// Whether the format is an image, read by OCR.
    pub fn is_image(self) -> bool {
        matches!(
            self,
            Self::Png | Self::Jpeg | Self::Tiff | Self::Bmp | Self::Webp
        )
    }

    /// Whether a file of this format holds several documents (see [`parts`]).
    pub fn is_container(self) -> bool {
        matches!(self, Self::Eml | Self::Mbox | Self::Msg | Self::Zip)
    }

    /// The file types BEAR reads, for messages.
    pub fn names() -> &'static str {
        "txt, md, html, pdf, docx, pptx, odt, xlsx, xls, ods, eml, mbox, msg, png, jpg, tiff, bmp, webp and zip"
    }
}

/// Limits that keep a hostile document from exhausting memory or time, and the OCR engine
/// that reads scans (none: scans and images are refused).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest file accepted.
    pub max_file_bytes: u64,
    /// Most bytes a container may decompress to (all entries together).
    pub max_decompressed_bytes: u64,
    /// Deepest XML nesting.
    pub max_xml_depth: usize,
    /// Most pages.
    pub max_pages: usize,
    /// When extraction must give up (moved later by the time OCR takes).
    pub deadline: Instant,
    /// Most pixels in one image or rendered page.
    pub max_image_pixels: u64,
    /// Reads scans and images; `None` refuses them.
    pub ocr: Option<OcrSetup>,
}

impl Limits {
    /// The limits in a `[rag]` configuration, with the deadline counted from now.
    pub fn from_config(c: &bear_core::RagConfig) -> Self {
        Self {
            max_file_bytes: c.max_file_bytes,
            max_decompressed_bytes: c.max_decompressed_bytes,
            max_xml_depth: c.max_xml_depth,
            max_pages: c.max_pages,
            deadline: Instant::now() + std::time::Duration::from_secs(c.doc_timeout_secs),
            max_image_pixels: c.max_image_pixels,
            ocr: None,
        }
    }

    /// When extraction must give up: the deadline, moved later by the time spent in OCR.
    pub fn effective_deadline(&self) -> Instant {
        self.deadline
            + self
                .ocr
                .as_ref()
                .map(|o| o.clock.spent())
                .unwrap_or_default()
    }

    /// Whole seconds left before the deadline (what a timeout refusal reports).
    pub(crate) fn secs_left(&self) -> u64 {
        self.effective_deadline()
            .saturating_duration_since(Instant::now())
            .as_secs()
    }

    /// Generous limits for the extractors' unit tests: 1 MiB inflated, depth 64, 100 pages.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        Self {
            max_file_bytes: 1 << 30,
            max_decompressed_bytes: 1 << 20,
            max_xml_depth: 64,
            max_pages: 100,
            deadline: Instant::now() + std::time::Duration::from_secs(60),
            max_image_pixels: 1 << 24,
            ocr: None,
        }
    }

    pub(crate) fn check_time(&self, secs: u64) -> Result<(), Refusal> {
        if Instant::now() > self.effective_deadline() {
            Err(Refusal::Timeout { secs })
        } else {
            Ok(())
        }
    }
}

/// Why a document was not ingested. Never quotes the document's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// The path does not exist.
    NotFound,
    /// The operating system refused access.
    PermissionDenied,
    /// Another read error.
    Unreadable {
        /// The OS error.
        detail: String,
    },
    /// Not a format BEAR reads.
    UnsupportedFormat {
        /// The extension seen.
        extension: String,
    },
    /// The file has no text at all.
    Empty,
    /// The bytes are not text (for example a binary file renamed `.txt`).
    Binary,
    /// Text whose encoding could not be decoded.
    Undecodable {
        /// What was tried.
        detail: String,
    },
    /// A PDF whose pages hold no text (a scan) while no OCR engine is available.
    NoTextLayer,
    /// An image, which only OCR can read, while no OCR engine is available.
    OcrUnavailable,
    /// OCR read no page of a scan or image.
    OcrFailed {
        /// Why the first page could not be read.
        detail: String,
    },
    /// An image (or a page to render) with more pixels than the limit.
    ImageTooLarge {
        /// Its width (0 when the decoder stopped before saying).
        width: u64,
        /// Its height.
        height: u64,
        /// The limit in pixels.
        limit: u64,
    },
    /// A password-protected PDF.
    Encrypted,
    /// A PDF that could not be parsed.
    MalformedPdf {
        /// The parser's description of the structure problem.
        detail: String,
    },
    /// A DOCX that is not a valid Word package.
    MalformedDocx {
        /// What is wrong with the package structure.
        detail: String,
    },
    /// A PPTX, ODT or XLSX that is not a valid package of its kind.
    Malformed {
        /// What kind of file it was taken for.
        format: String,
        /// What is wrong with it (never its text).
        detail: String,
    },
    /// An Office file protected with a password (an encrypted package).
    Protected,
    /// A file holding more documents (messages, attachments) than the limit.
    TooManyParts {
        /// The limit.
        limit: usize,
    },
    /// E-mails attached to e-mails deeper than the limit.
    TooDeep {
        /// The limit.
        limit: usize,
    },

    /// Over the file size limit.
    TooLarge {
        /// The file's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A container that decompresses to more than the limit, or whose entries overlap.
    ZipBomb {
        /// What gave it away.
        detail: String,
    },
    /// XML nested deeper than the limit.
    XmlTooDeep {
        /// The limit.
        limit: usize,
    },
    /// XML with a DOCTYPE or entity declarations (billion-laughs defence).
    XmlEntities,
    /// More pages than the limit.
    TooManyPages {
        /// Pages in the document.
        pages: usize,
        /// The limit.
        limit: usize,
    },
    /// Extraction ran past the time limit.
    Timeout {
        /// The limit in seconds.
        secs: u64,
    },
    /// The extractor failed unexpectedly; the document is skipped.
    Internal,
    /// Something in the file cannot be redacted with certainty (a redacted copy is refused
    /// rather than written with a value left in).
    Unredactable {
        /// What and where (never the value).
        detail: String,
    },
    /// A file sealed by BEAR that cannot be opened: another matter's, damaged, or its key
    /// is gone.
    Sealed {
        /// Why it cannot be opened.
        detail: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => write!(f, "no such file or directory"),
            Self::PermissionDenied => write!(f, "permission denied"),
            Self::Unreadable { detail } => write!(f, "cannot be read: {detail}"),
            Self::UnsupportedFormat { extension } => match legacy_successor(extension) {
                Some(modern) => write!(
                    f,
                    "`{extension}` is a legacy binary Office format BEAR does not read; save it \
                     as .{modern} and ingest that"
                ),
                None => write!(
                    f,
                    "unsupported format `{extension}`; BEAR reads {}",
                    Format::names()
                ),
            },
            Self::Empty => write!(f, "the document is empty"),
            Self::Binary => write!(f, "the file is binary, not text"),
            Self::Undecodable { detail } => write!(f, "the text cannot be decoded: {detail}"),
            Self::NoTextLayer => write!(
                f,
                "the PDF has no text layer (a scan?) and OCR is not available: install \
                 Tesseract's language data (Debian: tesseract-ocr-eng) and ingest it again"
            ),
            Self::OcrUnavailable => write!(
                f,
                "images are read by OCR, which is not available: install Tesseract's language \
                 data (Debian: tesseract-ocr-eng) and ingest it again"
            ),
            Self::OcrFailed { detail } => write!(f, "OCR read no page: {detail}"),
            Self::ImageTooLarge {
                width,
                height,
                limit,
            } => match width * height {
                0 => write!(
                    f,
                    "the image needs more memory than {limit} pixels allow (rag.max_image_pixels)"
                ),
                _ => write!(
                    f,
                    "the image is {width} x {height} pixels, over the limit of {limit} \
                     (rag.max_image_pixels)"
                ),
            },
            Self::Encrypted => write!(
                f,
                "the PDF is encrypted with a password; save a decrypted copy and ingest that"
            ),
            Self::MalformedPdf { detail } => write!(f, "the PDF is malformed: {detail}"),
            Self::MalformedDocx { detail } => write!(f, "the DOCX is malformed: {detail}"),
            Self::Malformed { format, detail } => write!(f, "the {format} is malformed: {detail}"),
            Self::TooManyParts { limit } => write!(
                f,
                "the file holds more than {limit} messages or attachments (per message, 1,000); split it"
            ),
            Self::TooDeep { limit } => write!(
                f,
                "e-mails are attached to e-mails more than {limit} deep; this one is not read"
            ),
            Self::Protected => write!(
                f,
                "the file is protected with a password; save an unprotected copy and ingest that"
            ),

            Self::TooLarge { size, limit } => write!(
                f,
                "the file is {size} bytes, over the limit of {limit} (rag.max_file_bytes)"
            ),
            Self::ZipBomb { detail } => write!(f, "refused as a zip bomb: {detail}"),
            Self::XmlTooDeep { limit } => write!(
                f,
                "the XML nests deeper than {limit} levels (rag.max_xml_depth)"
            ),
            Self::XmlEntities => write!(
                f,
                "the XML declares a DOCTYPE or entities, which are refused (entity expansion attack)"
            ),
            Self::TooManyPages { pages, limit } => write!(
                f,
                "the document has {pages} pages, over the limit of {limit} (rag.max_pages)"
            ),
            Self::Timeout { secs } => write!(
                f,
                "extraction took longer than {secs} s (rag.doc_timeout_secs)"
            ),
            Self::Internal => write!(f, "the extractor failed on this file"),
            Self::Unredactable { detail } => {
                write!(f, "no redacted copy was written: {detail}")
            }
            Self::Sealed { detail } => {
                write!(f, "the file is sealed and cannot be opened: {detail}")
            }
        }
    }
}

/// The current format a legacy Office extension is saved as.
pub(crate) fn legacy_successor(extension: &str) -> Option<&'static str> {
    match extension.to_ascii_lowercase().as_str() {
        "doc" | "dot" => Some("docx"),
        "xlt" => Some("xlsx"),
        "ppt" | "pps" | "pot" => Some("pptx"),
        _ => None,
    }
}

impl Refusal {
    /// The refusal for reading a file that may be sealed.
    pub fn from_read(e: bear_security::Error) -> Self {
        match e {
            bear_security::Error::Io { source, .. } => Self::from_io(&source),
            bear_security::Error::Integrity { reason, .. } => Self::Sealed { detail: reason },
            other => Self::Sealed {
                detail: other.to_string(),
            },
        }
    }

    /// The refusal for an IO error.
    pub fn from_io(e: &std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::NotFound => Self::NotFound,
            std::io::ErrorKind::PermissionDenied => Self::PermissionDenied,
            _ => Self::Unreadable {
                detail: e.kind().to_string(),
            },
        }
    }
}

/// Metadata found inside a document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DocMeta {
    /// The document's own title, else its first heading.
    pub title: Option<String>,
    /// Its author.
    pub author: Option<String>,
    /// When it was created, as the document states it (ISO 8601 where the format allows).
    pub created: Option<String>,
    /// When it was last modified, as the document states it.
    pub modified: Option<String>,
    /// Pages, for paged formats.
    pub page_count: Option<u32>,
    /// The text encoding a text file was decoded from.
    pub encoding: Option<String>,
    /// An e-mail message's header fields (as read: scrubbed when stored) and thread keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail: Option<crate::store::MailMeta>,
}

/// A document's text and where its pages start.
#[derive(Debug, Clone, Default)]
pub struct Extracted {
    /// All text, pages joined by form feeds.
    pub text: String,
    /// Byte offset in `text` where each page starts; page `i + 1` starts at `page_starts[i]`.
    /// Empty for unpaged formats.
    pub page_starts: Vec<usize>,
    /// Metadata from inside the document.
    pub meta: DocMeta,
    /// The pages read by OCR, with their confidence or why they were skipped.
    pub ocr_pages: Vec<OcrPageInfo>,
}

impl Extracted {
    /// The 1-based page holding byte `offset`, for paged documents.
    pub fn page_of(&self, offset: usize) -> Option<u32> {
        if self.page_starts.is_empty() {
            return None;
        }
        let i = self.page_starts.partition_point(|&s| s <= offset);
        Some(i.max(1) as u32)
    }

    /// The OCR confidence of the page holding byte `offset`, when that page was read by OCR.
    pub fn ocr_confidence(&self, offset: usize) -> Option<f32> {
        let page = self.page_of(offset)?;
        self.ocr_pages
            .iter()
            .find(|p| p.page == page)
            .and_then(|p| p.confidence)
    }
}

/// The documents in a file of format `format`: for an e-mail or a mailbox, each message and
/// each attachment (see [`mail`]), the file's own first; for any other format, the file
/// itself. A whole-file problem is an `Err`; a part that cannot be read carries its own.
pub fn parts(bytes: &[u8], format: Format, limits: &Limits) -> Result<Vec<mail::Part>, Refusal> {
    if !format.is_container() {
        return Ok(vec![mail::Part {
            locator: String::new(),
            format,
            extracted: Ok(extract(bytes, format, limits)?),
        }]);
    }
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(Refusal::TooLarge {
            size: bytes.len() as u64,
            limit: limits.max_file_bytes,
        });
    }
    match format {
        Format::Zip => archive::parts(bytes, limits),
        Format::Msg => msg::parts(bytes, limits),
        _ => mail::parts(bytes, format, limits),
    }
}

/// Extracts the text of a document of format `format`.
pub fn extract(bytes: &[u8], format: Format, limits: &Limits) -> Result<Extracted, Refusal> {
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(Refusal::TooLarge {
            size: bytes.len() as u64,
            limit: limits.max_file_bytes,
        });
    }
    let mut out = match format {
        Format::Text | Format::Markdown => {
            let (text, encoding) = decode_text(bytes)?;
            let title = if format == Format::Markdown {
                text.lines()
                    .find_map(|l| l.strip_prefix("# ").map(|t| t.trim().to_string()))
            } else {
                None
            };
            Extracted {
                text,
                page_starts: Vec::new(),
                meta: DocMeta {
                    title,
                    encoding: Some(encoding),
                    ..DocMeta::default()
                },
                ocr_pages: Vec::new(),
            }
        }
        Format::Html => text::html(bytes)?,
        Format::Pdf => pdf::extract(bytes, limits)?,
        Format::Docx => docx::extract(bytes, limits)?,
        Format::Pptx => pptx::extract(bytes, limits)?,
        Format::Odt => odt::extract(bytes, limits)?,
        Format::Rtf => rtf::extract(bytes, limits)?,
        Format::Xlsx => sheet::extract(bytes, limits)?,
        Format::Xls => xls::extract(bytes, limits)?,
        Format::Ods => ods::extract(bytes, limits)?,
        Format::Png | Format::Jpeg | Format::Tiff | Format::Bmp | Format::Webp => {
            image::extract(bytes, format, limits)?
        }
        // The file's own document: its (first) message, or the archive's list of files.
        Format::Eml | Format::Mbox | Format::Msg | Format::Zip => parts(bytes, format, limits)?
            .into_iter()
            .next()
            .map(|p| p.extracted)
            .unwrap_or(Err(Refusal::Empty))?,
    };
    if out.text.trim().is_empty() {
        let skipped = out.ocr_pages.iter().find_map(|p| p.skipped.clone());
        return Err(match skipped {
            Some(detail) => Refusal::OcrFailed { detail },
            None if format == Format::Pdf && limits.ocr.is_none() => Refusal::NoTextLayer,
            None if format.is_image() => Refusal::OcrFailed {
                detail: "no text was found in the image".into(),
            },
            None => Refusal::Empty,
        });
    }
    if out
        .meta
        .title
        .as_deref()
        .is_some_and(|t| t.trim().is_empty())
    {
        out.meta.title = None;
    }
    Ok(out)
}
