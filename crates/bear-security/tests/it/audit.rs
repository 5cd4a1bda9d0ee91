//! The audit chain: every tampering kind is detected and named by line; records hold metadata
//! only; fail-closed refuses when the log cannot be written.

use std::collections::BTreeMap;
use std::path::Path;

use bear_core::PiiEntity;
use bear_security::Error;
use bear_security::audit::{self, AuditEvent, AuditLog};

fn event(i: usize) -> AuditEvent {
    AuditEvent {
        actor: "cli".into(),
        action: "pii.scrub".into(),
        outcome: "ok".into(),
        entities: BTreeMap::from([(PiiEntity::Person, i as u32)]),
        pages: Vec::new(),
        input_len: 100 + i as u64,
        output_len: 90,
        input_hmac: None,
    }
}

fn write_log(path: &Path, n: usize) {
    let log = AuditLog::open(path, true, None).unwrap();
    for i in 0..n {
        log.record(event(i)).unwrap();
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn set_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[track_caller]
fn broken_at(path: &Path) -> u64 {
    match audit::verify(path) {
        Err(Error::AuditBroken { line, .. }) => line,
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

#[test]
fn a_clean_log_verifies_and_resumes_its_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 3);
    write_log(&path, 2); // reopened: the chain continues
    let r = audit::verify(&path).unwrap();
    assert_eq!(r.records, 5);
    assert!(r.head_checked);
}

/// Two writers of one log, as bear-server and a CLI command are: each continues the chain
/// from the other's latest record, in turns and at the same time, and the log verifies.
#[test]
fn two_writers_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let server = AuditLog::open(&path, true, None).unwrap();
    server.record(event(0)).unwrap();
    let cli = AuditLog::open(&path, true, None).unwrap();
    for i in 1..10 {
        let log = if i % 3 == 0 { &server } else { &cli };
        log.record(event(i)).unwrap();
    }
    assert_eq!(audit::verify(&path).unwrap().records, 10);
    std::thread::scope(|s| {
        for log in [&server, &cli] {
            s.spawn(move || {
                for i in 0..50 {
                    log.record(event(i)).unwrap();
                }
            });
        }
    });
    let r = audit::verify(&path).unwrap();
    assert_eq!(r.records, 110);
    assert!(r.head_checked);
    // A third writer opened now resumes after all of them.
    write_log(&path, 1);
    assert_eq!(audit::verify(&path).unwrap().records, 111);
}

#[test]
fn reopening_reads_only_the_last_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    // A long log (more than one 64 KiB read from the end) continues its chain.
    write_log(&path, 2_000);
    assert!(std::fs::metadata(&path).unwrap().len() > 256 << 10);
    write_log(&path, 1);
    assert_eq!(audit::verify(&path).unwrap().records, 2_001);

    // Blank lines after the last record are skipped.
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\n  \n\n");
    std::fs::write(&path, &text).unwrap();
    write_log(&path, 1);
    let l = lines(&path);
    assert!(
        l.last().unwrap().contains("\"seq\":2002"),
        "{}",
        l.last().unwrap()
    );

    // A broken last line is refused at open, named by its line number.
    let mut l = lines(&path);
    let n = l.len();
    l[n - 1] = "{not a record".into();
    set_lines(&path, &l);
    match AuditLog::open(&path, true, None) {
        Err(Error::AuditBroken { line, .. }) => assert_eq!(line, n as u64),
        other => panic!("expected a broken log, got {other:?}"),
    }

    // A last line longer than any record is refused without reading it all.
    let mut text = lines(&path)[..n - 1].join("\n");
    text.push('\n');
    text.push_str(&"x".repeat(2 << 20));
    std::fs::write(&path, &text).unwrap();
    match AuditLog::open(&path, true, None) {
        Err(Error::AuditBroken { line, .. }) => assert_eq!(line, n as u64),
        other => panic!("expected a broken log, got {other:?}"),
    }

    // A file of blank lines holds no chain: it starts afresh.
    std::fs::write(&path, "\n\n \n").unwrap();
    write_log(&path, 1);
    assert!(lines(&path).last().unwrap().contains("\"seq\":1,"));
}

#[test]
fn every_kind_of_tampering_is_detected_at_the_right_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 6);
    let good = lines(&path);

    // Edited: a count changed.
    let mut l = good.clone();
    l[2] = l[2].replace("\"PERSON\":2", "\"PERSON\":7");
    assert_ne!(l[2], good[2]);
    set_lines(&path, &l);
    assert_eq!(broken_at(&path), 3);

    // Deleted from the middle.
    let mut l = good.clone();
    l.remove(3);
    set_lines(&path, &l);
    assert_eq!(broken_at(&path), 4);

    // Inserted: a copy of a record.
    let mut l = good.clone();
    l.insert(2, good[1].clone());
    set_lines(&path, &l);
    assert_eq!(broken_at(&path), 3);

    // Reordered.
    let mut l = good.clone();
    l.swap(1, 2);
    set_lines(&path, &l);
    assert_eq!(broken_at(&path), 2);

    // Deleted from the end: the head file catches it.
    let mut l = good.clone();
    l.pop();
    set_lines(&path, &l);
    assert_eq!(broken_at(&path), 6);

    // Rewritten with a recomputed chain but a wrong hash field.
    let mut l = good.clone();
    l[0] = l[0].replace("\"cli\"", "\"eve\"");
    set_lines(&path, &l);
    assert_eq!(broken_at(&path), 1);

    // Garbage line.
    let mut l = good.clone();
    l[4] = "not json".into();
    set_lines(&path, &l);
    assert_eq!(broken_at(&path), 5);

    set_lines(&path, &good);
    assert_eq!(audit::verify(&path).unwrap().records, 6);
}

#[test]
fn records_hold_metadata_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"audit key");
    let log = AuditLog::open(&path, true, Some(key)).unwrap();
    let text = "Mr. John Smith, SSN 123-45-6789";
    let mut e = event(1);
    e.input_hmac = log.keyed_hash(text.as_bytes());
    e.input_len = text.len() as u64;
    log.record(e).unwrap();
    let raw = std::fs::read_to_string(&path).unwrap();
    assert!(!raw.contains("John") && !raw.contains("123-45-6789"));
    let rec: audit::AuditRecord = serde_json::from_str(raw.lines().next().unwrap()).unwrap();
    assert_eq!(rec.input_hmac.unwrap().len(), 64);
    assert_eq!(rec.entities[&PiiEntity::Person], 1);
}

/// Makes `path` unwritable even for root (which ignores file modes) and undoes it on drop.
#[cfg(unix)]
struct ReadOnly<'a>(&'a Path, bool);

#[cfg(unix)]
impl<'a> ReadOnly<'a> {
    fn new(path: &'a Path) -> Self {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444)).unwrap();
        let writable = || std::fs::OpenOptions::new().append(true).open(path).is_ok();
        let mut immutable = false;
        if writable() {
            // Running as root: the immutable attribute binds root too.
            let ok = std::process::Command::new("chattr")
                .arg("+i")
                .arg(path)
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "running as root and `chattr +i` failed: cannot make a read-only file"
            );
            immutable = true;
        }
        assert!(!writable());
        Self(path, immutable)
    }
}

#[cfg(unix)]
impl Drop for ReadOnly<'_> {
    fn drop(&mut self) {
        if self.1 {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(self.0)
                .status();
        }
    }
}

#[cfg(unix)]
#[test]
fn a_read_only_log_fails_closed_and_is_skipped_when_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 1);
    let _guard = ReadOnly::new(&path);
    let e = AuditLog::open(&path, true, None).err().unwrap();
    assert!(matches!(e, Error::AuditWrite { .. }), "{e}");
    assert!(e.to_string().contains("fail-closed"));
    // Fail-open: the operation goes on, the record is dropped with a warning.
    let log = AuditLog::open(&path, false, None).unwrap();
    log.record(event(2)).unwrap();
    assert_eq!(audit::verify(&path).unwrap().records, 1);
}

#[cfg(unix)]
#[test]
fn a_log_that_becomes_unwritable_refuses_the_next_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path, true, None).unwrap();
    log.record(event(0)).unwrap();
    let head = dir.path().join("audit.jsonl.head");
    let _guard = ReadOnly::new(&head);
    let e = log.record(event(1)).unwrap_err();
    assert!(matches!(e, Error::AuditWrite { .. }), "{e}");
}

/// A record with counts per page (a redaction) chains and verifies like any other; records
/// without them are written as before, so logs written before the field existed still verify.
#[test]
fn page_counts_are_kept_and_absent_where_there_are_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path, true, None).unwrap();
    log.record(event(1)).unwrap();
    let mut redaction = event(2);
    redaction.action = "redact".into();
    redaction.pages = vec![audit::PageCount {
        entity: "EMAIL".into(),
        page: 3,
        count: 2,
    }];
    log.record(redaction).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(!lines[0].contains("\"pages\""), "{}", lines[0]);
    assert!(
        lines[1].contains(r#""pages":[{"entity":"EMAIL","page":3,"count":2}]"#),
        "{}",
        lines[1]
    );
    assert_eq!(audit::verify(&path).unwrap().records, 2);
}
