//! Tesseract linked in-process: a page read from pixels, several pages read at once (an engine
//! each), and the errors for missing language data, a bad folder and a bad page.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bear_core::{ErrorKind, Ocr, PageImage};
use bear_models::TesseractOcr;

/// A white page with a black bar: no words, so an empty reading, not an error.
fn blank(width: u32, height: u32) -> Vec<u8> {
    let mut p = vec![255u8; (width * height) as usize];
    for y in 40..44 {
        for x in 20..(width - 20) {
            p[(y * width + x) as usize] = 0;
        }
    }
    p
}

#[test]
fn pages_are_read_on_several_threads_at_once() {
    let ocr = Arc::new(TesseractOcr::new("eng", None).unwrap());
    let pixels = blank(400, 100);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let page = PageImage {
                    width: 400,
                    height: 100,
                    dpi: 300,
                    pixels: &pixels,
                };
                let r = ocr
                    .recognize(&page, Instant::now() + Duration::from_secs(30))
                    .unwrap();
                assert!(r.text.trim().is_empty(), "{r:?}");
            });
        }
    });
    assert_eq!(ocr.languages(), "eng");
}

#[test]
fn missing_language_data_names_the_package_to_install() {
    let e = TesseractOcr::new("eng+xyz", None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let msg = e.to_string();
    assert!(
        msg.contains("tesseract-ocr-xyz") && msg.contains("rag.ocr_languages"),
        "{msg}"
    );
    let dir = tempfile::tempdir().unwrap();
    let e = TesseractOcr::new("eng", Some(dir.path())).unwrap_err();
    assert!(e.to_string().contains("eng.traineddata"), "{e}");
    let e = TesseractOcr::new("eng", Some(&dir.path().join("nope"))).unwrap_err();
    assert!(e.to_string().contains("rag.ocr_data_dir"), "{e}");
}

#[test]
fn a_page_whose_pixels_do_not_match_its_size_is_refused() {
    let ocr = TesseractOcr::new("eng", None).unwrap();
    let pixels = vec![255u8; 10];
    let page = PageImage {
        width: 400,
        height: 100,
        dpi: 300,
        pixels: &pixels,
    };
    let e = ocr
        .recognize(&page, Instant::now() + Duration::from_secs(5))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    // Out of time before it starts: a timeout, not a reading.
    let pixels = blank(400, 100);
    let page = PageImage {
        pixels: &pixels,
        ..page
    };
    let e = ocr.recognize(&page, Instant::now()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
}
