//! Hostile and broken documents: each gets a typed refusal, never a panic or a hang.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::test_limits as limits;
use bear_rag::extract::{Format, Limits, Refusal, extract};
use lopdf::content::{Content, Operation};
use lopdf::{Document, Object, Stream, dictionary};

/// A PDF with one page per entry of `pages`; `None` pages have an empty content stream.
fn pdf(pages: &[Option<&str>]) -> Document {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
    });
    let resources = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font } });
    let mut kids = Vec::new();
    for text in pages {
        let ops = match text {
            Some(t) => vec![
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), 12.into()]),
                Operation::new("Td", vec![72.into(), 700.into()]),
                Operation::new("Tj", vec![Object::string_literal(*t)]),
                Operation::new("ET", vec![]),
            ],
            None => vec![],
        };
        let content = doc.add_object(Stream::new(
            dictionary! {},
            Content { operations: ops }.encode().unwrap(),
        ));
        kids.push(Object::from(doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => content,
        })));
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => kids, "Count" => count, "Resources" => resources,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    doc
}

fn bytes(mut doc: Document) -> Vec<u8> {
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

#[test]
fn pdf_pages_are_kept() {
    let b = bytes(pdf(&[Some("First page text."), Some("Second page text.")]));
    let e = extract(&b, Format::Pdf, &limits()).unwrap();
    let second = e.text.find("Second").unwrap();
    assert_eq!(e.page_of(0), Some(1));
    assert_eq!(e.page_of(second), Some(2));
    assert_eq!(e.meta.page_count, Some(2));
}

#[test]
fn pdf_without_text_layer_asks_for_ocr() {
    let b = bytes(pdf(&[None, None]));
    let err = extract(&b, Format::Pdf, &limits()).unwrap_err();
    assert_eq!(err, Refusal::NoTextLayer);
    assert!(err.to_string().contains("OCR"));
}

#[test]
fn encrypted_pdf_is_refused() {
    let mut doc = pdf(&[Some("Secret settlement terms.")]);
    let file_id = Object::String(
        b"0123456789abcdef".to_vec(),
        lopdf::StringFormat::Hexadecimal,
    );
    doc.trailer.set("ID", vec![file_id.clone(), file_id]);
    let state = lopdf::EncryptionState::try_from(lopdf::EncryptionVersion::V2 {
        document: &doc,
        owner_password: "owner",
        user_password: "user-secret",
        key_length: 128,
        permissions: lopdf::Permissions::all(),
    })
    .unwrap();
    doc.encrypt(&state).unwrap();
    let err = extract(&bytes(doc), Format::Pdf, &limits()).unwrap_err();
    assert_eq!(err, Refusal::Encrypted);
}

#[test]
fn cyclic_page_tree_terminates() {
    let mut doc = pdf(&[Some("Page one.")]);
    // The Pages node lists itself among its kids.
    let root = doc
        .catalog()
        .unwrap()
        .get(b"Pages")
        .unwrap()
        .as_reference()
        .unwrap();
    if let Ok(Object::Dictionary(d)) = doc.get_object_mut(root) {
        d.set(
            "Kids",
            vec![Object::Reference(root), Object::Reference(root)],
        );
        d.set("Count", 2);
    }
    let started = Instant::now();
    let r = extract(&bytes(doc), Format::Pdf, &limits());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        matches!(r, Err(Refusal::NoTextLayer | Refusal::MalformedPdf { .. })),
        "{r:?}"
    );
}

#[test]
fn cyclic_xref_chain_terminates() {
    // A hand-written PDF whose trailer's /Prev points back at its own xref section.
    let body = "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
                2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n";
    let xref_at = body.len();
    let pdf = format!(
        "{body}xref\n0 3\n0000000000 65535 f \n0000000009 00000 n \n0000000058 00000 n \n\
         trailer << /Size 3 /Root 1 0 R /Prev {xref_at} >>\nstartxref\n{xref_at}\n%%EOF\n"
    );
    let started = Instant::now();
    let r = extract(pdf.as_bytes(), Format::Pdf, &limits());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        matches!(r, Err(Refusal::NoTextLayer | Refusal::MalformedPdf { .. })),
        "{r:?}"
    );
}

#[test]
fn garbage_and_truncated_pdfs_are_malformed() {
    let good = bytes(pdf(&[Some("Text.")]));
    for b in [
        &b"%PDF-1.7\n garbage"[..],
        &good[..good.len() / 2],
        b"not a pdf",
    ] {
        let r = extract(b, Format::Pdf, &limits());
        assert!(r.is_err(), "{r:?}");
    }
}

#[test]
fn too_many_pages() {
    let b = bytes(pdf(&[Some("a"), Some("b"), Some("c")]));
    let l = Limits {
        max_pages: 2,
        ..limits()
    };
    assert_eq!(
        extract(&b, Format::Pdf, &l).unwrap_err(),
        Refusal::TooManyPages { pages: 3, limit: 2 }
    );
}

/// A stored zip whose two central-directory entries share one local entry: the
/// overlapping-entry construction behind non-recursive zip bombs.
fn overlapping_zip() -> Vec<u8> {
    let data = b"<w:document xmlns:w=\"w\"><w:body/></w:document>";
    let crc = {
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        z.start_file(
            "x",
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored),
        )
        .unwrap();
        z.write_all(data).unwrap();
        let b = z.finish().unwrap().into_inner();
        u32::from_le_bytes(b[14..18].try_into().unwrap())
    };
    let name = b"word/document.xml";
    let mut out = Vec::new();
    // Local file header.
    out.extend_from_slice(&0x04034b50u32.to_le_bytes());
    out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(name);
    out.extend_from_slice(data);
    let cd_start = out.len();
    for n in [&b"word/document.xml"[..], b"word/styles.xml"] {
        out.extend_from_slice(&0x02014b50u32.to_le_bytes());
        out.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(n.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&0u32.to_le_bytes()); // both point at offset 0
        out.extend_from_slice(n);
    }
    let cd_len = out.len() - cd_start;
    out.extend_from_slice(&0x06054b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 2, 0, 2, 0]);
    out.extend_from_slice(&(cd_len as u32).to_le_bytes());
    out.extend_from_slice(&(cd_start as u32).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[test]
fn docx_overlapping_entries_are_a_zip_bomb() {
    let r = extract(&overlapping_zip(), Format::Docx, &limits());
    assert!(
        matches!(
            &r,
            Err(Refusal::ZipBomb { .. }) | Err(Refusal::MalformedDocx { .. })
        ),
        "{r:?}"
    );
}

#[test]
fn docx_inflating_past_the_limit_is_a_zip_bomb() {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    z.start_file(
        "word/document.xml",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    z.write_all(b"<w:document><w:body><w:p><w:r><w:t>").unwrap();
    let zeros = vec![b'0'; 1 << 20];
    for _ in 0..16 {
        z.write_all(&zeros).unwrap();
    }
    z.write_all(b"</w:t></w:r></w:p></w:body></w:document>")
        .unwrap();
    let packed = z.finish().unwrap().into_inner();
    assert!(packed.len() < 200 << 10, "16 MiB packs small");
    let r = extract(&packed, Format::Docx, &limits());
    assert!(matches!(r, Err(Refusal::ZipBomb { .. })), "{r:?}");
}

#[test]
fn text_files_binary_empty_and_oversized() {
    assert_eq!(
        extract(b"", Format::Text, &limits()).unwrap_err(),
        Refusal::Empty
    );
    let elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0>\0\x01\0\0\0";
    assert_eq!(
        extract(elf, Format::Text, &limits()).unwrap_err(),
        Refusal::Binary
    );
    // Invalid UTF-8 is decoded by the detected legacy encoding, not dropped.
    let e = extract(b"Caf\xe9 au lait, sch\xf6n", Format::Text, &limits()).unwrap();
    assert_eq!(e.text, "Café au lait, schön");
    let l = Limits {
        max_file_bytes: 1000,
        ..limits()
    };
    let big = vec![b'a'; 1001];
    assert_eq!(
        extract(&big, Format::Text, &l).unwrap_err(),
        Refusal::TooLarge {
            size: 1001,
            limit: 1000
        }
    );
}

#[test]
fn every_corpus_file_extracts() {
    for entry in std::fs::read_dir(crate::corpus()).unwrap() {
        let path = entry.unwrap().path();
        let Some(format) = Format::from_path(&path) else {
            continue;
        };
        let b = std::fs::read(&path).unwrap();
        let e =
            extract(&b, format, &limits()).unwrap_or_else(|r| panic!("{}: {r}", path.display()));
        assert!(e.text.len() > 200, "{}", path.display());
    }
}

fn fixture(name: &str) -> (Vec<u8>, Format) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let format = Format::from_path(&path).expect("a format BEAR reads");
    (std::fs::read(&path).unwrap(), format)
}

/// Lines damages.xlsx and damages.xls (the same schedule) both give.
const DAMAGES_LINES: [&str; 6] = [
    "## Sheet: Damages",
    "[Damages!A1:C1] Item | Amount (EUR) | Invoice\n",
    "[Damages!A2:C2] Lost profit | 40000 | INV-2024-117\n",
    "[Damages!A3:C3] Storage costs | 1250.5 | INV-2024-130\n",
    "[Damages!F7:F7] Total claimed 41250.5\n",
    "[Parties!A2:B2] Respondent | Fjord Capital AS\n",
];

#[test]
fn a_workbook_gives_one_page_per_sheet_and_rows_that_name_their_cells() {
    let (bytes, format) = fixture("damages.xlsx");
    let e = extract(&bytes, format, &limits()).unwrap();
    for line in DAMAGES_LINES {
        assert!(e.text.contains(line), "{line:?} not in {:?}", e.text);
    }
    assert_eq!(e.page_of(e.text.find("Lost profit").unwrap()), Some(1));
    assert_eq!(e.page_of(e.text.find("Fjord Capital").unwrap()), Some(2));
    assert_eq!(e.meta.page_count, Some(2));
    assert_eq!(e.meta.title.as_deref(), Some("Damages schedule"));
    assert_eq!(e.meta.author.as_deref(), Some("Litigation team"));
}

#[test]
fn a_legacy_workbook_reads_as_a_current_one() {
    let (bytes, format) = fixture("damages.xls");
    assert_eq!(format, Format::Xls);
    let e = extract(&bytes, format, &limits()).unwrap();
    for line in DAMAGES_LINES {
        assert!(e.text.contains(line), "{line:?} not in {:?}", e.text);
    }
    assert_eq!(e.page_of(e.text.find("Fjord Capital").unwrap()), Some(2));
    assert_eq!(e.meta.page_count, Some(2));
}

/// The BIFF records of an .xls workbook stream: (offset, type, length).
fn biff_records(stream: &[u8]) -> Vec<(usize, u16, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= stream.len() {
        let typ = u16::from_le_bytes([stream[at], stream[at + 1]]);
        let len = u16::from_le_bytes([stream[at + 2], stream[at + 3]]) as usize;
        out.push((at, typ, len));
        at += 4 + len;
    }
    out
}

/// damages.xls with its workbook stream edited.
fn xls_with(edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    use std::io::Read;
    let (bytes, _) = fixture("damages.xls");
    let mut file = cfb::CompoundFile::open(std::io::Cursor::new(bytes)).unwrap();
    let mut stream = Vec::new();
    let mut s = file.open_stream("/Workbook").unwrap();
    s.read_to_end(&mut stream).unwrap();
    edit(&mut stream);
    let mut out =
        cfb::CompoundFile::create_with_version(cfb::Version::V3, std::io::Cursor::new(Vec::new()))
            .unwrap();
    out.create_stream("/Workbook")
        .unwrap()
        .write_all(&stream)
        .unwrap();
    out.flush().unwrap();
    out.into_inner().into_inner()
}

#[test]
fn hostile_legacy_workbooks_are_refused_before_they_are_parsed() {
    // Rewritten but unchanged, it still reads (the edits below are what is refused).
    let same = xls_with(|_| {});
    let r = extract(&same, Format::Xls, &limits());
    assert!(r.is_ok(), "{r:?}");
    // One cell moved to the last row and column: calamine's dense grid would be 16.7 million
    // cells for a 5 KB file.
    let far = xls_with(|s| {
        let records = biff_records(s);
        let (at, _, _) = records.into_iter().find(|r| r.1 == 0x00FD).unwrap();
        s[at + 4..at + 8].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0x00]);
    });
    let r = extract(&far, Format::Xls, &limits());
    assert!(matches!(r, Err(Refusal::ZipBomb { .. })), "{r:?}");
    let mut roomy = limits();
    roomy.max_decompressed_bytes = 256 << 20;
    let r = extract(&far, Format::Xls, &roomy);
    assert!(matches!(r, Err(Refusal::ZipBomb { .. })), "{r:?}");
    // A DIMENSIONS record declaring four billion rows (calamine reserves them).
    let declared = xls_with(|s| {
        let (at, _, _) = biff_records(s).into_iter().find(|r| r.1 == 0x0200).unwrap();
        s[at + 8..at + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    });
    let r = extract(&declared, Format::Xls, &roomy);
    assert!(matches!(r, Err(Refusal::ZipBomb { .. })), "{r:?}");
    // A sheet said to start past the end of the workbook.
    let outside = xls_with(|s| {
        let (at, _, _) = biff_records(s).into_iter().find(|r| r.1 == 0x0085).unwrap();
        s[at + 4..at + 8].copy_from_slice(&0x00FF_FFFFu32.to_le_bytes());
    });
    let r = extract(&outside, Format::Xls, &limits());
    assert!(matches!(r, Err(Refusal::Malformed { .. })), "{r:?}");
    // Encrypted: a FILEPASS record (RC4) after the globals' BOF.
    let encrypted = xls_with(|s| {
        let bof = 4 + u16::from_le_bytes([s[2], s[3]]) as usize;
        let filepass = [0x2F, 0x00, 0x06, 0x00, 0x01, 0x00, 0x01, 0x00, 0x01, 0x00];
        s.splice(bof..bof, filepass);
    });
    assert_eq!(
        extract(&encrypted, Format::Xls, &limits()).unwrap_err(),
        Refusal::Protected
    );
    // Cut short anywhere, or not a workbook at all: a typed refusal, never a panic.
    let (bytes, _) = fixture("damages.xls");
    for cut in [10, 600, bytes.len() / 2, bytes.len() - 30] {
        let r = extract(&bytes[..cut], Format::Xls, &limits());
        assert!(
            matches!(r, Err(Refusal::Malformed { .. })),
            "cut at {cut}: {r:?}"
        );
    }
    let (msg, _) = fixture("damages.xlsx");
    let r = extract(&msg, Format::Xls, &limits());
    assert!(matches!(r, Err(Refusal::Malformed { .. })), "{r:?}");
}

#[test]
fn a_rich_text_file_gives_its_body_text_and_info() {
    let (bytes, format) = fixture("settlement.rtf");
    assert_eq!(format, Format::Rtf);
    let e = extract(&bytes, format, &limits()).unwrap();
    assert_eq!(
        e.text,
        "Settlement terms\n\n\
         The respondent pays \u{20ac} 12.500 to Caf\u{e9} De Kroon within 30 days \u{2013} no later than 1 June 2024.\n\n\
         Costs: each party bears its own.\n\n\
         Signed in \u{2018}s-Hertogenbosch by A. Visser.\n\n\
         Amount | EUR 12,500 |\n"
    );
    assert_eq!(e.meta.title.as_deref(), Some("Settlement draft"));
    assert_eq!(e.meta.author.as_deref(), Some("A. Visser"));
}

#[test]
fn a_deck_gives_one_page_per_slide_with_its_notes() {
    let (bytes, format) = fixture("hearing.pptx");
    let e = extract(&bytes, format, &limits()).unwrap();
    let first = e.text.find("# Greenfield v Fjord").unwrap();
    let second = e.text.find("# Damages").unwrap();
    assert!(first < second, "{:?}", e.text);
    assert!(e.text.contains("Hearing of 12 March"));
    assert!(
        e.text[second..].contains(
            "Lost profit of EUR 40,000 after the oven failed.\n\nSpeaker notes:\n\nStress the invoices from November."
        ),
        "{:?}",
        e.text
    );
    assert_eq!(e.page_of(e.text.find("Stress").unwrap()), Some(2));
    assert_eq!(e.meta.page_count, Some(2));
    assert_eq!(e.meta.title.as_deref(), Some("Hearing deck"));
}

#[test]
fn an_opendocument_text_keeps_headings_and_metadata() {
    let (bytes, format) = fixture("settlement.odt");
    let e = extract(&bytes, format, &limits()).unwrap();
    assert_eq!(
        e.text,
        "# Settlement terms\n\nThe respondent pays EUR 12,500 within 30 days.\n\n"
    );
    assert_eq!(e.meta.title.as_deref(), Some("Settlement draft"));
    assert_eq!(e.meta.author.as_deref(), Some("A. Visser"));
}

#[test]
fn protected_legacy_cut_and_lying_office_files_are_refused() {
    // An OLE compound file holding an EncryptedPackage stream: a password-protected file.
    let mut ole = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    ole.extend_from_slice(&[0u8; 504]);
    let plain_ole = ole.clone();
    ole.extend("EncryptedPackage".encode_utf16().flat_map(u16::to_le_bytes));
    for f in [Format::Xlsx, Format::Pptx, Format::Docx] {
        assert_eq!(extract(&ole, f, &limits()).unwrap_err(), Refusal::Protected);
        assert!(
            matches!(
                extract(&plain_ole, f, &limits()).unwrap_err(),
                Refusal::Malformed { .. } | Refusal::MalformedDocx { .. }
            ),
            "{f:?}"
        );
    }
    // Cut short anywhere: a typed refusal, never a panic.
    for name in ["damages.xlsx", "hearing.pptx", "settlement.odt"] {
        let (bytes, format) = fixture(name);
        for cut in [10, bytes.len() / 3, bytes.len() / 2, bytes.len() - 30] {
            let r = extract(&bytes[..cut], format, &limits());
            assert!(r.is_err(), "{name} cut at {cut} extracted");
        }
    }
    // A workbook whose entries declare less than they inflate to.
    let (bytes, _) = fixture("damages.xlsx");
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let mut original = zip::ZipArchive::new(std::io::Cursor::new(&bytes[..])).unwrap();
    for i in 0..original.len() {
        let mut f = original.by_index(i).unwrap();
        let name = f.name().unwrap().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut data).unwrap();
        if name == "xl/worksheets/sheet1.xml" {
            data.extend(std::iter::repeat_n(b' ', 12 << 20));
        }
        z.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(&data).unwrap();
    }
    let packed = z.finish().unwrap().into_inner();
    let r = extract(&packed, Format::Xlsx, &limits());
    assert!(matches!(r, Err(Refusal::ZipBomb { .. })), "{r:?}");
    let lying = lie_about_sizes(packed);
    let r = extract(&lying, Format::Xlsx, &limits());
    assert!(
        matches!(
            r,
            Err(Refusal::ZipBomb { .. }) | Err(Refusal::Malformed { .. })
        ),
        "{r:?}"
    );
}

/// The zip with every entry's declared uncompressed size (local headers and central
/// directory) set to 100 bytes.
fn lie_about_sizes(mut zip: Vec<u8>) -> Vec<u8> {
    let mut i = 0;
    while i + 46 <= zip.len() {
        let sig = u32::from_le_bytes(zip[i..i + 4].try_into().unwrap());
        match sig {
            0x04034b50 => zip[i + 22..i + 26].copy_from_slice(&100u32.to_le_bytes()),
            0x02014b50 => zip[i + 24..i + 28].copy_from_slice(&100u32.to_le_bytes()),
            _ => {}
        }
        i += 1;
    }
    zip
}

#[test]
fn an_opendocument_spreadsheet_names_sheet_and_cells_and_skips_empty_repeats() {
    let (bytes, format) = fixture("hours.ods");
    assert_eq!(format, Format::Ods);
    let e = extract(&bytes, format, &limits()).unwrap();
    assert_eq!(
        e.text,
        "## Sheet: Hours\n\n\
         [Hours!A1:C1] Date | Lawyer | Hours\n\
         [Hours!A2:C2] 2024-05-03 | De Vries | 2.5\n\
         [Hours!A3:C3] weekly call | 1\n\
         [Hours!A4:C4] weekly call | 1\n\
         [Hours!D1005:D1005] Total 6.0\n\n\
         ## Sheet: Rates\n\n\
         [Rates!A1:B1] De Vries | EUR 310\n\n"
    );
    assert_eq!(e.page_of(e.text.find("EUR 310").unwrap()), Some(2));
    assert_eq!(e.meta.page_count, Some(2));
    assert_eq!(e.meta.title.as_deref(), Some("Time sheet"));
}

/// An ODS package whose content.xml is `table`'s rows.
fn ods(rows: &str) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    z.start_file("content.xml", zip::write::SimpleFileOptions::default())
        .unwrap();
    write!(
        z,
        r#"<office:document-content xmlns:office="o" xmlns:table="t" xmlns:text="x"><office:body><office:spreadsheet><table:table table:name="S">{rows}</table:table></office:spreadsheet></office:body></office:document-content>"#
    )
    .unwrap();
    z.finish().unwrap().into_inner()
}

#[test]
fn repeated_cells_with_values_stop_at_the_budget() {
    let wide = ods(
        r#"<table:table-row><table:table-cell table:number-columns-repeated="4000000000"><text:p>x</text:p></table:table-cell></table:table-row>"#,
    );
    let tall = ods(
        r#"<table:table-row table:number-rows-repeated="4000000000"><table:table-cell><text:p>claim</text:p></table:table-cell></table:table-row>"#,
    );
    for bytes in [wide, tall] {
        let r = extract(&bytes, Format::Ods, &limits());
        assert!(matches!(r, Err(Refusal::ZipBomb { .. })), "{r:?}");
    }
    // Empty repeats cost nothing, however many.
    let sparse = ods(
        r#"<table:table-row table:number-rows-repeated="4000000000"><table:table-cell table:number-columns-repeated="16384"/></table:table-row><table:table-row><table:table-cell><text:p>end</text:p></table:table-cell></table:table-row>"#,
    );
    let e = extract(&sparse, Format::Ods, &limits()).unwrap();
    assert!(
        e.text.contains("[S!A4000000001:A4000000001] end"),
        "{}",
        e.text
    );
}

fn locators(parts: &[bear_rag::extract::mail::Part]) -> Vec<&str> {
    parts.iter().map(|p| p.locator.as_str()).collect()
}

#[test]
fn an_email_is_its_message_then_each_attachment_recursively() {
    let (bytes, format) = fixture("schedule.eml");
    assert_eq!(format, Format::Eml);
    let parts = bear_rag::extract::parts(&bytes, format, &limits()).unwrap();
    assert_eq!(
        locators(&parts),
        [
            "",
            "attachment-1/damages.xlsx",
            "attachment-2/message.eml",
            "attachment-2/message.eml/attachment-1/penalty-note.txt",
            "attachment-3/setup.exe",
        ]
    );
    let message = parts[0].extracted.as_ref().unwrap();
    for line in [
        "From: Anna Visser <a.visser@lawfirm.example>\n",
        "To: Greenfield Bakeries <ops@greenfield.example>\n",
        "Cc: Litigation <lit@lawfirm.example>\n",
        "Subject: Damages schedule for the oven claim\n",
        "Message-ID: <schedule-7@lawfirm.example>\n",
        "In-Reply-To: <demand-1@fjord.example>\n",
        "Attachments: 1. damages.xlsx; 2. message.eml; 3. setup.exe\n",
        "The storage costs were invoiced in April.",
    ] {
        assert!(
            message.text.contains(line),
            "{line:?} not in {}",
            message.text
        );
    }
    assert!(
        message.text.contains("Date: 2024-05-03T10:30:00"),
        "{}",
        message.text
    );
    assert_eq!(
        message.meta.title.as_deref(),
        Some("Damages schedule for the oven claim")
    );
    assert_eq!(
        message.meta.author.as_deref(),
        Some("Anna Visser <a.visser@lawfirm.example>")
    );
    let sheet = parts[1].extracted.as_ref().unwrap();
    assert!(sheet.text.contains("[Damages!A2:C2] Lost profit | 40000"));
    let forwarded = parts[2].extracted.as_ref().unwrap();
    assert!(forwarded.text.contains("Subject: Original demand"));
    let note = parts[3].extracted.as_ref().unwrap();
    assert!(note.text.contains("Penalty interest runs at 8 percent"));
    assert_eq!(
        parts[4].extracted.as_ref().unwrap_err(),
        &Refusal::UnsupportedFormat {
            extension: "exe".into()
        }
    );
}

#[test]
fn a_mailbox_is_one_document_per_message() {
    let (bytes, format) = fixture("thread.mbox");
    let parts = bear_rag::extract::parts(&bytes, format, &limits()).unwrap();
    assert_eq!(locators(&parts), ["", "message-2"]);
    let second = parts[1].extracted.as_ref().unwrap();
    assert!(second.text.contains("Subject: Re: Oven failure\n"));
    assert!(
        second
            .text
            .contains("In-Reply-To: <oven-1@greenfield.example>\n")
    );
    assert!(second.text.contains("Keep every invoice"));
}

/// A message with `body` as its MIME body under `content_type`.
fn mail(content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "From: a@example.org\r\nSubject: test\r\nMIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n{body}"
    )
    .into_bytes()
}

#[test]
fn hostile_emails_fail_alone_within_their_limits() {
    use bear_rag::extract::mail::{MAX_ATTACHMENTS, MAX_DEPTH};
    // Too many attachments: the message is refused whole.
    let mut body = String::new();
    for i in 0..=MAX_ATTACHMENTS {
        body.push_str(&format!(
            "--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"n{i}.txt\"\r\n\r\nnote {i}\r\n"
        ));
    }
    body.push_str("--b--\r\n");
    let many = mail("multipart/mixed; boundary=\"b\"", &body);
    assert_eq!(
        bear_rag::extract::parts(&many, Format::Eml, &limits()).unwrap_err(),
        Refusal::TooManyParts {
            limit: MAX_ATTACHMENTS
        }
    );
    // Nested past the limit: the deepest message is refused, the rest is read.
    let mut nested = mail("text/plain", "innermost");
    for _ in 0..MAX_DEPTH + 2 {
        let inner = String::from_utf8(nested).unwrap();
        nested = mail(
            "multipart/mixed; boundary=\"n\"",
            &format!(
                "--n\r\nContent-Type: text/plain\r\n\r\nlayer\r\n--n\r\nContent-Type: message/rfc822\r\n\r\n{inner}\r\n--n--\r\n"
            ),
        );
    }
    let parts = bear_rag::extract::parts(&nested, Format::Eml, &limits()).unwrap();
    assert!(parts[0].extracted.is_ok());
    assert!(
        parts
            .iter()
            .any(|p| p.extracted.as_ref().err() == Some(&Refusal::TooDeep { limit: MAX_DEPTH })),
        "{:?}",
        locators(&parts)
    );
    // A broken boundary and a zip bomb attachment: the message is still read.
    let (bomb, _) = {
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        z.start_file(
            "word/document.xml",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        z.write_all(&vec![b'0'; 16 << 20]).unwrap();
        (z.finish().unwrap().into_inner(), ())
    };
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&bomb);
    let body = format!(
        "--x\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--x\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"bomb.docx\"\r\n\r\n{encoded}\r\n--x--\r\n--broken"
    );
    let parts = bear_rag::extract::parts(
        &mail("multipart/mixed; boundary=\"x\"", &body),
        Format::Eml,
        &limits(),
    )
    .unwrap();
    assert!(
        parts[0]
            .extracted
            .as_ref()
            .unwrap()
            .text
            .contains("see attached")
    );
    assert!(
        matches!(parts[1].extracted, Err(Refusal::ZipBomb { .. })),
        "{:?}",
        parts[1].extracted
    );
    // Garbage: a message without headers is still a (short) document, never a panic.
    let _ = bear_rag::extract::parts(b"\xff\xfe\x00garbage", Format::Eml, &limits());
    let _ = bear_rag::extract::parts(b"From nobody\n\xff\xfe", Format::Mbox, &limits());
}
