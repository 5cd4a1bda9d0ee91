//! Property tests: scrub then rescan finds nothing; tokenize then restore is the identity;
//! seal then open round-trips; any flipped byte is detected; the detector never panics.

use proptest::prelude::*;

use bear_security::{Policy, Session, crypto};

/// Text made of prose, separators and real-looking PII, in random order.
fn pii_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("Mr. John Smith".to_string()),
        Just("jane@example.org".to_string()),
        Just("123-45-6789".to_string()),
        Just("4111 1111 1111 1111".to_string()),
        Just("NL91 ABNA 0417 1643 00".to_string()),
        Just("+31 6 12345678".to_string()),
        Just("(415) 555-2671".to_string()),
        Just("192.168.1.20".to_string()),
        Just("BSN 111222333".to_string()),
        Just("born 01/02/1980".to_string()),
        Just("counsel for Acme Holdings B.V.".to_string()),
        "[a-zA-Z ]{0,12}",
        "[0-9 .\\-]{0,10}",
        "[\\PC]{0,6}",
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn scrub_then_rescan_finds_nothing(text in pii_text(), policy in prop_oneof![
        Just(Policy::Replace), Just(Policy::Mask), Just(Policy::Hash),
        Just(Policy::Redact), Just(Policy::Tokenize)
    ]) {
        let s = crate::scrub::scrubber(policy);
        let out = s.scrub_with(&text, &mut Session::new().unwrap()).unwrap();
        let again = s.detector().detect(&out.text);
        prop_assert!(again.is_empty(), "{:?} left {:?} in {:?}", policy, again, out.text);
    }

    #[test]
    fn tokenize_then_restore_is_identity(text in pii_text()) {
        let s = crate::scrub::scrubber(Policy::Tokenize);
        let out = s.scrub_with(&text, &mut Session::new().unwrap()).unwrap();
        prop_assert_eq!(s.restore(&out.text), text);
    }

    #[test]
    fn detector_spans_are_valid_on_any_text(text in "\\PC{0,200}") {
        let d = bear_security::Detector::new(&bear_security::PiiConfig::default()).unwrap();
        let mut end = 0;
        for f in d.detect(&text) {
            prop_assert!(f.start >= end && f.start < f.end && f.end <= text.len());
            prop_assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
            prop_assert_eq!(text[..f.start].chars().count(), f.char_start);
            prop_assert_eq!(text[..f.end].chars().count(), f.char_end);
            end = f.end;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn seal_round_trips_and_any_flipped_byte_is_detected(
        records in prop::collection::vec(("[a-z0-9-]{1,12}", prop::collection::vec(any::<u8>(), 0..200)), 0..6),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut ring = crate::crypto::key_file_ring(dir.path());
        let path = dir.path().join("p.bseal");
        crypto::write_sealed(&path, &mut ring, "p", records.iter().map(|(a, b)| (a.as_str(), b.as_slice()))).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let back = crypto::parse_sealed(&bytes, &path, &ring, "p").unwrap();
        prop_assert_eq!(back.len(), records.len());
        for ((id, plain), (id2, data)) in back.iter().zip(&records) {
            prop_assert_eq!(id, id2);
            prop_assert_eq!(plain.expose(), data.as_slice());
        }
        let mut bad = bytes.clone();
        let i = flip.index(bad.len());
        bad[i] ^= 1 << bit;
        prop_assert!(crypto::parse_sealed(&bad, &path, &ring, "p").is_err());
    }
}

/// A segmented file's keys, from a fresh key-file keyring in `dir`.
fn file_keys(dir: &std::path::Path) -> bear_security::FileKeys {
    crate::crypto::key_file_ring(dir).file_keys("m").unwrap()
}

/// Plaintext up to a few segments long, often ending on a segment boundary.
fn segmented_plain() -> impl Strategy<Value = Vec<u8>> {
    let seg = crypto::segment::SEGMENT as usize;
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..3 * seg + 100),
        (1usize..4).prop_map(move |n| (0..n * seg).map(|i| (i * 31) as u8).collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn segmented_range_reads_equal_the_plaintext(plain in segmented_plain(), a in any::<u64>(), b in any::<u64>()) {
        use crypto::segment::{open_segments_in, sealed_range, seal_file};
        let dir = tempfile::tempdir().unwrap();
        let keys = file_keys(dir.path());
        let sealed = seal_file(&keys, "t/f.lance", &plain).unwrap();
        let len = plain.len() as u64;
        prop_assume!(len > 0);
        let (s, e) = (a % len, b % len);
        let range = s.min(e)..s.max(e) + 1;
        let (segs, bytes) = sealed_range(&range, len);
        let got = open_segments_in(&keys, "t/f.lance", &sealed, segs.start, &sealed[bytes.start as usize..bytes.end as usize], len).unwrap();
        let off = (range.start - segs.start * crypto::segment::SEGMENT) as usize;
        prop_assert_eq!(&got[off..off + (range.end - range.start) as usize], &plain[range.start as usize..range.end as usize]);
    }

    #[test]
    fn any_corruption_of_a_segmented_file_is_detected(
        plain in segmented_plain(),
        at in any::<usize>(),
        flip in 1u8..=255,
        kind in 0u8..3,
    ) {
        use crypto::segment::{open_file, seal_file, HEADER_LEN, SEGMENT, TAG_LEN};
        let dir = tempfile::tempdir().unwrap();
        let keys = file_keys(dir.path());
        let sealed = seal_file(&keys, "t/f.lance", &plain).unwrap();
        let mut bad = sealed.clone();
        match kind {
            // One flipped byte anywhere.
            0 => { let i = at % bad.len(); bad[i] ^= flip; }
            // Cut short anywhere (also on a segment boundary).
            1 => { bad.truncate(at % bad.len()); }
            // Two segments swapped (needs two full ones), else the last segment dropped.
            _ => {
                let seg = (SEGMENT + TAG_LEN) as usize;
                let body = HEADER_LEN as usize;
                if bad.len() >= body + 2 * seg {
                    let (x, y) = bad[body..body + 2 * seg].split_at_mut(seg);
                    x.swap_with_slice(y);
                } else {
                    bad.truncate(body);
                }
            }
        }
        prop_assume!(bad != sealed);
        let r = open_file(&keys, "t/f.lance", &bad);
        prop_assert!(matches!(r, Err(bear_security::Error::Integrity { .. })), "{:?}", r.map(|p| p.len()));
    }
}
