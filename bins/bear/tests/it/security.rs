//! `bear pii detect`, `scrub`, `restore`, `audit verify` and `keys` as a user runs them: real
//! process, temporary data directory, files and stdin.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::{stderr, stdout};

const DOC: &str = "Client: Mr. John Smith (SSN 123-45-6789)\n\
                   Card 4111 1111 1111 1111, phone +31 6 12345678.\n\
                   Mr. John Smith wrote to john@smith.org.\n";

/// A private BEAR home: data and config directories in a temp dir, and an empty working
/// directory (`work`) that commands run in.
pub(crate) struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("work")).unwrap();
        Self { dir }
    }

    pub(crate) fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub(crate) fn run(&self, args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bear"));
        cmd.args(args)
            .current_dir(self.path("work"))
            .env_remove("BEAR_CONFIG")
            .env_remove("BEAR_LOG")
            .env_remove("BEAR_PASSPHRASE")
            .env("BEAR_DATA_DIR", self.path("data"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            // A command that fails before reading stdin closes it: that is not a test failure.
            let _ = child.stdin.take().unwrap().write_all(input);
        }
        child.wait_with_output().unwrap()
    }

    /// Starts `bear` in this home without waiting: stdout discarded, stderr piped (for tests
    /// that watch a long command and kill it or control it from another process).
    pub(crate) fn spawn(&self, args: &[&str]) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_bear"))
            .args(args)
            .current_dir(self.path("work"))
            .env_remove("BEAR_CONFIG")
            .env_remove("BEAR_LOG")
            .env_remove("BEAR_PASSPHRASE")
            .env("BEAR_DATA_DIR", self.path("data"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub(crate) fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn audit_log(&self) -> PathBuf {
        self.path("data/audit/audit.jsonl")
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn pii_detect_reports_positions_not_values() {
    let h = Home::new();
    let doc = h.write("doc.txt", DOC.as_bytes());
    let o = h.run(&["pii", "detect", s(&doc), "--json"], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let f = v["findings"].as_array().unwrap();
    let kinds: Vec<&str> = f.iter().map(|x| x["entity"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "PERSON",
            "US_SSN",
            "CREDIT_CARD",
            "PHONE",
            "PERSON",
            "EMAIL"
        ]
    );
    assert_eq!(
        (f[2]["line"].as_u64(), f[2]["column"].as_u64()),
        (Some(2), Some(6))
    );
    assert_eq!(f[5]["line"], 3);
    assert_eq!(v["risk"], "critical");
    assert!(
        !stdout(&o).contains("John"),
        "values only with --show-values"
    );
    let shown = h.run(
        &["pii", "detect", "-", "--show-values"],
        Some(DOC.as_bytes()),
        &[],
    );
    assert!(shown.status.success());
    assert!(stdout(&shown).contains("2:6\tCREDIT_CARD\t1.00\tcredit_card\t4111 1111 1111 1111"));
}

#[test]
fn scrub_streams_to_stdout_or_a_file_and_is_audited() {
    let h = Home::new();
    let doc = h.write("doc.txt", DOC.as_bytes());
    let o = h.run(&["scrub", s(&doc)], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "Client: Mr. [PERSON_1] (SSN [US_SSN_1])\nCard [CREDIT_CARD_1], phone [PHONE_1].\n\
         Mr. [PERSON_1] wrote to [EMAIL_1].\n"
    );
    let out = h.path("clean.txt");
    let o = h.run(
        &["scrub", "-", "--policy", "mask", "-o", s(&out), "--json"],
        Some(DOC.as_bytes()),
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["counts"]["PERSON"], 2);
    assert_eq!(report["risk"], "critical");
    let masked = std::fs::read_to_string(&out).unwrap();
    assert!(masked.contains("**** **** **** 1111") && !masked.contains("Smith"));
    // Both runs left metadata-only records on a valid chain.
    let log = std::fs::read_to_string(h.audit_log()).unwrap();
    assert_eq!(log.lines().count(), 2);
    assert!(!log.contains("Smith") && !log.contains("123-45-6789") && !log.contains("john@"));
    let v = h.run(&["audit", "verify"], None, &[]);
    assert!(v.status.success(), "{}", stderr(&v));
    assert!(stdout(&v).starts_with("ok: 2 record(s)"));
}

#[test]
fn tokenize_and_restore_round_trip_with_a_key_file() {
    let h = Home::new();
    let kf = h.path("master.key");
    let o = h.run(&["keys", "init", "--key-file", s(&kf)], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc = h.write("doc.txt", DOC.as_bytes());
    let scrubbed = h.path("scrubbed.txt");
    let o = h.run(
        &[
            "scrub",
            s(&doc),
            "--policy",
            "tokenize",
            "--key-file",
            s(&kf),
            "-o",
            s(&scrubbed),
        ],
        None,
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&scrubbed).unwrap();
    assert!(text.contains("[PERSON_") && !text.contains("Smith"));
    // The vault on disk is ciphertext.
    let vault = std::fs::read(h.path("data/keys/vault.bseal")).unwrap();
    assert!(!vault.windows(5).any(|w| w == b"Smith"));
    let o = h.run(&["restore", s(&scrubbed), "--key-file", s(&kf)], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), DOC);
    // Without the key there is nothing to restore with.
    let other = h.path("other.key");
    let o = h.run(&["keys", "status", "--key-file", s(&other)], None, &[]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
}

#[test]
fn passphrase_keyring_status_rotation_and_wrong_passphrase() {
    let h = Home::new();
    let pass = [("BEAR_PASSPHRASE", "correct horse battery staple")];
    let o = h.run(&["keys", "init", "--json"], None, &pass);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["master_key_source"], "passphrase");
    assert_eq!(v["pbkdf2_iterations"], 600_000);
    // Initialising twice is refused.
    assert_eq!(h.run(&["keys", "init"], None, &pass).status.code(), Some(3));
    let o = h.run(&["keys", "rotate", "--collection", "matters"], None, &pass);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("collection  matters: key 1"));
    let o = h.run(
        &["keys", "status"],
        None,
        &[("BEAR_PASSPHRASE", "wrong passphrase")],
    );
    assert_eq!(o.status.code(), Some(6));
    assert!(stderr(&o).contains("wrong passphrase or key"));
    assert!(!stderr(&o).contains("wrong passphrase\""));
    // No terminal and no BEAR_PASSPHRASE: a clear error, not a hang.
    let o = h.run(&["keys", "status"], None, &[]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("BEAR_PASSPHRASE"), "{}", stderr(&o));
}

#[test]
fn bad_input_gets_typed_errors_and_no_partial_output() {
    let h = Home::new();
    let out = h.path("out.txt");
    let binary = h.write("bin.dat", b"PK\x03\x04\x00\x00 binary");
    let o = h.run(&["scrub", s(&binary), "-o", s(&out)], None, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("binary"));
    assert!(!out.exists());
    // Invalid UTF-8 late in a large file: refused before anything is written...
    let mut big = "Mr. John Smith said hello.\n".repeat(100_000).into_bytes();
    big.extend_from_slice(b"\xff\xfe tail\n");
    let bad = h.write("bad.txt", &big);
    let o = h.run(&["scrub", s(&bad)], None, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&format!("byte {}", big.len() - 8)),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty(), "no partial output");
    // ...or scrubbed around when asked.
    let o = h.run(
        &["scrub", s(&bad), "--invalid-utf8", "replace", "-o", s(&out)],
        None,
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .ends_with("\u{FFFD}\u{FFFD} tail\n")
    );
    // Empty input is fine and empty.
    let o = h.run(&["scrub", "-"], Some(b""), &[]);
    assert!(o.status.success());
    assert!(o.stdout.is_empty());
    // A missing file is "not found".
    assert_eq!(
        h.run(&["scrub", "/nonexistent/x"], None, &[]).status.code(),
        Some(4)
    );
    // A malformed custom pattern in the config names the pattern, not its text.
    std::fs::create_dir_all(h.path("config/bear")).unwrap();
    h.write(
        "config/bear/config.toml",
        b"[[pii.patterns]]\nname = \"MATTER\"\npattern = \"(M-[0-9]+\"\n",
    );
    let o = h.run(&["pii", "detect", "-"], Some(b"x"), &[]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("`MATTER`") && !stderr(&o).contains("(M-"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_tampered_audit_log_fails_verification_naming_the_line() {
    let h = Home::new();
    for _ in 0..3 {
        assert!(
            h.run(&["scrub", "-"], Some(DOC.as_bytes()), &[])
                .status
                .success()
        );
    }
    let log = h.audit_log();
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(1);
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let o = h.run(&["audit", "verify", s(&log), "--json"], None, &[]);
    assert_eq!(o.status.code(), Some(6));
    assert!(stderr(&o).contains("line 2"), "{}", stderr(&o));
}

#[test]
fn api_keys_are_shown_once_and_revocable() {
    let h = Home::new();
    let o = h.run(
        &[
            "keys",
            "api-create",
            "--role",
            "read-only",
            "--label",
            "ci",
            "--json",
        ],
        None,
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let key = v["key"].as_str().unwrap();
    let id = v["record"]["id"].as_str().unwrap();
    let list = h.run(&["keys", "api-list"], None, &[]);
    assert!(stdout(&list).contains(id) && !stdout(&list).contains(&key[5..]));
    let store = std::fs::read_to_string(h.path("data/keys/api-keys.json")).unwrap();
    assert!(!store.contains(&key[5..]));
    assert!(
        h.run(&["keys", "api-revoke", id], None, &[])
            .status
            .success()
    );
    // A key that is no longer there is not found (REST's 404 for the same request).
    assert_eq!(
        h.run(&["keys", "api-revoke", id], None, &[]).status.code(),
        Some(4)
    );
}

#[cfg(unix)]
#[test]
fn an_unwritable_audit_log_stops_scrub_before_any_output() {
    use std::os::unix::fs::PermissionsExt;
    let h = Home::new();
    assert!(h.run(&["scrub", "-"], Some(b"x"), &[]).status.success());
    let log = h.audit_log();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o444)).unwrap();
    // Root ignores modes; the immutable attribute binds root too.
    let root = std::fs::OpenOptions::new().append(true).open(&log).is_ok();
    if root {
        let ok = Command::new("chattr").arg("+i").arg(&log).status();
        assert!(
            ok.is_ok_and(|s| s.success()),
            "cannot make the audit log read-only"
        );
    }
    let out = h.path("out.txt");
    let o = h.run(&["scrub", "-", "-o", s(&out)], Some(DOC.as_bytes()), &[]);
    if root {
        let _ = Command::new("chattr").arg("-i").arg(&log).status();
    }
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("fail-closed"), "{}", stderr(&o));
    assert!(!out.exists(), "no output without its audit record");
    // Fail-open by configuration: the scrub goes on.
    std::fs::create_dir_all(h.path("config/bear")).unwrap();
    h.write(
        "config/bear/config.toml",
        b"[security]\naudit_fail_closed = false\n",
    );
    if root {
        let _ = Command::new("chattr").arg("+i").arg(&log).status();
    }
    let o = h.run(&["scrub", "-", "-o", s(&out)], Some(DOC.as_bytes()), &[]);
    if root {
        let _ = Command::new("chattr").arg("-i").arg(&log).status();
    }
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.exists());
}

#[test]
fn keys_create_prints_a_key_once_and_bear_server_starts_through_bear() {
    let h = Home::new();
    let o = h.run(&["keys", "create", "--role", "admin"], None, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout.clone()).unwrap();
    assert!(out.contains("bear_"), "{out}");
    let o = h.run(&["keys", "api-list"], None, &[]);
    let listed = String::from_utf8(o.stdout.clone()).unwrap();
    assert!(
        listed.to_lowercase().contains("admin") && !listed.contains("bear_"),
        "{listed}"
    );

    // `bear server` runs bear-server (built next to bear by the workspace build).
    let mut child = h.spawn(&["server", "--bind", "127.0.0.1:0"]);
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("bear-server listening on http://")
                .map(str::to_owned)
        })
        .expect("bear server never listened");
    // SIGTERM to the process the user started stops the server itself, gracefully.
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l == "bear-server stopped"), "{rest:?}");
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "nothing listens on {addr} any more"
    );
}

/// `bear redact` as a lawyer runs it: a PDF and a DOCX out with every value gone (checked with
/// poppler's pdftotext and the DOCX's XML), the log in the audit trail without a value, and a
/// file that cannot be redacted with certainty refused with nothing written.
#[test]
fn redact_writes_copies_without_the_values_and_audits_the_log() {
    let h = Home::new();
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/bear-rag/tests/fixtures");
    let terms = h.write("terms.txt", b"Project Falcon\n\nJan de Vries\n");
    let out = h.path("letter-redacted.pdf");
    let pdf = fixtures.join("letter.pdf");
    let o = h.run(
        &[
            "redact",
            s(&pdf),
            "-o",
            s(&out),
            "--terms-file",
            s(&terms),
            "--json",
        ],
        None,
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(report["removed"].as_u64().unwrap() >= 6, "{report}");
    let text = Command::new("pdftotext")
        .arg(&out)
        .arg("-")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    for value in [
        "Jan de Vries",
        "jan.devries@example.nl",
        "NL91 ABNA",
        "Project Falcon",
    ] {
        assert!(!text.contains(value), "`{value}` is left in: {text}");
    }
    assert!(
        text.contains("The parties agree to settle the claim"),
        "{text}"
    );

    // Terms only, blank style, a DOCX.
    let docx_out = h.path("letter-redacted.docx");
    let o = h.run(
        &[
            "redact",
            s(&fixtures.join("letter.docx")),
            "-o",
            s(&docx_out),
            "--term",
            "Reviewed by counsel",
            "--terms-only",
            "--policy",
            "blank",
        ],
        None,
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("removed 1 value(s)"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("1 x TERM"), "{}", stdout(&o));

    // A refused file: no output, a reason, an audit record all the same.
    let bad = h.write("scan.pdf", b"%PDF-1.7 not really");
    let never = h.path("never.pdf");
    let o = h.run(&["redact", s(&bad), "-o", s(&never)], None, &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("malformed"), "{}", stderr(&o));
    assert!(!never.exists());
    let pdf_arg = s(&pdf);
    let o = h.run(
        &[
            "redact",
            pdf_arg,
            "-o",
            s(&never),
            "--entities",
            "EMAIL,EMIAL",
        ],
        None,
        &[],
    );
    assert!(
        stderr(&o).contains("unknown PII type `EMIAL`"),
        "{}",
        stderr(&o)
    );
    assert!(!never.exists());
    let o = h.run(&["redact", s(&terms), "-o", s(&never)], None, &[]);
    assert!(stderr(&o).contains(".pdf and .docx"), "{}", stderr(&o));

    let log = std::fs::read_to_string(h.audit_log()).unwrap();
    let records: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3, "{log}");
    assert_eq!(records[0]["action"], "redact");
    assert_eq!(records[0]["entities"]["EMAIL"], 1);
    let pages = records[0]["pages"].as_array().unwrap();
    assert!(
        pages
            .iter()
            .any(|p| p["entity"] == "TERM" && p["page"] == 2),
        "{log}"
    );
    assert_eq!(records[2]["outcome"], "refused");
    for value in ["Vries", "devries", "NL91", "Falcon", "Reviewed"] {
        assert!(!log.contains(value), "the audit log holds `{value}`");
    }
    let v = h.run(&["audit", "verify"], None, &[]);
    assert!(v.status.success(), "{}", stderr(&v));
}
