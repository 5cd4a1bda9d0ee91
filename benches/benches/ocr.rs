//! OCR accuracy and speed: BEAR (Tesseract in-process, one page per core, engines kept
//! loaded) against the `tesseract` command-line tool from the same Debian package run one page
//! at a time, on the same 300-dpi page images.
//!
//! The pages are generated here with known text: a PDF page of Helvetica lines rendered by
//! hayro at 300 dpi, in four sets of six pages: English and Dutch clean, English upside down,
//! Dutch skewed by 1.5 degrees with salt-and-pepper noise. The CLI reads each page's PNG;
//! BEAR reads the same PNGs (for accuracy: the same page images), and one scanned PDF holding
//! those images (timed: its real path for scans, render, then OCR).
//! Rounds alternate (CLI, BEAR, CLI, BEAR) so this machine's drift falls on both.
//!
//! It also writes a 200-page scanned PDF for `cargo xtask bench ocr`, which ingests it with
//! `bear` and records the peak RSS. No Criterion: results go to `<target>/bench-ocr.json`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use bear_core::{Ocr, RagConfig};
use bear_rag::extract::{Extracted, Format, Limits, OcrSetup, extract};
use lopdf::content::{Content, Operation};
use lopdf::{Document, Object, Stream, dictionary};

const PAGES_PER_SET: usize = 6;
const ROUNDS: usize = 2;
const LANGS: &str = "eng+nld+deu+fra";
const SCAN_PAGES: usize = 200;

const ENGLISH: &[&str] = &[
    "The tenant shall pay a monthly rent of EUR 4,250 on the first day of each month.",
    "Either party may terminate this agreement by giving three months written notice.",
    "The lender advances a principal sum of EUR 250,000 at an interest rate of 4.5 percent.",
    "All disputes arising out of this contract are submitted to the court of Amsterdam.",
    "The supplier warrants that the goods conform to the specifications in Schedule 2.",
    "Confidential information shall not be disclosed for a period of five years.",
    "The buyer shall inspect the delivery within ten working days of its arrival.",
    "This agreement is governed by the laws of the Netherlands and signed in duplicate.",
];

const DUTCH: &[&str] = &[
    "De huurder betaalt maandelijks een huurprijs van EUR 1.250 voor de bedrijfsruimte.",
    "Partijen kunnen deze overeenkomst opzeggen met een termijn van drie maanden.",
    "Geschillen worden voorgelegd aan de bevoegde rechter te Rotterdam.",
    "De verkoper staat ervoor in dat de zaak de eigenschappen bezit die nodig zijn.",
    "De geheimhoudingsplicht blijft gedurende vijf jaar na het einde van kracht.",
    "Betaling geschiedt binnen dertig dagen na ontvangst van de factuur.",
    "De koper is verplicht de geleverde zaken binnen acht dagen te onderzoeken.",
    "Op deze overeenkomst is uitsluitend Nederlands recht van toepassing.",
];

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// One generated page: its grey pixels (2480 x 3508, A4 at 300 dpi) and the text on it.
struct Page {
    set: &'static str,
    truth: String,
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

/// Lines of page `n` from `sentences`, wrapped at 70 characters.
fn lines(sentences: &[&str], n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..12 {
        let s = sentences[(n * 5 + i) % sentences.len()];
        let mut line = String::new();
        for w in s.split(' ') {
            if line.len() + w.len() > 70 {
                out.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(w);
        }
        out.push(line);
    }
    out
}

/// A one-page PDF with `lines` in 12-point Helvetica, turned by `degrees`.
fn text_pdf(lines: &[String], degrees: f32) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
    });
    let (s, c) = degrees.to_radians().sin_cos();
    let mut ops = vec![
        Operation::new("BT", vec![]),
        Operation::new("Tf", vec!["F1".into(), 12.into()]),
    ];
    for (i, l) in lines.iter().enumerate() {
        let y = 760.0 - 20.0 * i as f32;
        ops.push(Operation::new(
            "Tm",
            vec![
                c.into(),
                s.into(),
                (-s).into(),
                c.into(),
                60.into(),
                y.into(),
            ],
        ));
        ops.push(Operation::new(
            "Tj",
            vec![Object::string_literal(l.as_str())],
        ));
    }
    ops.push(Operation::new("ET", vec![]));
    let content = doc.add_object(Stream::new(
        dictionary! {},
        Content { operations: ops }.encode().expect("content"),
    ));
    let page = doc.add_object(dictionary! {
        "Type" => "Page", "Parent" => pages_id, "Contents" => content,
        "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        "Resources" => dictionary! { "Font" => dictionary! { "F1" => font } },
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1,
        }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("save");
    out
}

/// Renders a one-page PDF at 300 dpi to grey.
fn render(pdf: &[u8]) -> (u32, u32, Vec<u8>) {
    let pdf = hayro::hayro_syntax::Pdf::new(pdf.to_vec()).expect("pdf");
    let page = &pdf.pages()[0];
    let scale = 300.0 / 72.0;
    let pix = hayro::render(
        page,
        &hayro::RenderCache::new(),
        &hayro::hayro_interpret::InterpreterSettings::default(),
        &hayro::RenderSettings::default(),
        &hayro::PixmapSettings {
            x_scale: scale,
            y_scale: scale,
            bg_color: hayro::vello_cpu::color::palette::css::WHITE,
        },
    );
    let grey = pix
        .data()
        .iter()
        .map(|p| ((p.r as u32 * 77 + p.g as u32 * 150 + p.b as u32 * 29) >> 8) as u8)
        .collect();
    (pix.width() as u32, pix.height() as u32, grey)
}

/// Salt and pepper: one pixel in `every` set black or white, deterministically.
fn noise(pixels: &mut [u8], every: usize) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..pixels.len() / every {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = (x as usize) % pixels.len();
        pixels[at] = if i % 2 == 0 { 0 } else { 255 };
    }
}

fn pages() -> Vec<Page> {
    let mut out = Vec::new();
    for (set, sentences, degrees, upside_down, noisy) in [
        ("English, clean", ENGLISH, 0.0, false, false),
        ("Dutch, clean", DUTCH, 0.0, false, false),
        ("English, upside down", ENGLISH, 0.0, true, false),
        ("Dutch, skewed 1.5° and noisy", DUTCH, 1.5, false, true),
    ] {
        for n in 0..PAGES_PER_SET {
            let l = lines(sentences, n + out.len());
            let (width, height, mut pixels) = render(&text_pdf(&l, degrees));
            if upside_down {
                pixels.reverse();
            }
            if noisy {
                noise(&mut pixels, 200);
            }
            out.push(Page {
                set,
                truth: l.join("\n"),
                width,
                height,
                pixels,
            });
        }
    }
    out
}

/// 1 bit per pixel (rows padded to whole bytes, 1 white), thresholded at half grey.
fn bilevel(p: &Page) -> Vec<u8> {
    let w = p.width as usize;
    let mut out = vec![0u8; w.div_ceil(8) * p.height as usize];
    for (y, row) in p.pixels.chunks(w).enumerate() {
        for (x, &v) in row.iter().enumerate() {
            if v >= 128 {
                out[y * w.div_ceil(8) + x / 8] |= 0x80 >> (x % 8);
            }
        }
    }
    out
}

/// A PDF whose pages are the given grey images at 300 dpi (8-bit, or 1-bit when `bits` is
/// 1, as most scanners write), Flate-compressed.
fn scanned_pdf<'a>(images: impl Iterator<Item = &'a Page>, bits: i64) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let mut kids: Vec<Object> = Vec::new();
    for p in images {
        // The page is the image's size at 300 dpi, as a scanner (or img2pdf) writes it.
        let (w, h) = (
            p.width as f32 * 72.0 / 300.0,
            p.height as f32 * 72.0 / 300.0,
        );
        let mut image = Stream::new(
            dictionary! {
                "Type" => "XObject", "Subtype" => "Image", "Width" => p.width as i64,
                "Height" => p.height as i64, "ColorSpace" => "DeviceGray", "BitsPerComponent" => bits,
            },
            if bits == 1 {
                bilevel(p)
            } else {
                p.pixels.clone()
            },
        );
        image.compress().expect("flate");
        let image = doc.add_object(image);
        let content = Content {
            operations: vec![
                Operation::new("q", vec![]),
                Operation::new(
                    "cm",
                    vec![w.into(), 0.into(), 0.into(), h.into(), 0.into(), 0.into()],
                ),
                Operation::new("Do", vec!["Im0".into()]),
                Operation::new("Q", vec![]),
            ],
        };
        let content = doc.add_object(Stream::new(
            dictionary! {},
            content.encode().expect("content"),
        ));
        let page = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => content,
            "MediaBox" => vec![0.into(), 0.into(), w.into(), h.into()],
            "Resources" => dictionary! { "XObject" => dictionary! { "Im0" => image } },
        });
        kids.push(page.into());
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => kids, "Count" => count,
        }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("save");
    out
}

fn normal(s: &str) -> Vec<char> {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .collect()
}

/// Character errors (edit distance) of `read` against `truth`, and the truth's length.
fn errors(read: &str, truth: &str) -> (usize, usize) {
    let (r, t) = (normal(read), normal(truth));
    (strsim::generic_levenshtein(&r, &t), t.len())
}

/// The CLI on pages `range`, one after another: (seconds, text per page).
fn cli(dir: &Path, range: std::ops::Range<usize>) -> (f64, Vec<String>) {
    let t = Instant::now();
    let texts = range
        .map(|i| {
            let out = Command::new("tesseract")
                .arg(dir.join(format!("page-{i:02}.png")))
                .args(["stdout", "-l", LANGS])
                .output()
                .expect("run tesseract (Debian: tesseract-ocr)");
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect();
    (t.elapsed().as_secs_f64(), texts)
}

/// BEAR on the scanned PDF: (seconds, text per page).
fn bear(pdf: &[u8], engine: &Arc<dyn Ocr>) -> (f64, Vec<String>) {
    let config = RagConfig::default();
    let mut limits = Limits::from_config(&config);
    limits.max_file_bytes = u64::MAX;
    limits.ocr = Some(OcrSetup::new(engine.clone(), &config));
    let t = Instant::now();
    let e = extract(pdf, Format::Pdf, &limits).expect("BEAR reads the scan");
    (t.elapsed().as_secs_f64(), page_texts(&e))
}

/// BEAR on the page images themselves, as `bear ingest` reads a PNG: the text per page.
fn bear_images(dir: &Path, range: std::ops::Range<usize>, engine: &Arc<dyn Ocr>) -> Vec<String> {
    let config = RagConfig::default();
    let mut limits = Limits::from_config(&config);
    limits.ocr = Some(OcrSetup::new(engine.clone(), &config));
    range
        .map(|i| {
            let png = std::fs::read(dir.join(format!("page-{i:02}.png"))).expect("png");
            extract(&png, Format::Png, &limits)
                .map(|e| e.text)
                .unwrap_or_default()
        })
        .collect()
}

fn page_texts(e: &Extracted) -> Vec<String> {
    (0..e.page_starts.len())
        .map(|i| {
            let end = e.page_starts.get(i + 1).copied().unwrap_or(e.text.len());
            e.text[e.page_starts[i]..end].to_string()
        })
        .collect()
}

fn main() {
    let pages = pages();
    let dir = tempfile::tempdir().expect("tmp");
    for (i, p) in pages.iter().enumerate() {
        image::GrayImage::from_raw(p.width, p.height, p.pixels.clone())
            .expect("image")
            .save(dir.path().join(format!("page-{i:02}.png")))
            .expect("png");
    }
    let engine: Arc<dyn Ocr> =
        Arc::new(bear_models::TesseractOcr::new(LANGS, None).expect("tesseract-ocr-* installed"));
    // Per set, per round: the CLI on its pages, then BEAR on a PDF of the same images.
    let mut sets = serde_json::Map::new();
    let (mut cli_total, mut bear_total) = (vec![0.0; ROUNDS], vec![0.0; ROUNDS]);
    for (k, set) in pages.chunks(PAGES_PER_SET).enumerate() {
        let range = k * PAGES_PER_SET..(k + 1) * PAGES_PER_SET;
        let pdf = scanned_pdf(set.iter(), 8);
        let (mut cli_s, mut bear_s) = (Vec::new(), Vec::new());
        let (mut cli_text, mut bear_text) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let (s, t) = cli(dir.path(), range.clone());
            cli_s.push(s);
            cli_total[round] += s;
            cli_text = t;
            let (s, t) = bear(&pdf, &engine);
            bear_s.push(s);
            bear_total[round] += s;
            bear_text = t;
        }
        let png_text = bear_images(dir.path(), range.clone(), &engine);
        let cer = |texts: &[String]| {
            let (mut e, mut n) = (0, 0);
            for (text, page) in texts.iter().zip(set) {
                let (de, dn) = errors(text, &page.truth);
                e += de;
                n += dn;
            }
            e as f64 / n as f64
        };
        let per_s = |s: &[f64]| s.iter().map(|s| set.len() as f64 / s).collect::<Vec<_>>();
        sets.insert(
            set[0].set.to_string(),
            serde_json::json!({
                "bear_cer": cer(&bear_text),
                "bear_png_cer": cer(&png_text),
                "cli_cer": cer(&cli_text),
                "bear_pages_per_s": per_s(&bear_s),
                "cli_pages_per_s": per_s(&cli_s),
            }),
        );
    }
    let n = pages.len() as f64;
    let ratios: Vec<f64> = cli_total
        .iter()
        .zip(&bear_total)
        .map(|(c, b)| c / b)
        .collect();
    let (cli_s, bear_s) = (cli_total, bear_total);
    // The 200-page scan for the RSS measurement: the 24 pages over and over.
    let scan = scanned_pdf(pages.iter().cycle().take(SCAN_PAGES), 1);
    let scan_path = target_dir().join("bench-ocr-200.pdf");
    std::fs::write(&scan_path, &scan).expect("write the 200-page scan");
    let report = serde_json::json!({
        "pages": pages.len(),
        "languages": LANGS,
        "sets": sets,
        "cli_s": cli_s,
        "bear_s": bear_s,
        "cli_pages_per_s": cli_s.iter().map(|s| n / s).collect::<Vec<_>>(),
        "bear_pages_per_s": bear_s.iter().map(|s| n / s).collect::<Vec<_>>(),
        "speed_ratios": ratios,
        "scan_pdf": scan_path,
        "scan_pages": SCAN_PAGES,
        "scan_bytes": scan.len(),
    });
    println!("{report:#}");
    std::fs::write(target_dir().join("bench-ocr.json"), report.to_string()).expect("write");
}
