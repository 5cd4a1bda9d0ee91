//! ZIP archives read as folders: every file a document at its path below the archive,
//! archives and e-mails inside recursively, one inflation budget for all of it, and each bad
//! file reported alone.

use std::io::Write;

use crate::fixture_bytes as fixture;
use crate::test_limits as limits;
use base64::Engine;
use bear_rag::extract::{Format, Refusal, parts};

fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in files {
        out.start_file(*name, options).unwrap();
        out.write_all(data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

#[test]
fn an_archive_is_read_as_a_folder_of_documents() {
    let inner = zip_of(&[("deep/note.md", b"# Note\n\nThe deposit is 5,000 euros.")]);
    let eml = fixture("schedule.eml");
    let archive = zip_of(&[
        ("exhibits/lease.txt", b"The lease ends on 28 February 2030."),
        ("exhibits/", b""),
        ("inner.zip", &inner),
        ("mail/schedule.eml", &eml),
        ("setup.exe", b"MZ\x90\x00"),
        ("__MACOSX/exhibits/._lease.txt", b"junk"),
        (".DS_Store", b"junk"),
        ("../escape.txt", b"outside"),
    ]);
    let found = parts(&archive, Format::Zip, &limits()).unwrap();
    let locators: Vec<&str> = found.iter().map(|p| p.locator.as_str()).collect();
    assert_eq!(locators[0], "", "the archive's own document comes first");
    let listing = found[0].extracted.as_ref().unwrap();
    assert!(listing.text.contains("- exhibits/lease.txt") && listing.text.contains("- setup.exe"));
    assert!(!listing.text.contains("MACOSX") && !listing.text.contains("escape"));
    for want in [
        "exhibits/lease.txt",
        "inner.zip",
        "inner.zip/deep/note.md",
        "mail/schedule.eml",
    ] {
        assert!(locators.contains(&want), "{want} in {locators:?}");
    }
    assert!(
        locators
            .iter()
            .any(|l| l.starts_with("mail/schedule.eml/attachment-")),
        "{locators:?}"
    );
    let text = |loc: &str| {
        let p = found.iter().find(|p| p.locator == loc).unwrap();
        p.extracted.as_ref().unwrap().text.clone()
    };
    assert!(text("exhibits/lease.txt").contains("28 February 2030"));
    assert!(text("inner.zip/deep/note.md").contains("5,000 euros"));
    let exe = found.iter().find(|p| p.locator == "setup.exe").unwrap();
    assert!(matches!(
        exe.extracted,
        Err(Refusal::UnsupportedFormat { .. })
    ));
    assert!(
        !locators
            .iter()
            .any(|l| l.contains("escape") || l.contains("DS_Store"))
    );
}

#[test]
fn one_budget_covers_archives_inside_archives() {
    // Each inner archive inflates to 3 MB; four of them pass the 8 MB budget together.
    let big = vec![0u8; 3 << 20];
    let inner = zip_of(&[("zeros.txt", &big)]);
    let outer = zip_of(&[
        ("a.zip", &inner),
        ("b.zip", &inner),
        ("c.zip", &inner),
        ("d.zip", &inner),
    ]);
    match parts(&outer, Format::Zip, &limits()) {
        Err(Refusal::ZipBomb { .. }) => {}
        other => panic!("expected a zip bomb, got {:?}", other.map(|p| p.len())),
    }
}

#[test]
fn archives_nested_past_the_limit_are_refused_alone() {
    let mut z = zip_of(&[("bottom.txt", b"The bottom of the well.")]);
    for _ in 0..10 {
        z = zip_of(&[("next.zip", &z), ("top.txt", b"A file beside the archive.")]);
    }
    let found = parts(&z, Format::Zip, &limits()).unwrap();
    assert!(
        found
            .iter()
            .any(|p| matches!(p.extracted, Err(Refusal::TooDeep { .. })))
    );
    assert!(!found.iter().any(|p| p.locator.ends_with("bottom.txt")));
    assert!(
        found
            .iter()
            .filter(|p| p.locator.ends_with("top.txt"))
            .count()
            >= 7
    );
}

#[test]
fn broken_archives_are_refused_and_a_broken_member_fails_alone() {
    assert!(matches!(
        parts(b"PK\x03\x04 not really", Format::Zip, &limits()),
        Err(Refusal::Malformed { .. })
    ));
    let good = zip_of(&[("a.txt", b"Alpha text in the archive.")]);
    assert!(parts(&good[..good.len() / 2], Format::Zip, &limits()).is_err());
    let archive = zip_of(&[
        ("broken.zip", b"PK\x03\x04 no"),
        ("fine.txt", b"Still read in full."),
    ]);
    let found = parts(&archive, Format::Zip, &limits()).unwrap();
    let broken = found.iter().find(|p| p.locator == "broken.zip").unwrap();
    assert!(matches!(broken.extracted, Err(Refusal::Malformed { .. })));
    assert!(
        found
            .iter()
            .any(|p| p.locator == "fine.txt" && p.extracted.is_ok())
    );
}

#[test]
fn an_archive_attached_to_an_e_mail_is_read_too() {
    let archive = zip_of(&[("fees.txt", b"The fees come to 12,500 euros in all.")]);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&archive);
    let eml = format!(
        "From: a@example.org\r\nTo: b@example.org\r\nSubject: Fees\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\n\
         Content-Type: text/plain\r\n\r\nSee the attached archive.\r\n--XX\r\n\
         Content-Type: application/zip; name=\"fees.zip\"\r\n\
         Content-Disposition: attachment; filename=\"fees.zip\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--XX--\r\n"
    );
    let found = parts(eml.as_bytes(), Format::Eml, &limits()).unwrap();
    let locators: Vec<&str> = found.iter().map(|p| p.locator.as_str()).collect();
    assert!(locators.contains(&"attachment-1/fees.zip"), "{locators:?}");
    let fees = found
        .iter()
        .find(|p| p.locator == "attachment-1/fees.zip/fees.txt")
        .unwrap();
    assert!(
        fees.extracted
            .as_ref()
            .unwrap()
            .text
            .contains("12,500 euros")
    );
}
