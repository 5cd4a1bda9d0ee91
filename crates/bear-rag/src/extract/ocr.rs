//! Reading page images by OCR: pages from image files or rendered PDF pages go to the
//! configured [`Ocr`] engine on worker threads (one page per core at a time), and come back in
//! page order with their confidence, or skipped with a reason.
//!
//! The caller produces the page images one at a time (decoding or rendering), so at most a page
//! per worker plus one is in memory however long the scan. While pages are being read the
//! document's clock ([`OcrClock`]) stands still: OCR is limited per page instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bear_core::{ErrorKind, Ocr, PageImage};
use serde::{Deserialize, Serialize};

/// How scans are read: the engine and its limits. Cloned into each document's [`super::Limits`].
#[derive(Clone)]
pub struct OcrSetup {
    /// The engine.
    pub engine: Arc<dyn Ocr>,
    /// Time allowed per page.
    pub page_timeout: Duration,
    /// Pages read at once.
    pub threads: usize,
    /// Time spent reading pages, which extends the document's deadline.
    pub clock: Arc<OcrClock>,
    /// Called after each page with (pages done, pages to read).
    pub progress: Option<Arc<dyn Fn(usize, usize) + Send + Sync>>,
}

impl std::fmt::Debug for OcrSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcrSetup")
            .field("languages", &self.engine.languages())
            .field("page_timeout", &self.page_timeout)
            .field("threads", &self.threads)
            .finish()
    }
}

impl OcrSetup {
    /// A setup for `engine` with the `[rag]` limits of `config`.
    pub fn new(engine: Arc<dyn Ocr>, config: &bear_core::RagConfig) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            engine,
            page_timeout: Duration::from_secs(config.ocr_page_timeout_secs),
            threads: cores.clamp(1, 8),
            clock: Arc::new(OcrClock::new()),
            progress: None,
        }
    }

    /// This setup with a clock of its own, for one file.
    pub fn for_one_file(&self) -> Self {
        Self {
            clock: Arc::new(OcrClock::new()),
            ..self.clone()
        }
    }
}

/// Time spent reading pages by OCR, counting the reading under way.
#[derive(Debug)]
pub struct OcrClock {
    base: Instant,
    spent_ms: AtomicU64,
    /// Milliseconds after `base` when the reading under way began, plus one; 0 when none is.
    since_ms: AtomicU64,
}

impl OcrClock {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            spent_ms: AtomicU64::new(0),
            since_ms: AtomicU64::new(0),
        }
    }

    /// Time spent so far.
    pub fn spent(&self) -> Duration {
        let done = Duration::from_millis(self.spent_ms.load(Ordering::Acquire));
        match self.since_ms.load(Ordering::Acquire) {
            0 => done,
            since => {
                done + self
                    .base
                    .elapsed()
                    .saturating_sub(Duration::from_millis(since - 1))
            }
        }
    }

    fn start(&self) {
        let now = self.base.elapsed().as_millis() as u64;
        self.since_ms.store(now + 1, Ordering::Release);
    }

    fn stop(&self) {
        let since = self.since_ms.swap(0, Ordering::AcqRel);
        if since > 0 {
            let ran = (self.base.elapsed().as_millis() as u64).saturating_sub(since - 1);
            self.spent_ms.fetch_add(ran, Ordering::AcqRel);
        }
    }
}

/// One page image to read: 8-bit grey, row after row.
pub(crate) struct GreyPage {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) dpi: u32,
    pub(crate) pixels: Vec<u8>,
}

/// What OCR made of one page of a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OcrPageInfo {
    /// The page (1-based).
    pub page: u32,
    /// The engine's mean word confidence (0-100), when the page was read.
    pub confidence: Option<f32>,
    /// Whether the confidence is under [`bear_core::LOW_OCR_CONFIDENCE`].
    pub low_confidence: bool,
    /// Why the page was not read, when it was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// A page's OCR text and what is known about it.
pub(super) struct PageRead {
    pub(super) text: String,
    pub(super) info: OcrPageInfo,
}

/// Reads the pages `pages` yields, `(page number, image or why there is none)`, `total` of
/// them. Returns one result per page, in page order.
pub(super) fn read_pages(
    setup: &OcrSetup,
    pages: impl Iterator<Item = (u32, Result<GreyPage, String>)>,
    total: usize,
) -> Vec<PageRead> {
    setup.clock.start();
    let workers = setup.threads.clamp(1, total.max(1));
    let (tx, rx) = sync_channel::<(u32, GreyPage)>(workers);
    let rx = Mutex::new(rx);
    let done = Mutex::new(Vec::with_capacity(total));
    std::thread::scope(|s| {
        for _ in 0..workers {
            let rx = &rx;
            let done = &done;
            let spawned = std::thread::Builder::new()
                .name("bear-ocr".into())
                .stack_size(32 << 20)
                .spawn_scoped(s, move || {
                    Worker {
                        setup,
                        rx,
                        done,
                        total,
                    }
                    .run()
                });
            if spawned.is_err() {
                break;
            }
        }
        for (n, page) in pages {
            match page {
                Ok(p) => {
                    if tx.send((n, p)).is_err() {
                        break;
                    }
                }
                Err(why) => push(&done, skipped(n, why), setup, total),
            }
        }
        drop(tx);
    });
    setup.clock.stop();
    let mut out = done.into_inner().unwrap_or_default();
    out.sort_by_key(|p| p.info.page);
    out
}

fn skipped(page: u32, why: String) -> PageRead {
    PageRead {
        text: String::new(),
        info: OcrPageInfo {
            page,
            confidence: None,
            low_confidence: false,
            skipped: Some(why),
        },
    }
}

fn push(done: &Mutex<Vec<PageRead>>, read: PageRead, setup: &OcrSetup, total: usize) {
    let n = match done.lock() {
        Ok(mut v) => {
            v.push(read);
            v.len()
        }
        Err(_) => return,
    };
    if let Some(progress) = &setup.progress {
        progress(n, total);
    }
}

/// One OCR thread: takes pages until the producer is done.
struct Worker<'a> {
    setup: &'a OcrSetup,
    rx: &'a Mutex<Receiver<(u32, GreyPage)>>,
    done: &'a Mutex<Vec<PageRead>>,
    total: usize,
}

impl Worker<'_> {
    fn run(self) {
        loop {
            let next = match self.rx.lock() {
                Ok(rx) => rx.recv(),
                Err(_) => return,
            };
            let Ok((n, page)) = next else { return };
            let read = self.read(n, &page);
            drop(page);
            push(self.done, read, self.setup, self.total);
        }
    }

    fn read(&self, n: u32, page: &GreyPage) -> PageRead {
        let image = PageImage {
            width: page.width,
            height: page.height,
            dpi: page.dpi,
            pixels: &page.pixels,
        };
        let deadline = Instant::now() + self.setup.page_timeout;
        let engine = &self.setup.engine;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            engine.recognize(&image, deadline)
        }));
        match result {
            Ok(Ok(r)) => PageRead {
                info: OcrPageInfo {
                    page: n,
                    confidence: Some(r.confidence),
                    low_confidence: r.confidence < bear_core::LOW_OCR_CONFIDENCE,
                    skipped: None,
                },
                text: r.text,
            },
            Ok(Err(e)) if e.kind() == ErrorKind::Timeout => skipped(
                n,
                format!(
                    "OCR took longer than {} s (rag.ocr_page_timeout_secs)",
                    self.setup.page_timeout.as_secs()
                ),
            ),
            Ok(Err(e)) => skipped(n, format!("OCR failed: {e}")),
            Err(_) => skipped(n, "OCR failed unexpectedly".into()),
        }
    }
}

/// 8-bit grey from interleaved 8-bit samples, `channels` per pixel: grey (1), grey and alpha
/// (2), RGB (3), RGBA (4, alpha ignored: pages are opaque).
pub(super) fn grey_from(samples: &[u8], channels: usize) -> Vec<u8> {
    match channels {
        1 => samples.to_vec(),
        2 => samples.chunks_exact(2).map(|p| p[0]).collect(),
        _ => samples
            .chunks_exact(channels)
            .map(|p| ((p[0] as u32 * 77 + p[1] as u32 * 150 + p[2] as u32 * 29) >> 8) as u8)
            .collect(),
    }
}

/// Whether a page's text layer is too thin to stand for the page: fewer than 16 letters and
/// digits, or mostly characters that are neither (a font without a Unicode map).
pub(crate) fn layer_unusable(text: &str) -> bool {
    let mut alnum = 0usize;
    let mut other = 0usize;
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        if c.is_alphanumeric() {
            alnum += 1;
        } else if !c.is_ascii_punctuation() {
            other += 1;
        }
    }
    alnum < 16 || other > alnum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thin_and_garbled_layers_are_unusable() {
        assert!(layer_unusable(""));
        assert!(layer_unusable("  Page 3  "));
        assert!(layer_unusable(
            "\u{fffd}\u{fffd}\u{fffd} \u{fffd}\u{fffd}\u{fffd}\u{fffd} ab"
        ));
        assert!(!layer_unusable("The tenant pays EUR 4,250 per month."));
    }

    #[test]
    fn grey_conversions() {
        assert_eq!(grey_from(&[10, 20], 1), vec![10, 20]);
        assert_eq!(grey_from(&[10, 255, 20, 0], 2), vec![10, 20]);
        assert_eq!(grey_from(&[255, 255, 255, 0, 0, 0], 3), vec![255, 0]);
    }
}
