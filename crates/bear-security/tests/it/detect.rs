//! Table-driven detection tests: positives and negatives per entity type, phone formats per
//! country, evasion, context, overlaps, custom patterns and bad configuration.

use bear_core::PiiEntity;
use bear_security::{CustomPattern, DenyList, Detector, Error, PiiConfig};

fn detector() -> Detector {
    Detector::new(&PiiConfig::default()).unwrap()
}

/// The (entity, matched text) pairs found in `text`.
fn found(d: &Detector, text: &str) -> Vec<(PiiEntity, String)> {
    d.detect(text)
        .into_iter()
        .map(|f| (f.entity, text[f.start..f.end].to_string()))
        .collect()
}

#[track_caller]
fn assert_finds(d: &Detector, text: &str, entity: PiiEntity, value: &str) {
    let got = found(d, text);
    assert!(
        got.iter().any(|(e, v)| *e == entity && v == value),
        "expected {entity:?} {value:?} in {text:?}, got {got:?}"
    );
}

#[track_caller]
fn assert_none_of(d: &Detector, text: &str, entity: PiiEntity) {
    let got = found(d, text);
    assert!(
        !got.iter().any(|(e, _)| *e == entity),
        "expected no {entity:?} in {text:?}, got {got:?}"
    );
}

#[test]
fn positives_per_entity_type() {
    use PiiEntity::*;
    let d = detector();
    let cases: &[(PiiEntity, &str, &str)] = &[
        (
            Email,
            "Write to jane.doe+legal@example-firm.co.uk today.",
            "jane.doe+legal@example-firm.co.uk",
        ),
        (Email, "mail: J_Smith@law.nl", "J_Smith@law.nl"),
        (UsSsn, "SSN 123-45-6789 on file", "123-45-6789"),
        (UsSsn, "social security number: 536228871", "536228871"),
        (
            CreditCard,
            "card 4111 1111 1111 1111 exp 12/29",
            "4111 1111 1111 1111",
        ),
        (CreditCard, "Amex 3782-822463-10005.", "3782-822463-10005"),
        (CreditCard, "paid with 5555555555554444", "5555555555554444"),
        (CreditCard, "Discover 6011111111111117", "6011111111111117"),
        (
            Iban,
            "IBAN NL91 ABNA 0417 1643 00, please",
            "NL91 ABNA 0417 1643 00",
        ),
        (
            Iban,
            "Konto DE89370400440532013000",
            "DE89370400440532013000",
        ),
        (
            Iban,
            "GB82 WEST 1234 5698 7654 32",
            "GB82 WEST 1234 5698 7654 32",
        ),
        (
            Iban,
            "FR1420041010050500013M02606",
            "FR1420041010050500013M02606",
        ),
        (IpAddress, "from 192.168.10.254 at noon", "192.168.10.254"),
        (
            IpAddress,
            "host 2001:db8:85a3::8a2e:370:7334 responded",
            "2001:db8:85a3::8a2e:370:7334",
        ),
        (IpAddress, "loopback ::1 only", "::1"),
        (
            Url,
            "See https://example.com/case?id=4.",
            "https://example.com/case?id=4",
        ),
        (
            Url,
            "visit www.rechtspraak.nl for more",
            "www.rechtspraak.nl",
        ),
        (MacAddress, "NIC 00:1A:2B:3C:4D:5E up", "00:1A:2B:3C:4D:5E"),
        (MacAddress, "NIC 00-1a-2b-3c-4d-5e up", "00-1a-2b-3c-4d-5e"),
        (
            Crypto,
            "send to 1BoatSLRHtKNngkdXEeobR76b53LETtpyT now",
            "1BoatSLRHtKNngkdXEeobR76b53LETtpyT",
        ),
        (
            Crypto,
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4 wallet",
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        ),
        (DateOfBirth, "born on 14/03/1979 in Leeds", "14/03/1979"),
        (DateOfBirth, "Date of birth: 1985-07-21", "1985-07-21"),
        (DateOfBirth, "DOB March 5, 1990", "March 5, 1990"),
        (DateOfBirth, "geboren op 3 mei 1968", "3 mei 1968"),
        (NlBsn, "BSN 111222333", "111222333"),
        (NlBsn, "burgerservicenummer 1112.22.333", "1112.22.333"),
        (NlRsin, "RSIN 111222333", "111222333"),
        (UkNino, "NI number AB 12 34 56 C", "AB 12 34 56 C"),
        (UkNino, "national insurance JG103759A", "JG103759A"),
        (Ecli, "see ECLI:NL:HR:2019:1234.", "ECLI:NL:HR:2019:1234"),
        (Ecli, "ECLI:EU:C:2014:317 held", "ECLI:EU:C:2014:317"),
        (Person, "Mr. John Smith signed", "John Smith"),
        (
            Person,
            "Dr. Ana María de la Cruz testified",
            "Ana María de la Cruz",
        ),
        (
            Person,
            "the plaintiff, Jane O'Brien, argued",
            "Jane O'Brien",
        ),
        (
            Person,
            "represented by Pieter van den Berg at trial",
            "Pieter van den Berg",
        ),
        (Person, "Herr Müller kam", "Müller"),
        (
            Organization,
            "counsel for Acme Holdings B.V. said",
            "Acme Holdings B.V.",
        ),
        (
            Organization,
            "a contract with Smith & Jones LLP for",
            "Smith & Jones LLP",
        ),
        (
            Organization,
            "The Globex Corporation agreed",
            "Globex Corporation",
        ),
        (Organization, "Müller Bau GmbH liefert", "Müller Bau GmbH"),
    ];
    for (entity, text, value) in cases {
        assert_finds(&d, text, entity.clone(), value);
    }
}

#[test]
fn phone_formats_per_country() {
    let d = detector();
    let cases: &[(&str, &str)] = &[
        // International and E.164.
        ("call +14155552671 today", "+14155552671"),
        ("tel +44 20 7946 0958.", "+44 20 7946 0958"),
        ("+44 (0)20 7946 0958 office", "+44 (0)20 7946 0958"),
        ("mobile +31 6 12345678", "+31 6 12345678"),
        ("+49 30 12345678 Berlin", "+49 30 12345678"),
        ("+33 1 23 45 67 89 Paris", "+33 1 23 45 67 89"),
        ("0031 20 123 4567 Amsterdam", "0031 20 123 4567"),
        // United States.
        ("Call (415) 555-2671 now", "(415) 555-2671"),
        ("phone 415-555-2671", "415-555-2671"),
        ("at 415.555.2671 or", "415.555.2671"),
        ("dial 1-415-555-2671", "1-415-555-2671"),
        // United Kingdom.
        ("ring 020 7946 0958 today", "020 7946 0958"),
        ("mobile 07700 900123", "07700 900123"),
        ("Manchester 0161 496 0000", "0161 496 0000"),
        // Germany.
        ("Tel. 030 12345678", "030 12345678"),
        ("Handy 0171 1234567", "0171 1234567"),
        ("Telefon (089) 1234 5678", "(089) 1234 5678"),
        ("Telefon 089/12345678", "089/12345678"),
        // France.
        ("téléphone 01 23 45 67 89", "01 23 45 67 89"),
        ("portable 06.12.34.56.78", "06.12.34.56.78"),
        // Netherlands.
        ("bel 020-1234567", "020-1234567"),
        ("mobiel 06-12345678", "06-12345678"),
        ("kantoor 010 123 4567", "010 123 4567"),
    ];
    for (text, value) in cases {
        assert_finds(&d, text, PiiEntity::Phone, value);
    }
}

#[test]
fn negatives_checksums_ranges_and_context() {
    use PiiEntity::*;
    let d = detector();
    let cases: &[(PiiEntity, &str)] = &[
        // Luhn failures and numbers outside the IIN ranges.
        (CreditCard, "card 4111 1111 1111 1112"),
        (CreditCard, "ref 1234 5678 9012 3456"),
        (CreditCard, "card 4111-1111 1111-1111"),
        // SSA-invalid SSNs.
        (UsSsn, "SSN 000-12-3456"),
        (UsSsn, "SSN 666-12-3456"),
        (UsSsn, "SSN 912-34-5678"),
        (UsSsn, "SSN 123-00-4567"),
        (UsSsn, "SSN 123-45-0000"),
        // IBANs with a bad check or the wrong length for their country.
        (Iban, "IBAN NL91 ABNA 0417 1643 01"),
        (Iban, "IBAN NL91ABNA04171643001"),
        (Iban, "IBAN XX91ABNA0417164300"),
        // 11-proof failures.
        (NlBsn, "BSN 111222334"),
        (NlRsin, "RSIN 123456789"),
        // Not IP addresses.
        (IpAddress, "version 300.1.1.1"),
        (IpAddress, "at 12:30:45 precisely"),
        // Bad checksums.
        (Crypto, "1BoatSLRHtKNngkdXEeobR76b53LETtpyU"),
        (Crypto, "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5"),
        // A date without birth context is not a date of birth; impossible dates never are.
        (DateOfBirth, "The hearing on 14/03/2019 was adjourned."),
        (DateOfBirth, "born 31/02/1980"),
        // NINO prefixes HMRC never issues.
        (UkNino, "NINO GB 12 34 56 A"),
        (UkNino, "NINO QQ 12 34 56 A"),
        // Short numbers, years and amounts are not phones.
        (Phone, "In 2019 the court awarded 150000 euros."),
        (Phone, "section 12.3.4 of the code"),
        // Words that merely look like context.
        (Person, "The defendant shall pay costs."),
        (Organization, "The Company shall"),
        (Email, "user at example dot com"),
    ];
    for (entity, text) in cases {
        assert_none_of(&d, text, entity.clone());
    }
    assert!(d.detect("").is_empty());
    assert!(
        d.detect("Nothing personal in this sentence at all.")
            .is_empty()
    );
}

#[test]
fn context_words_raise_scores() {
    let d = detector();
    let plain = d.detect("ref 020 7946 0958");
    let ctx = d.detect("phone 020 7946 0958");
    assert_eq!(plain.len(), 1);
    assert_eq!(ctx.len(), 1);
    assert!(ctx[0].score > plain[0].score);
    // `tel` inside `hotel` is not context.
    let hotel = d.detect("hotel 020 7946 0958");
    assert_eq!(hotel[0].score, plain[0].score);
    // A bare 11-proof number is below the default threshold without context.
    assert!(d.detect("number 111222333").is_empty());
    let low = Detector::new(&PiiConfig {
        min_score: 0.3,
        ..PiiConfig::default()
    })
    .unwrap();
    assert_eq!(low.detect("number 111222333")[0].entity, PiiEntity::NlBsn);
}

#[test]
fn sees_through_evasion_and_reports_original_spans() {
    let d = detector();
    // Full-width digits, zero-width spaces and no-break spaces.
    let text = "SSN \u{FF11}\u{FF12}\u{FF13}-45-67\u{200B}89 and card 4111\u{00A0}1111\u{00A0}1111\u{00A0}1111 é";
    let f = d.detect(text);
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!(f[0].entity, PiiEntity::UsSsn);
    assert_eq!(
        &text[f[0].start..f[0].end],
        "\u{FF11}\u{FF12}\u{FF13}-45-67\u{200B}89"
    );
    assert_eq!(f[0].char_start, 4);
    assert_eq!(f[0].char_end, 4 + 12);
    assert_eq!(f[1].entity, PiiEntity::CreditCard);
    assert_eq!(
        &text[f[1].start..f[1].end],
        "4111\u{00A0}1111\u{00A0}1111\u{00A0}1111"
    );
    let chars: Vec<char> = text.chars().collect();
    let by_chars: String = chars[f[1].char_start..f[1].char_end].iter().collect();
    assert_eq!(by_chars, "4111\u{00A0}1111\u{00A0}1111\u{00A0}1111");
    // Zero-width joiners inside an email and a full-width at sign.
    let email = "mail j\u{200D}ohn\u{FF20}example.com now";
    let f = d.detect(email);
    assert_eq!(f[0].entity, PiiEntity::Email);
    assert_eq!(
        &email[f[0].start..f[0].end],
        "j\u{200D}ohn\u{FF20}example.com"
    );
}

#[test]
fn findings_are_ordered_non_overlapping_and_deterministic() {
    let d = detector();
    let text = "Mr. John Smith (SSN 123-45-6789, card 4111111111111111) emailed \
                john@smith.org from 10.0.0.1; IBAN NL91ABNA0417164300.";
    let a = d.detect(text);
    let b = d.detect(text);
    assert_eq!(a, b);
    assert_eq!(a.len(), 6, "{a:?}");
    for w in a.windows(2) {
        assert!(w[0].end <= w[1].start);
    }
    for f in &a {
        assert!(f.score > 0.0 && f.score <= 1.0);
        assert!(!f.recognizer.is_empty());
    }
}

#[test]
fn custom_patterns_deny_lists_and_names() {
    let d = Detector::new(&PiiConfig {
        names: vec!["Wouter Jansen".into()],
        deny_lists: vec![DenyList {
            name: "CLIENT".into(),
            terms: vec!["Project Nightingale".into(), "Globex".into()],
        }],
        patterns: vec![CustomPattern {
            name: "MATTER".into(),
            pattern: r"\bM-[0-9]{6}\b".into(),
            score: 0.9,
        }],
        ..PiiConfig::default()
    })
    .unwrap();
    let text = "wouter jansen asked about project nightingale under M-123456.";
    let got = found(&d, text);
    assert_eq!(
        got,
        vec![
            (PiiEntity::Person, "wouter jansen".into()),
            (
                PiiEntity::Custom("CLIENT".into()),
                "project nightingale".into()
            ),
            (PiiEntity::Custom("MATTER".into()), "M-123456".into()),
        ]
    );
}

#[test]
fn bad_configuration_gets_typed_errors_without_the_pattern_text() {
    let bad = |pattern: &str| {
        Detector::new(&PiiConfig {
            patterns: vec![CustomPattern {
                name: "X".into(),
                pattern: pattern.into(),
                score: 0.9,
            }],
            ..PiiConfig::default()
        })
        .unwrap_err()
    };
    for p in [
        "(unclosed SECRETNAME",
        "a{5",
        "\\p{NoSuchClass}",
        "(?P<x>a)(?P<x>b)",
    ] {
        let e = bad(p);
        assert!(matches!(e, Error::Pattern { .. }), "{e}");
        assert!(!e.to_string().contains("SECRETNAME"));
    }
    assert!(matches!(bad("a*"), Error::Pattern { .. }));
    assert!(matches!(bad(""), Error::Pattern { .. }));
    // Too large for the size limit: no backtracking blow-up, just a refusal.
    let e = bad("(?:[a-z]{1,100}){1,100}[0-9]{1,1000}");
    assert!(e.to_string().contains("limit"), "{e}");
    // Backreferences and look-around do not exist in this engine.
    assert!(matches!(bad(r"(a)\1"), Error::Pattern { .. }));
    assert!(matches!(bad(r"(?=a)b"), Error::Pattern { .. }));
    let e = Detector::new(&PiiConfig {
        min_score: 1.5,
        ..PiiConfig::default()
    })
    .unwrap_err();
    assert!(matches!(e, Error::Setting { .. }));
}

#[test]
fn survives_hostile_input() {
    let d = detector();
    // A huge single line of digits and separators, and pathological repeats.
    let long = "1-".repeat(200_000);
    let _ = d.detect(&long);
    let at = "a@".repeat(100_000);
    let _ = d.detect(&at);
    let caps = "Mr. ".repeat(50_000);
    let _ = d.detect(&caps);
    let zw = "\u{200B}".repeat(10_000);
    assert!(d.detect(&zw).is_empty());
    let mixed = "\u{FF11}\u{200B}".repeat(20_000);
    let _ = d.detect(&mixed);
}
