//! Scrubbing policies, consistent numbering, risk, the rescan invariant, tokenize/restore
//! through the vault, and streaming with bad input.

use std::sync::{Arc, Mutex};

use bear_core::{PiiEntity, PiiScrubber, RiskLevel};
use bear_security::{Detector, Error, InvalidUtf8, PiiConfig, Policy, Scrubber, Session, Vault};
use ring::hmac;

pub(crate) fn scrubber(policy: Policy) -> Scrubber {
    let detector = Arc::new(Detector::new(&PiiConfig::default()).unwrap());
    let config = PiiConfig {
        default_policy: policy,
        ..PiiConfig::default()
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, b"test hash key, 32 bytes long....");
    let vault = Arc::new(Mutex::new(Vault::ephemeral().unwrap()));
    Scrubber::new(detector, config, key, Some(vault)).unwrap()
}

const LETTER: &str = "Dear Mr. John Smith, your SSN 123-45-6789 and card 4111 1111 1111 1111 \
    are on file. Mr. John Smith can be reached at +31 6 12345678 or john@smith.org.";

#[test]
fn replace_numbers_consistently_within_a_session() {
    let s = scrubber(Policy::Replace);
    let mut session = Session::new().unwrap();
    let out = s.scrub_with(LETTER, &mut session).unwrap();
    assert_eq!(
        out.text,
        "Dear Mr. [PERSON_1], your SSN [US_SSN_1] and card [CREDIT_CARD_1] are on file. \
         Mr. [PERSON_1] can be reached at [PHONE_1] or [EMAIL_1]."
    );
    assert_eq!(out.counts[&PiiEntity::Person], 2);
    assert_eq!(out.risk, RiskLevel::Critical);
    // The same session keeps numbering; a new person gets the next number.
    let more = s
        .scrub_with("Ms. Jane Roe met Mr. John Smith.", &mut session)
        .unwrap();
    assert_eq!(more.text, "Ms. [PERSON_2] met Mr. [PERSON_1].");
}

#[test]
fn every_policy_hides_the_value_and_rescans_clean() {
    for policy in [
        Policy::Replace,
        Policy::Mask,
        Policy::Hash,
        Policy::Redact,
        Policy::Tokenize,
    ] {
        let s = scrubber(policy);
        let out = s.scrub_with(LETTER, &mut Session::new().unwrap()).unwrap();
        for secret in [
            "John Smith",
            "123-45-6789",
            "4111 1111 1111 1111",
            "12345678",
            "john@",
        ] {
            assert!(
                !out.text.contains(secret),
                "{policy:?} leaked: {}",
                out.text
            );
        }
        assert!(
            s.detector().detect(&out.text).is_empty(),
            "{policy:?} rescan found {:?} in {}",
            s.detector().detect(&out.text),
            out.text
        );
    }
}

#[test]
fn mask_keeps_the_last_four_digits_of_numbers_only() {
    let s = scrubber(Policy::Mask);
    let out = s
        .scrub_with(
            "card 4111 1111 1111 1111 Mr. John Smith",
            &mut Session::new().unwrap(),
        )
        .unwrap();
    assert_eq!(out.text, "card **** **** **** 1111 Mr. **** *****");
}

#[test]
fn hash_is_keyed_stable_and_letters_only() {
    let s = scrubber(Policy::Hash);
    let a = s
        .scrub_with("SSN 123-45-6789", &mut Session::new().unwrap())
        .unwrap();
    let b = s
        .scrub_with("SSN 123-45-6789", &mut Session::new().unwrap())
        .unwrap();
    assert_eq!(a.text, b.text);
    let token = a
        .text
        .strip_prefix("SSN [US_SSN_hash_")
        .unwrap()
        .strip_suffix(']')
        .unwrap();
    assert_eq!(token.len(), 20);
    assert!(token.bytes().all(|c| (b'a'..=b'p').contains(&c)));
    // A different key gives a different hash: a plain hash of an SSN could be brute-forced.
    let other = Scrubber::new(
        Arc::new(Detector::new(&PiiConfig::default()).unwrap()),
        PiiConfig {
            default_policy: Policy::Hash,
            ..PiiConfig::default()
        },
        hmac::Key::new(hmac::HMAC_SHA256, b"another key"),
        None,
    )
    .unwrap();
    let c = other
        .scrub_with("SSN 123-45-6789", &mut Session::new().unwrap())
        .unwrap();
    assert_ne!(a.text, c.text);
}

#[test]
fn tokenize_then_restore_gives_back_the_original() {
    let s = scrubber(Policy::Tokenize);
    let out = s.scrub_with(LETTER, &mut Session::new().unwrap()).unwrap();
    assert!(out.text.contains("[PERSON_"));
    assert_eq!(s.restore(&out.text), LETTER);
    // Through the bear-core trait too, and tokens a model repeats in its answer restore.
    let outcome = PiiScrubber::scrub(&s, "Call Mr. John Smith now.").unwrap();
    let answer = format!("I will call {} tomorrow.", &outcome.text.expose()[9..]);
    let restored = PiiScrubber::restore(&s, &answer).unwrap();
    assert_eq!(restored, "I will call John Smith now. tomorrow.");
    // Unknown or malformed tokens stay as they are.
    assert_eq!(
        s.restore("[PERSON_abcdefghijkl] [X]"),
        "[PERSON_abcdefghijkl] [X]"
    );
}

#[test]
fn tokenize_needs_a_vault() {
    let e = Scrubber::new(
        Arc::new(Detector::new(&PiiConfig::default()).unwrap()),
        PiiConfig {
            default_policy: Policy::Tokenize,
            ..PiiConfig::default()
        },
        hmac::Key::new(hmac::HMAC_SHA256, b"k"),
        None,
    )
    .err()
    .unwrap();
    assert!(matches!(e, Error::Setting { .. }));
}

#[test]
fn per_entity_policies_and_risk_levels() {
    let detector = Arc::new(Detector::new(&PiiConfig::default()).unwrap());
    let mut config = PiiConfig::default();
    config.policies.insert("PHONE".into(), Policy::Mask);
    config.policies.insert("EMAIL".into(), Policy::Redact);
    let s = Scrubber::new(
        detector,
        config,
        hmac::Key::new(hmac::HMAC_SHA256, b"k"),
        None,
    )
    .unwrap();
    let out = s
        .scrub_with(
            "tel +31 6 12345678, mail a@b.nl",
            &mut Session::new().unwrap(),
        )
        .unwrap();
    assert_eq!(out.text, "tel +** * ****5678, mail [REDACTED]");
    assert_eq!(out.risk, RiskLevel::Medium);
    let low = s
        .scrub_with("see https://example.com", &mut Session::new().unwrap())
        .unwrap();
    assert_eq!(low.risk, RiskLevel::Low);
    let high = s
        .scrub_with("IBAN NL91ABNA0417164300", &mut Session::new().unwrap())
        .unwrap();
    assert_eq!(high.risk, RiskLevel::High);
    let none = s.scrub_with("", &mut Session::new().unwrap()).unwrap();
    assert_eq!(none.text, "");
    assert_eq!(none.risk, RiskLevel::Low);
}

#[test]
fn streams_large_inputs_in_chunks_with_consistent_numbering() {
    let s = scrubber(Policy::Replace);
    let line = "Mr. John Smith paid with 4111 1111 1111 1111 and prose follows here.\n";
    let input = line.repeat(40_000); // ~2.8 MB: several chunks
    let mut out = Vec::new();
    let report = s
        .scrub_stream(
            input.as_bytes(),
            &mut out,
            InvalidUtf8::Refuse,
            &mut Session::new().unwrap(),
        )
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(report.bytes_in, input.len() as u64);
    assert_eq!(report.counts[&PiiEntity::Person], 40_000);
    assert_eq!(
        out,
        "Mr. [PERSON_1] paid with [CREDIT_CARD_1] and prose follows here.\n".repeat(40_000)
    );
    // A huge single line (no newline at all) is split at whitespace.
    let one_line = "Mr. John Smith ".repeat(200_000);
    let mut out = Vec::new();
    s.scrub_stream(
        one_line.as_bytes(),
        &mut out,
        InvalidUtf8::Refuse,
        &mut Session::new().unwrap(),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Mr. [PERSON_1] ".repeat(200_000)
    );
}

#[test]
fn stream_bad_input_gets_typed_errors() {
    let s = scrubber(Policy::Replace);
    let mut out = Vec::new();
    let bad = b"Mr. John Smith \xff\xfe is here";
    let e = s
        .scrub_stream(
            &bad[..],
            &mut out,
            InvalidUtf8::Refuse,
            &mut Session::new().unwrap(),
        )
        .unwrap_err();
    assert!(matches!(e, Error::InvalidUtf8 { offset: 15 }), "{e}");
    assert!(out.is_empty(), "nothing is written for a refused chunk");
    let report = s
        .scrub_stream(
            &bad[..],
            &mut out,
            InvalidUtf8::Replace,
            &mut Session::new().unwrap(),
        )
        .unwrap();
    assert_eq!(report.replaced_invalid_utf8, 2);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Mr. [PERSON_1] \u{FFFD}\u{FFFD} is here"
    );
    let mut out = Vec::new();
    let e = s
        .scrub_stream(
            &b"text\0binary"[..],
            &mut out,
            InvalidUtf8::Replace,
            &mut Session::new().unwrap(),
        )
        .unwrap_err();
    assert!(matches!(e, Error::Binary { offset: 4 }));
    let mut out = Vec::new();
    let r = s
        .scrub_stream(
            &b""[..],
            &mut out,
            InvalidUtf8::Refuse,
            &mut Session::new().unwrap(),
        )
        .unwrap();
    assert_eq!(r.bytes_in, 0);
    assert!(out.is_empty());
}

/// Each matter tokenizes into its own vault file, sealed under the matter's key: a matter's
/// scrubber restores its own tokens; once its key is shredded its vault file opens for no one,
/// while another matter's still restores.
#[test]
fn each_matter_keeps_its_own_vault_and_shredding_one_leaves_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let mut ring = crate::crypto::key_file_ring(dir.path());
    ring.file_keys("a").unwrap();
    ring.file_keys("b").unwrap();
    let shared = dir.path().join("vault.bseal");
    let set =
        bear_security::PolicyScrubbers::new(&PiiConfig::default(), Some(ring), &shared).unwrap();
    let (va, vb) = (dir.path().join("a.vault"), dir.path().join("b.vault"));
    let a = set.tokenizer_for("a", &va).unwrap();
    let b = set.tokenizer_for("b", &vb).unwrap();
    let in_a = PiiScrubber::scrub(&*a, "Write to john@smith.org today.").unwrap();
    let in_b = PiiScrubber::scrub(&*b, "Call +31 6 12345678 now.").unwrap();
    let (ta, tb) = (in_a.text.expose().clone(), in_b.text.expose().clone());
    assert!(!ta.contains("john@smith.org") && !tb.contains("12345678"));
    set.persist().unwrap();
    assert!(va.is_file() && vb.is_file());
    assert!(!shared.exists(), "nothing went to the shared vault");
    for (file, secret) in [(&va, "john@smith.org"), (&vb, "12345678")] {
        let bytes = std::fs::read(file).unwrap();
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
    assert_eq!(a.restore(&ta), "Write to john@smith.org today.");
    assert_eq!(b.restore(&tb), "Call +31 6 12345678 now.");
    assert_eq!(
        a.restore(&tb),
        tb,
        "a matter does not restore another's tokens"
    );

    assert!(set.shred("a").unwrap());
    let ring = bear_security::Keyring::open(
        &dir.path().join("keyring.json"),
        bear_security::KeySource::KeyFile(dir.path().join("master.key")),
    )
    .unwrap();
    assert!(matches!(
        Vault::load_in(&va, &ring, "a"),
        Err(Error::NoDataKey { .. })
    ));
    let b_again = Vault::load_in(&vb, &ring, "b").unwrap();
    assert_eq!(b_again.restore(&tb), "Call +31 6 12345678 now.");
}

/// Tokens a matter made in the shared vault (before matters had their own) move to the
/// matter's vault: it restores them, the shared vault's file no longer holds them, and a
/// second run finds nothing left to move.
#[test]
fn a_matters_tokens_move_from_the_shared_vault_to_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut ring = crate::crypto::key_file_ring(dir.path());
    ring.file_keys("a").unwrap();
    let shared = dir.path().join("vault.bseal");
    let set =
        bear_security::PolicyScrubbers::new(&PiiConfig::default(), Some(ring), &shared).unwrap();
    let old = set.get(Policy::Tokenize).unwrap();
    let stored = PiiScrubber::scrub(&*old, "Write to john@smith.org today.").unwrap();
    let other = PiiScrubber::scrub(&*old, "Call +31 6 12345678 now.").unwrap();
    let (stored, other) = (stored.text.expose().clone(), other.text.expose().clone());
    set.persist().unwrap();

    let own = dir.path().join("a.vault");
    assert_eq!(
        set.adopt_shared_tokens("a", &own, [stored.as_str()])
            .unwrap(),
        1
    );
    assert_eq!(
        set.adopt_shared_tokens("a", &own, [stored.as_str()])
            .unwrap(),
        0
    );
    let a = set.tokenizer_for("a", &own).unwrap();
    assert_eq!(a.restore(&stored), "Write to john@smith.org today.");

    let ring = bear_security::Keyring::open(
        &dir.path().join("keyring.json"),
        bear_security::KeySource::KeyFile(dir.path().join("master.key")),
    )
    .unwrap();
    let left = Vault::load(&shared, &ring).unwrap();
    assert_eq!(
        left.restore(&stored),
        stored,
        "no longer in the shared vault"
    );
    assert_eq!(
        left.restore(&other),
        "Call +31 6 12345678 now.",
        "others stay"
    );
    let moved = Vault::load_in(&own, &ring, "a").unwrap();
    assert_eq!(moved.restore(&stored), "Write to john@smith.org today.");
}
