//! Checksums and range rules that turn a pattern match into a finding: Luhn and IIN ranges for
//! cards, ISO 13616 mod-97 with per-country lengths for IBANs, the SSA's invalid SSN ranges, the
//! Dutch 11-proof, UK NINO prefixes, Base58Check and Bech32 for Bitcoin addresses.

/// ASCII digits of `s`, ignoring everything else.
pub(crate) fn digits(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect()
}

/// The Luhn check over a digit string.
pub(crate) fn luhn(d: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &x) in d.iter().rev().enumerate() {
        let mut v = u32::from(x);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

fn prefix(d: &[u8], n: usize) -> u32 {
    d.iter().take(n).fold(0, |a, &x| a * 10 + u32::from(x))
}

/// Whether a digit string is in a major card network's IIN range with a length it issues.
pub(crate) fn card_iin(d: &[u8]) -> bool {
    let len = d.len();
    let p1 = prefix(d, 1);
    let p2 = prefix(d, 2);
    let p3 = prefix(d, 3);
    let p4 = prefix(d, 4);
    let p6 = prefix(d, 6);
    match () {
        // Visa.
        _ if p1 == 4 => matches!(len, 13 | 16 | 19),
        // Mastercard.
        _ if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) => len == 16,
        // American Express.
        _ if p2 == 34 || p2 == 37 => len == 15,
        // Discover.
        _ if p4 == 6011
            || p2 == 65
            || (644..=649).contains(&p3)
            || (622126..=622925).contains(&p6) =>
        {
            (16..=19).contains(&len)
        }
        // JCB.
        _ if (3528..=3589).contains(&p4) => (16..=19).contains(&len),
        // Diners Club.
        _ if (300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39 => {
            (14..=19).contains(&len)
        }
        // UnionPay.
        _ if p2 == 62 => (16..=19).contains(&len),
        // Maestro.
        _ if p2 == 50 || (56..=69).contains(&p2) => (12..=19).contains(&len),
        _ => false,
    }
}

/// IBAN lengths by country (ISO 13616 registry).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BI", 27),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DJ", 27),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FK", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("LY", 25),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MN", 20),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NI", 28),
    ("NL", 18),
    ("NO", 15),
    ("OM", 23),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("RU", 33),
    ("SA", 24),
    ("SC", 31),
    ("SD", 18),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("SO", 23),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
    ("YE", 30),
];

/// The length of the IBAN in `s` (spaces ignored) if it has its country's length and passes
/// mod-97; `None` otherwise.
pub(crate) fn iban(s: &str) -> bool {
    let compact: Vec<u8> = s.bytes().filter(|b| *b != b' ').collect();
    if compact.len() < 15 || !compact.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let country = std::str::from_utf8(&compact[..2]).unwrap_or("");
    let Some(&(_, len)) = IBAN_LENGTHS.iter().find(|(c, _)| *c == country) else {
        return false;
    };
    if compact.len() != len {
        return false;
    }
    let mut rem = 0u32;
    for &b in compact[4..].iter().chain(&compact[..4]) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// The SSA's rules: area not 000, 666 or 9xx; group not 00; serial not 0000.
pub(crate) fn us_ssn(d: &[u8]) -> bool {
    if d.len() != 9 {
        return false;
    }
    let area = prefix(d, 3);
    let group = prefix(&d[3..], 2);
    let serial = prefix(&d[5..], 4);
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// The Dutch 11-proof for BSN and RSIN (weights 9..2 and -1).
pub(crate) fn elfproef(d: &[u8]) -> bool {
    if d.len() != 9 || d.iter().all(|&x| x == 0) {
        return false;
    }
    let mut sum: i32 = 0;
    for (i, &x) in d.iter().enumerate() {
        let w = if i == 8 { -1 } else { 9 - i as i32 };
        sum += w * i32::from(x);
    }
    sum % 11 == 0
}

/// UK NINO: refuses the prefixes HMRC never issues.
pub(crate) fn uk_nino(s: &str) -> bool {
    let compact: Vec<u8> = s.bytes().filter(|b| *b != b' ').collect();
    if compact.len() != 9 {
        return false;
    }
    let p = &compact[..2];
    !matches!(p, b"BG" | b"GB" | b"NK" | b"KN" | b"TN" | b"NT" | b"ZZ")
}

/// A legacy (P2PKH/P2SH) Bitcoin address: Base58Check with version 0x00 or 0x05.
pub(crate) fn btc_base58(s: &str) -> bool {
    let Ok(raw) = bs58::decode(s).into_vec() else {
        return false;
    };
    if raw.len() != 25 || !(raw[0] == 0x00 || raw[0] == 0x05) {
        return false;
    }
    let first = ring::digest::digest(&ring::digest::SHA256, &raw[..21]);
    let second = ring::digest::digest(&ring::digest::SHA256, first.as_ref());
    second.as_ref()[..4] == raw[21..]
}

/// A SegWit Bitcoin address (`bc1…`): Bech32/Bech32m with a valid witness program.
pub(crate) fn btc_bech32(s: &str) -> bool {
    matches!(bech32::segwit::decode(s), Ok((hrp, _, _)) if hrp == bech32::hrp::BC)
}

/// Whether day/month/year form a calendar date between 1900 and 2099.
pub(crate) fn date(day: u32, month: u32, year: u32) -> bool {
    if !(1900..=2099).contains(&year) || !(1..=12).contains(&month) || day == 0 {
        return false;
    }
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let max = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    day <= max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums() {
        assert!(luhn(&digits("4111 1111 1111 1111")));
        assert!(!luhn(&digits("4111 1111 1111 1112")));
        assert!(card_iin(&digits("4111111111111111")));
        assert!(card_iin(&digits("378282246310005")));
        assert!(iban("NL91 ABNA 0417 1643 00"));
        assert!(iban("DE89370400440532013000"));
        assert!(!iban("DE89370400440532013001"));
        assert!(!iban("NL91ABNA04171643001"));
        assert!(us_ssn(&digits("123-45-6789")));
        for bad in [
            "000-12-3456",
            "666-12-3456",
            "912-12-3456",
            "123-00-4567",
            "123-45-0000",
        ] {
            assert!(!us_ssn(&digits(bad)), "{bad}");
        }
        assert!(elfproef(&digits("111222333")));
        assert!(!elfproef(&digits("111222334")));
        assert!(btc_base58("1BoatSLRHtKNngkdXEeobR76b53LETtpyT"));
        assert!(!btc_base58("1BoatSLRHtKNngkdXEeobR76b53LETtpyU"));
        assert!(btc_bech32("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"));
        assert!(!btc_bech32("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5"));
        assert!(date(29, 2, 2000) && !date(29, 2, 1900) && !date(31, 4, 1990));
        assert!(uk_nino("AB123456C") && !uk_nino("GB123456C"));
    }
}
