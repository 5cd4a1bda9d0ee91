//! Redacted copies, checked the way the other side would look for what was removed: poppler's
//! `pdftotext`, `pdfinfo` and `pdfdetach`, every PDF stream decompressed, every DOCX part's
//! XML. The fixtures (`tests/fixtures/make_redact.py`) hide the values in every place a file
//! can hold text.

use std::io::Read;
use std::process::Command;

use crate::fixture_bytes as fixture;
use crate::test_limits as limits;
use bear_core::{DenyList, PiiConfig};
use bear_rag::extract::{Format, Refusal};
use bear_rag::redact::{LABEL, Mark, Marker, Redacted, Style, redact};
use bear_security::Detector;
use lopdf::content::{Content, Operation};
use lopdf::{Document, Object, Stream, dictionary};

const NAME: &str = "Jan de Vries";
const EMAIL: &str = "jan.devries@example.nl";
const IBAN: &str = "NL91 ABNA 0417 1643 00";
const PHONE: &str = "+31 6 12345678";
const TERM: &str = "Project Falcon";
const KEPT: &str = "The parties agree to settle the claim for EUR 12,000 within thirty days.";

/// The values, in the forms a leak could take (the IBAN also without its spaces).
fn values() -> Vec<String> {
    let mut v: Vec<String> = [NAME, EMAIL, IBAN, PHONE, TERM]
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    v.push(IBAN.replace(' ', "").to_lowercase());
    v.push("devries".into());
    v
}

/// The real detector, with the project and the client's name as listed terms (a name without
/// a title or context is not something the detector claims to find on its own).
struct Pii(Detector);

impl Pii {
    fn new() -> Self {
        let config = PiiConfig {
            deny_lists: vec![DenyList {
                name: "TERM".into(),
                terms: vec![TERM.into(), NAME.into()],
            }],
            ..PiiConfig::default()
        };
        Self(Detector::new(&config).unwrap())
    }
}

impl Marker for Pii {
    fn mark(&self, text: &str) -> Vec<Mark> {
        self.0
            .detect(text)
            .into_iter()
            .map(|f| Mark {
                start: f.start,
                end: f.end,
                kind: f.entity.name().into_owned(),
            })
            .collect()
    }
}

fn poppler(tool: &str, args: &[&str], pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = Command::new(tool)
        .args(args)
        .arg(&path)
        .args(if tool == "pdftotext" {
            &["-"][..]
        } else {
            &[][..]
        })
        .output()
        .unwrap_or_else(|e| panic!("{tool} (Debian poppler-utils, .ci/setup installs it): {e}"));
    assert!(
        out.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every stream of a PDF, decompressed where lopdf can, and the raw bytes, lower-cased.
fn all_pdf_bytes(pdf: &[u8]) -> String {
    let doc = Document::load_mem(pdf).unwrap();
    let mut all = String::from_utf8_lossy(pdf).to_lowercase();
    for o in doc.objects.values() {
        if let Object::Stream(s) = o {
            let data = s
                .decompressed_content()
                .unwrap_or_else(|_| s.content.clone());
            all.push_str(&String::from_utf8_lossy(&data).to_lowercase());
        }
    }
    all
}

fn assert_none_left(haystack: &str, what: &str) {
    let h = haystack.to_lowercase();
    for v in values() {
        assert!(!h.contains(&v), "{what} still holds `{v}`");
    }
}

fn redact_letter_pdf(style: Style) -> Redacted {
    redact(
        &fixture("letter.pdf"),
        Format::Pdf,
        &Pii::new(),
        style,
        &limits(),
    )
    .unwrap()
}

#[test]
fn a_redacted_pdf_holds_none_of_the_values_anywhere_and_keeps_the_rest() {
    let original = fixture("letter.pdf");
    let before = poppler("pdftotext", &[], &original);
    assert!(
        before.contains(EMAIL) && before.contains(NAME),
        "the fixture holds the values"
    );
    assert!(poppler("pdfdetach", &["-list"], &original).contains("1 embedded files"));

    let out = redact_letter_pdf(Style::Box);
    let text = poppler("pdftotext", &[], &out.bytes);
    assert_none_left(&text, "pdftotext's text");
    assert_eq!(
        text.matches(KEPT).count(),
        2,
        "the rest of the text is intact: {text}"
    );
    assert!(text.contains("Settlement agreement") && text.contains("Bank account:"));
    assert!(
        text.contains("in Utrecht."),
        "page two keeps its other words"
    );
    assert_none_left(&all_pdf_bytes(&out.bytes), "a stream of the file");
    let info = poppler("pdfinfo", &[], &out.bytes);
    assert!(
        !info.contains("Title:") && !info.contains("Author:"),
        "{info}"
    );
    assert!(info.contains("Pages:           2"), "{info}");
    assert!(poppler("pdfdetach", &["-list"], &out.bytes).contains("0 embedded files"));

    let kinds: Vec<(&str, Option<u32>)> =
        out.log.iter().map(|e| (e.kind.as_str(), e.page)).collect();
    for want in [
        ("EMAIL", Some(1)),
        ("IBAN", Some(1)),
        ("TERM", Some(1)),
        ("TERM", Some(2)),
    ] {
        assert!(kinds.contains(&want), "{want:?} in the log {:?}", out.log);
    }
    for what in ["metadata", "attachments", "annotations", "bookmarks"] {
        assert!(
            out.stripped.iter().any(|s| s == what),
            "{what} in {:?}",
            out.stripped
        );
    }
}

/// A searchable scan: a grey picture drawn on the page with the text layer over it. The
/// pixels under the e-mail's box are filled, the rest of the picture stays grey.
#[test]
fn an_image_under_a_value_is_masked_in_its_pixels() {
    let mut doc = Document::with_version("1.5");
    let font = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
        "Encoding" => "WinAnsiEncoding",
    });
    let mut picture = Stream::new(
        dictionary! {
            "Type" => "XObject", "Subtype" => "Image", "Width" => 500, "Height" => 40,
            "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8,
        },
        vec![128u8; 500 * 40],
    );
    picture.compress().unwrap();
    let picture = doc.add_object(picture);
    let ops = vec![
        Operation::new("q", vec![]),
        Operation::new(
            "cm",
            vec![
                500.into(),
                0.into(),
                0.into(),
                40.into(),
                60.into(),
                690.into(),
            ],
        ),
        Operation::new("Do", vec!["Im1".into()]),
        Operation::new("Q", vec![]),
        Operation::new("BT", vec![]),
        Operation::new("Tf", vec!["F1".into(), 12.into()]),
        Operation::new("Td", vec![72.into(), 700.into()]),
        Operation::new(
            "Tj",
            vec![Object::string_literal(format!("E-mail: {EMAIL} today"))],
        ),
        Operation::new("ET", vec![]),
    ];
    let resources = dictionary! {
        "Font" => dictionary! { "F1" => font },
        "XObject" => dictionary! { "Im1" => picture },
    };
    let bytes = one_page(doc, resources, ops);

    let out = redact(&bytes, Format::Pdf, &Pii::new(), Style::Box, &limits()).unwrap();
    assert_none_left(&poppler("pdftotext", &[], &out.bytes), "pdftotext's text");
    let doc = Document::load_mem(&out.bytes).unwrap();
    let image = doc
        .objects
        .values()
        .filter_map(|o| o.as_stream().ok())
        .find(|s| s.dict.get(b"Subtype").and_then(Object::as_name).ok() == Some(b"Image"))
        .expect("the picture is kept");
    let pixels = decode(image);
    let black = pixels.iter().filter(|&&p| p < 40).count();
    let grey = pixels.iter().filter(|&&p| (100..160).contains(&p)).count();
    assert!(black > 0, "no pixel was masked");
    assert!(
        grey > black,
        "only the part under the value is masked ({black} black, {grey} grey)"
    );
}

/// `doc` (its fonts and images added) with one A4 page drawing `ops` with `resources`.
fn one_page(mut doc: Document, resources: lopdf::Dictionary, ops: Vec<Operation>) -> Vec<u8> {
    let pages_id = doc.new_object_id();
    let content = doc.add_object(Stream::new(
        dictionary! {},
        Content { operations: ops }.encode().unwrap(),
    ));
    let page = doc.add_object(dictionary! {
        "Type" => "Page", "Parent" => pages_id, "Contents" => content, "Resources" => resources,
        "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
    });
    let pages = dictionary! { "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1 };
    doc.objects.insert(pages_id, Object::Dictionary(pages));
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).unwrap();
    bytes
}

/// A PDF image's samples as grey values (JPEG or Flate RGB/grey).
fn decode(s: &Stream) -> Vec<u8> {
    let filter = s.dict.get(b"Filter").ok().map(|f| match f {
        Object::Array(a) => a
            .last()
            .and_then(|o| o.as_name().ok())
            .unwrap_or_default()
            .to_vec(),
        o => o.as_name().unwrap_or_default().to_vec(),
    });
    match filter.as_deref() {
        Some(b"DCTDecode") => image::load_from_memory(&s.content)
            .unwrap()
            .to_luma8()
            .into_raw(),
        _ => {
            let raw = s
                .decompressed_content()
                .unwrap_or_else(|_| s.content.clone());
            let comps = match s.dict.get(b"ColorSpace").and_then(Object::as_name) {
                Ok(b"DeviceGray") => 1,
                _ => 3,
            };
            raw.chunks(comps).map(|c| c[0]).collect()
        }
    }
}

#[test]
fn a_blank_redaction_leaves_no_box_and_no_value() {
    let out = redact_letter_pdf(Style::Blank);
    let text = poppler("pdftotext", &[], &out.bytes);
    assert_none_left(&text, "pdftotext's text");
    assert!(text.contains(KEPT));
}

#[test]
fn a_redacted_docx_holds_none_of_the_values_in_any_part() {
    let out = redact(
        &fixture("letter.docx"),
        Format::Docx,
        &Pii::new(),
        Style::Box,
        &limits(),
    )
    .unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(out.bytes.clone())).unwrap();
    let mut document = String::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let name = f.name().unwrap().into_owned();
        assert!(!name.contains("thumbnail"), "the thumbnail is dropped");
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        let xml = String::from_utf8_lossy(&data).into_owned();
        let unescaped = quick_xml::escape::unescape(&xml)
            .map(|s| s.into_owned())
            .unwrap_or_default();
        assert_none_left(&xml, &name);
        assert_none_left(&unescaped, &name);
        if name == "word/document.xml" {
            document = xml;
        }
    }
    assert!(
        !document.contains("w:del ") && !document.contains("w:ins "),
        "changes accepted"
    );
    assert!(!document.contains("Hidden note"), "hidden text is dropped");
    assert!(
        !document.contains("commentReference"),
        "comment anchors are dropped"
    );

    let text = bear_rag::extract::extract(&out.bytes, Format::Docx, &limits())
        .unwrap()
        .text;
    assert!(
        text.contains(&format!("Between {LABEL} and {LABEL}")),
        "{text}"
    );
    assert!(
        text.contains("or mail us"),
        "a field keeps its text, not its code"
    );
    assert!(
        text.contains("Settled on 12 March 2024"),
        "the insertion is kept: {text}"
    );
    assert!(
        text.contains(KEPT) && text.contains("Visible text."),
        "{text}"
    );
    for what in [
        "metadata",
        "comments",
        "tracked changes",
        "hidden text",
        "thumbnail",
    ] {
        assert!(
            out.stripped.iter().any(|s| s == what),
            "{what} in {:?}",
            out.stripped
        );
    }
    let kinds: Vec<&str> = out.log.iter().map(|e| e.kind.as_str()).collect();
    for want in ["EMAIL", "IBAN", "TERM", "ORGANIZATION"] {
        assert!(kinds.contains(&want), "{want} in the log {:?}", out.log);
    }
    assert!(out.log.iter().all(|e| e.page.is_none()));
}

/// A page whose text is drawn in a composite font without a ToUnicode map: what it says
/// cannot be read with certainty, so no copy is written.
#[test]
fn a_font_without_a_unicode_map_is_refused_never_left_in() {
    let mut doc = Document::with_version("1.5");
    let cid = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "CIDFontType2", "BaseFont" => "Helvetica",
        "CIDSystemInfo" => dictionary! {
            "Registry" => Object::string_literal("Adobe"),
            "Ordering" => Object::string_literal("Identity"), "Supplement" => 0,
        },
    });
    let font = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type0", "BaseFont" => "Helvetica",
        "Encoding" => "Identity-H", "DescendantFonts" => vec![cid.into()],
    });
    let codes: Vec<u8> = EMAIL.bytes().flat_map(|b| [0, b]).collect();
    let ops = vec![
        Operation::new("BT", vec![]),
        Operation::new("Tf", vec!["F1".into(), 12.into()]),
        Operation::new("Td", vec![72.into(), 700.into()]),
        Operation::new(
            "Tj",
            vec![Object::String(codes, lopdf::StringFormat::Hexadecimal)],
        ),
        Operation::new("ET", vec![]),
    ];
    let resources = dictionary! { "Font" => dictionary! { "F1" => font } };
    let bytes = one_page(doc, resources, ops);

    let err = redact(&bytes, Format::Pdf, &Pii::new(), Style::Box, &limits()).unwrap_err();
    match &err {
        Refusal::Unredactable { detail } => {
            assert!(
                detail.contains("ToUnicode") && detail.contains("page 1"),
                "{detail}"
            )
        }
        other => panic!("expected a refusal for the font, got {other:?}"),
    }
    assert!(!err.to_string().contains(EMAIL));
}

#[test]
fn broken_and_hostile_files_get_typed_refusals() {
    let pii = Pii::new();
    let pdf = fixture("letter.pdf");
    let docx = fixture("letter.docx");
    let run = |bytes: &[u8], format| redact(bytes, format, &pii, Style::Box, &limits());

    assert!(matches!(
        run(b"%PDF-1.7 garbage", Format::Pdf),
        Err(Refusal::MalformedPdf { .. })
    ));
    assert!(
        run(&pdf[..pdf.len() / 2], Format::Pdf).is_err(),
        "a cut PDF is refused"
    );
    assert!(matches!(
        run(b"PK\x03\x04 not a zip", Format::Docx),
        Err(Refusal::MalformedDocx { .. })
    ));
    assert!(
        run(&docx[..docx.len() / 2], Format::Docx).is_err(),
        "a cut DOCX is refused"
    );
    assert!(matches!(
        run(b"hello", Format::Text),
        Err(Refusal::Unredactable { .. })
    ));

    // A DOCX that embeds another file: refused, not written with the file inside.
    let embedded = with_entry(&docx, "word/embeddings/oleObject1.bin", EMAIL.as_bytes());
    match run(&embedded, Format::Docx) {
        Err(Refusal::Unredactable { detail }) => assert!(detail.contains("embeds"), "{detail}"),
        other => panic!("expected a refusal, got {:?}", other.map(|r| r.log)),
    }

    // A PDF stream that inflates past the budget.
    let mut doc = Document::with_version("1.5");
    let mut bomb = Stream::new(dictionary! {}, vec![0u8; 16 << 20]);
    bomb.compress().unwrap();
    doc.add_object(bomb);
    let pages = doc.add_object(dictionary! { "Type" => "Pages", "Kids" => vec![], "Count" => 0 });
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages });
    doc.trailer.set("Root", catalog);
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).unwrap();
    assert!(matches!(
        run(&bytes, Format::Pdf),
        Err(Refusal::ZipBomb { .. })
    ));
}

/// `docx` with one more entry.
fn with_entry(docx: &[u8], name: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut src = zip::ZipArchive::new(std::io::Cursor::new(docx)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..src.len() {
        let f = src.by_index(i).unwrap();
        out.raw_copy_file(f).unwrap();
    }
    out.start_file(name, zip::write::SimpleFileOptions::default())
        .unwrap();
    out.write_all(data).unwrap();
    out.finish().unwrap().into_inner()
}
