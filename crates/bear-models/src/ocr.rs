//! OCR with Tesseract 5, linked in-process through its C API (`tesseract-sys`).
//!
//! [`TesseractOcr`] implements bear-core's [`Ocr`]. Each call takes a loaded engine from a pool
//! (or loads one: a few hundred milliseconds for four languages), so pages read on several
//! threads at once each have their own and no page pays for loading twice. An engine runs on the
//! calling thread alone: Tesseract's OpenMP loops are turned off on it, which is faster here
//! and lets callers use one core per page.
//!
//! A page is read with automatic page segmentation (Tesseract finds and straightens skewed
//! lines itself). When that reads it badly (mean confidence under [`RETRY_BELOW`]), it is read
//! again with orientation and script detection, which turns pages scanned sideways or upside
//! down, and the better reading is kept.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use bear_core::{ErrorKind, Ocr, OcrPage, OcrWord, PageImage};
use tesseract_sys as sys;

use crate::error::{Error, Result};

/// Below this mean confidence a page is read again with orientation detection. Clean pages
/// read at 90 to 96 here; a line read upside down still scores about 71, a page 37.
pub const RETRY_BELOW: f32 = 80.0;

/// Where Debian and most distributions keep Tesseract's language data.
const SYSTEM_TESSDATA: [&str; 4] = [
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
];

/// Tesseract reading pages in the configured languages.
pub struct TesseractOcr {
    languages: String,
    data_dir: PathBuf,
    idle: Mutex<Vec<Engine>>,
}

impl std::fmt::Debug for TesseractOcr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TesseractOcr({} from {})",
            self.languages,
            self.data_dir.display()
        )
    }
}

impl TesseractOcr {
    /// An OCR engine for `languages` (`eng+nld`), with language data from `data_dir`, else
    /// `TESSDATA_PREFIX`, else the system's folder. Every language's data file must be there;
    /// one engine is loaded now, so a damaged file is an error here rather than on a page.
    pub fn new(languages: &str, data_dir: Option<&Path>) -> Result<Self> {
        let data_dir = find_data_dir(data_dir)?;
        for lang in languages.split('+').chain(["osd"]) {
            if !data_dir.join(format!("{lang}.traineddata")).is_file() {
                return Err(Error::NotFound(format!(
                    "OCR language `{lang}` is not installed: no {lang}.traineddata in {}; \
                     install it (Debian: apt install tesseract-ocr-{lang}) or change \
                     rag.ocr_languages",
                    data_dir.display()
                )));
            }
        }
        let ocr = Self {
            languages: languages.to_string(),
            data_dir,
            idle: Mutex::new(Vec::new()),
        };
        let first = ocr.load()?;
        ocr.put_back(first);
        Ok(ocr)
    }

    /// The folder the language data is read from.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn load(&self) -> Result<Engine> {
        Engine::load(&self.data_dir, &self.languages)
    }

    fn take(&self) -> Result<Engine> {
        let idle = self.idle.lock().map(|mut v| v.pop()).unwrap_or(None);
        match idle {
            Some(e) => Ok(e),
            None => self.load(),
        }
    }

    fn put_back(&self, engine: Engine) {
        if let Ok(mut v) = self.idle.lock() {
            v.push(engine);
        }
    }
}

impl Ocr for TesseractOcr {
    fn languages(&self) -> &str {
        &self.languages
    }

    fn recognize(&self, page: &PageImage<'_>, deadline: Instant) -> bear_core::Result<OcrPage> {
        check_page(page)?;
        crate::threads::apply(crate::threads::Mode::Serial);
        let mut engine = self.take().map_err(bear_core::Error::from)?;
        let first = engine.read(page, sys::TessPageSegMode_PSM_AUTO, deadline);
        let read = match first {
            Ok(p) if p.confidence < RETRY_BELOW => {
                match engine.read(page, sys::TessPageSegMode_PSM_AUTO_OSD, deadline) {
                    Ok(q) if q.confidence > p.confidence => Ok(q),
                    Ok(_) => Ok(p),
                    Err(e) => Err(e),
                }
            }
            other => other,
        };
        // An engine that failed is dropped: a fresh one is loaded for the next page.
        if read.is_ok() {
            engine.clear();
            self.put_back(engine);
        }
        read
    }
}

fn check_page(page: &PageImage<'_>) -> bear_core::Result<()> {
    let want = page.width as u64 * page.height as u64;
    let fits_c_int = page.width <= c_int::MAX as u32 && page.height <= c_int::MAX as u32;
    if page.width == 0 || page.height == 0 || want != page.pixels.len() as u64 || !fits_c_int {
        return Err(bear_core::Error::backend(
            ErrorKind::InvalidRequest,
            format!(
                "a {}x{} page needs {want} grey pixels, {} were given",
                page.width,
                page.height,
                page.pixels.len()
            ),
        ));
    }
    Ok(())
}

fn find_data_dir(configured: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = configured {
        return if dir.is_dir() {
            Ok(dir.to_path_buf())
        } else {
            Err(Error::NotFound(format!(
                "rag.ocr_data_dir {} is not a folder",
                dir.display()
            )))
        };
    }
    let from_env = std::env::var_os("TESSDATA_PREFIX").map(PathBuf::from);
    from_env
        .into_iter()
        .chain(SYSTEM_TESSDATA.iter().map(PathBuf::from))
        .find(|d| d.is_dir())
        .ok_or_else(|| {
            Error::NotFound(
                "Tesseract's language data was not found (TESSDATA_PREFIX, \
                 /usr/share/tesseract-ocr/5/tessdata); install tesseract-ocr-eng or set \
                 rag.ocr_data_dir"
                    .into(),
            )
        })
}

/// One loaded `TessBaseAPI`.
struct Engine(*mut sys::TessBaseAPI);

// SAFETY: a TessBaseAPI is used by one thread at a time (the pool hands it out whole and takes
// it back), which is all Tesseract requires.
unsafe impl Send for Engine {}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: the handle came from TessBaseAPICreate and is deleted once, here.
        unsafe { sys::TessBaseAPIDelete(self.0) }
    }
}

impl Engine {
    fn load(data_dir: &Path, languages: &str) -> Result<Self> {
        let fail = |reason: &str| Error::Backend {
            backend: "tesseract",
            reason: reason.to_string(),
        };
        let dir = CString::new(data_dir.as_os_str().as_encoded_bytes())
            .map_err(|_| fail("the language data folder's name holds a NUL byte"))?;
        let langs = CString::new(languages).map_err(|_| fail("a language name holds NUL"))?;
        // SAFETY: TessBaseAPICreate has no preconditions; a null result is handled.
        let handle = unsafe { sys::TessBaseAPICreate() };
        if handle.is_null() {
            return Err(fail("could not create an engine"));
        }
        let engine = Self(handle);
        // Tesseract's notices ("Estimating resolution as ...") would go to stderr.
        engine.set("debug_file", "/dev/null");
        // SAFETY: valid handle and NUL-terminated strings that outlive the call.
        let rc = unsafe {
            sys::TessBaseAPIInit2(
                engine.0,
                dir.as_ptr(),
                langs.as_ptr(),
                sys::TessOcrEngineMode_OEM_DEFAULT,
            )
        };
        if rc != 0 {
            return Err(fail(&format!(
                "could not load the language data for {languages} from {}",
                data_dir.display()
            )));
        }
        Ok(engine)
    }

    fn set(&self, name: &str, value: &str) {
        let (Ok(n), Ok(v)) = (CString::new(name), CString::new(value)) else {
            return;
        };
        // SAFETY: valid handle and NUL-terminated strings that outlive the call.
        unsafe { sys::TessBaseAPISetVariable(self.0, n.as_ptr(), v.as_ptr()) };
    }

    /// Reads `page` in segmentation mode `psm`, giving up at `deadline`.
    fn read(
        &mut self,
        page: &PageImage<'_>,
        psm: sys::TessPageSegMode,
        deadline: Instant,
    ) -> bear_core::Result<OcrPage> {
        let msecs = deadline
            .saturating_duration_since(Instant::now())
            .as_millis();
        if msecs == 0 {
            return Err(timeout());
        }
        // SAFETY: valid handle; the pixels are width * height bytes (checked by check_page)
        // and outlive the recognition below, which is the last use of the image.
        unsafe {
            sys::TessBaseAPISetPageSegMode(self.0, psm);
            sys::TessBaseAPISetImage(
                self.0,
                page.pixels.as_ptr(),
                page.width as c_int,
                page.height as c_int,
                1,
                page.width as c_int,
            );
            if page.dpi > 0 {
                sys::TessBaseAPISetSourceResolution(self.0, page.dpi.min(2400) as c_int);
            }
        }
        let monitor = Monitor::new(msecs.min(i32::MAX as u128) as c_int)?;
        // SAFETY: valid handle and monitor; the image set above is alive.
        let rc = unsafe { sys::TessBaseAPIRecognize(self.0, monitor.0) };
        if Instant::now() >= deadline {
            return Err(timeout());
        }
        if rc != 0 {
            return Err(bear_core::Error::backend(
                ErrorKind::Internal,
                "tesseract could not read the page",
            ));
        }
        // SAFETY: valid handle after a successful recognition.
        let text = self.owned(|api| unsafe { sys::TessBaseAPIGetUTF8Text(api) });
        // SAFETY: valid handle after a successful recognition; page 0 is the one read.
        let tsv = self.owned(|api| unsafe { sys::TessBaseAPIGetTsvText(api, 0) });
        Ok(OcrPage {
            text,
            // SAFETY: valid handle after a successful recognition.
            confidence: unsafe { sys::TessBaseAPIMeanTextConf(self.0) }.clamp(0, 100) as f32,
            words: words_of(&tsv),
        })
    }

    /// The string `get` returns for this engine, copied, then freed with TessDeleteText.
    fn owned(&mut self, get: impl FnOnce(*mut sys::TessBaseAPI) -> *mut c_char) -> String {
        let ptr = get(self.0);
        if ptr.is_null() {
            return String::new();
        }
        // SAFETY: a NUL-terminated string Tesseract allocated; freed once, after the copy.
        unsafe {
            let text = CStr::from_ptr(ptr).to_string_lossy().into_owned();
            sys::TessDeleteText(ptr);
            text
        }
    }

    /// Forgets the last page (its image and results), keeping the loaded languages.
    fn clear(&mut self) {
        // SAFETY: valid handle.
        unsafe { sys::TessBaseAPIClear(self.0) }
    }
}

/// The words of Tesseract's TSV output (level 5 rows: block, paragraph, line, word, box,
/// confidence, text), their lines numbered over the page.
fn words_of(tsv: &str) -> Vec<OcrWord> {
    let mut words = Vec::new();
    let mut last_line = None;
    let mut line = 0u32;
    for row in tsv.lines() {
        let f: Vec<&str> = row.split('\t').collect();
        if f.len() < 12 || f[0] != "5" || f[11].trim().is_empty() {
            continue;
        }
        let n = |i: usize| f[i].parse::<u32>().unwrap_or(0);
        let key = (n(2), n(3), n(4));
        if last_line.is_some_and(|k| k != key) {
            line += 1;
        }
        last_line = Some(key);
        words.push(OcrWord {
            text: f[11].to_string(),
            left: n(6),
            top: n(7),
            width: n(8),
            height: n(9),
            line,
        });
    }
    words
}

fn timeout() -> bear_core::Error {
    bear_core::Error::backend(
        ErrorKind::Timeout,
        "the page took longer than rag.ocr_page_timeout_secs to read",
    )
}

/// Tesseract's progress monitor, used for its deadline.
struct Monitor(*mut sys::ETEXT_DESC);

impl Monitor {
    fn new(msecs: c_int) -> bear_core::Result<Self> {
        // SAFETY: TessMonitorCreate has no preconditions; a null result is handled.
        let m = unsafe { sys::TessMonitorCreate() };
        if m.is_null() {
            return Err(bear_core::Error::backend(
                ErrorKind::Internal,
                "tesseract could not create a monitor",
            ));
        }
        // SAFETY: valid monitor.
        unsafe { sys::TessMonitorSetDeadlineMSecs(m, msecs) };
        Ok(Self(m))
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        // SAFETY: created by TessMonitorCreate, deleted once, after the recognition using it.
        unsafe { sys::TessMonitorDelete(self.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_word_rows_become_words_numbered_by_line() {
        let tsv = "1\t1\t0\t0\t0\t0\t0\t0\t640\t480\t-1\t\n\
                   5\t1\t1\t1\t1\t1\t10\t20\t30\t12\t96\tHello\n\
                   5\t1\t1\t1\t1\t2\t45\t20\t40\t12\t95\tworld\n\
                   5\t1\t1\t1\t1\t3\t90\t20\t40\t12\t95\t \n\
                   5\t1\t1\t1\t2\t1\t10\t40\t30\t12\t91\tNext\n\
                   5\t1\t2\t1\t1\t1\t10\t80\t30\t12\t90\tblock\n";
        let w = words_of(tsv);
        let summary: Vec<(&str, u32, u32)> = w
            .iter()
            .map(|w| (w.text.as_str(), w.left, w.line))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("Hello", 10, 0),
                ("world", 45, 0),
                ("Next", 10, 1),
                ("block", 10, 2)
            ]
        );
        assert_eq!((w[1].top, w[1].width, w[1].height), (20, 40, 12));
        assert!(words_of("garbage\n5\tx").is_empty());
    }
}
