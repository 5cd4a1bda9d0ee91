//! Outlook `.msg` files, written here with `cfb` as Outlook lays them out (MS-OXMSG): the
//! message's header block and body, attachments as documents below it, an attached message
//! recursively, and corrupt files refused with a reason.

use std::io::{Cursor, Write};

use crate::test_limits as limits;
use bear_rag::extract::{Format, Refusal, parts};

type Cf = cfb::CompoundFile<Cursor<Vec<u8>>>;

fn utf16(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn stream(cf: &mut Cf, path: &str, data: &[u8]) {
    cf.create_stream(path).unwrap().write_all(data).unwrap();
}

/// A string property (`001F`, UTF-16) of `storage`.
fn prop(cf: &mut Cf, storage: &str, id: u16, value: &str) {
    stream(
        cf,
        &format!("{storage}/__substg1.0_{id:04X}001F"),
        &utf16(value),
    );
}

/// The message parts of `storage`: properties stream, subject, body and sender.
fn message(cf: &mut Cf, storage: &str, subject: &str, body: &str) {
    stream(
        cf,
        &format!("{storage}/__properties_version1.0"),
        &[0u8; 32],
    );
    prop(cf, storage, 0x0037, subject);
    prop(cf, storage, 0x1000, body);
}

/// A file attachment `n` of the message in `storage`.
fn attach(cf: &mut Cf, storage: &str, n: u32, name: &str, data: &[u8]) -> String {
    let a = format!("{storage}/__attach_version1.0_#{n:08X}");
    cf.create_storage(&a).unwrap();
    prop(cf, &a, 0x3707, name);
    stream(cf, &format!("{a}/__substg1.0_37010102"), data);
    a
}

fn outlook_file() -> Vec<u8> {
    let mut cf = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
    message(
        &mut cf,
        "",
        "Settlement draft",
        "The draft settlement is attached.",
    );
    prop(&mut cf, "", 0x0C1A, "Counsel A");
    prop(&mut cf, "", 0x5D01, "counsel@example.org");
    prop(&mut cf, "", 0x0E04, "Client B");
    let headers = "Date: Mon, 4 Mar 2024 10:00:00 +0100\r\nMessage-ID: <m1@example.org>\r\n\
                   In-Reply-To:\r\n <m0@example.org>\r\nSubject: Settlement draft\r\n";
    prop(&mut cf, "", 0x007D, headers);
    attach(
        &mut cf,
        "",
        0,
        "fees.txt",
        b"The fees come to 12,500 euros in all.",
    );
    // An attached message: a storage holding a message of its own, with its own attachment.
    let a = "/__attach_version1.0_#00000001";
    cf.create_storage(a).unwrap();
    let inner = format!("{a}/__substg1.0_3701000D");
    cf.create_storage(&inner).unwrap();
    message(
        &mut cf,
        &inner,
        "Earlier note",
        "A penalty of 500 euros applies.",
    );
    attach(
        &mut cf,
        &inner,
        0,
        "deep.md",
        b"# Deep\n\nThe deadline is 1 May 2024.",
    );
    attach(&mut cf, "", 2, "setup.exe", b"MZ\x90\x00");
    cf.flush().unwrap();
    cf.into_inner().into_inner()
}

#[test]
fn an_outlook_message_and_its_attachments_are_documents() {
    let found = parts(&outlook_file(), Format::Msg, &limits()).unwrap();
    let locators: Vec<&str> = found.iter().map(|p| p.locator.as_str()).collect();
    assert_eq!(
        locators,
        [
            "",
            "attachment-1/fees.txt",
            "attachment-2/message.msg",
            "attachment-2/message.msg/attachment-1/deep.md",
            "attachment-3/setup.exe",
        ]
    );
    let text = |i: usize| found[i].extracted.as_ref().unwrap().text.clone();
    let head = text(0);
    for line in [
        "From: Counsel A <counsel@example.org>",
        "To: Client B",
        "Date: Mon, 4 Mar 2024 10:00:00 +0100",
        "Subject: Settlement draft",
        "Message-ID: <m1@example.org>",
        "In-Reply-To: <m0@example.org>",
        "Attachments: 1. fees.txt; 2. message.msg; 3. setup.exe",
        "The draft settlement is attached.",
    ] {
        assert!(head.contains(line), "`{line}` in {head}");
    }
    let meta = &found[0].extracted.as_ref().unwrap().meta;
    assert_eq!(meta.title.as_deref(), Some("Settlement draft"));
    assert!(text(1).contains("12,500 euros"));
    assert!(text(2).contains("Subject: Earlier note") && text(2).contains("penalty of 500"));
    assert!(text(3).contains("1 May 2024"));
    assert!(matches!(
        found[4].extracted,
        Err(Refusal::UnsupportedFormat { .. })
    ));
}

#[test]
fn corrupt_outlook_files_are_refused_with_a_reason() {
    let good = outlook_file();
    for bad in [
        &b"not an outlook file"[..],
        &good[..good.len() / 3],
        &good[..600],
    ] {
        match parts(bad, Format::Msg, &limits()) {
            Err(Refusal::Malformed { format, .. }) => assert_eq!(format, "Outlook message"),
            Err(other) => panic!("expected a malformed Outlook message, got {other:?}"),
            Ok(p) => panic!("a corrupt file gave {} documents", p.len()),
        }
    }
    // An OLE file that is not a message.
    let mut cf = cfb::CompoundFile::create(Cursor::new(Vec::new())).unwrap();
    stream(&mut cf, "/WordDocument", b"binary");
    cf.flush().unwrap();
    let ole = cf.into_inner().into_inner();
    match parts(&ole, Format::Msg, &limits()) {
        Err(Refusal::Malformed { detail, .. }) => assert!(detail.contains("not an Outlook")),
        other => panic!("expected a refusal, got {:?}", other.map(|p| p.len())),
    }
}
