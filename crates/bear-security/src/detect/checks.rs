//! Checksums and range rules that turn a pattern match into a finding: Luhn and IIN ranges for
//! cards, the IBAN registry's formats and mod-97 for IBANs, the SSA's invalid SSN ranges, the
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
        // UATP (airline cards).
        _ if p1 == 1 => len == 15,
        // Maestro.
        _ if p2 == 50 || (56..=69).contains(&p2) => (12..=19).contains(&len),
        _ => false,
    }
}

/// Whether `s` (compact, or in groups of four) is an IBAN of a country in the IBAN registry,
/// with that country's length and BBAN format, and passes mod-97 (the `iban_validate` crate,
/// generated from the registry).
pub(crate) fn iban(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| *c != ' ').collect();
    compact.parse::<iban::Iban>().is_ok()
}

/// A card number match: the length of the card number in it (Luhn-checked, in an issuer's
/// range and length), trying the whole match first and then without its last group (a card
/// followed by more digits).
pub(crate) fn card(m: &str) -> Option<usize> {
    let mut t = m;
    loop {
        let d = digits(t);
        if d.len() >= 12 && card_iin(&d) && luhn(&d) {
            return Some(t.len());
        }
        t = &t[..t.rfind([' ', '-'])?];
    }
}

/// SSNs the SSA voided after they were published (Woolworth's wallet card, an advertisement).
const VOIDED_SSNS: &[&str] = &["078051120", "219099999"];

/// A phone number match's base score, or `None`: international numbers have 8 to 15 digits
/// (E.164); North American ones an area code and exchange that are not N11 service codes, and
/// ten bare digits only with a phone word near; national ones (trunk prefix 0) 10 to 12
/// digits, or 9 with a phone word near. An extension does not count.
pub(crate) fn phone(rule: super::recognizers::Rule, m: &str, context: bool) -> Option<f32> {
    use super::recognizers::Rule;
    let main = m
        .split(|c: char| c.is_ascii_alphabetic())
        .next()
        .unwrap_or(m);
    let d = digits(main);
    match rule {
        Rule::PhoneIntl => (8..=15).contains(&d.len()).then_some(0.7),
        Rule::PhoneUs => {
            let local = if d.len() == 11 { &d[1..] } else { &d[..] };
            let n11 = |x: &[u8]| x[1] == 1 && x[2] == 1;
            let bare = !main.trim_end().contains(|c: char| !c.is_ascii_digit());
            let ok = local.len() == 10 && !n11(&local[..3]) && !n11(&local[3..6]);
            (ok && (context || !bare)).then_some(0.6)
        }
        _ => ((10..=12).contains(&d.len()) || (d.len() == 9 && context)).then_some(0.5),
    }
}

/// The SSA's rules: area not 000, 666 or 9xx; group not 00; serial not 0000.
pub(crate) fn us_ssn(d: &[u8]) -> bool {
    if d.len() != 9 {
        return false;
    }
    let area = prefix(d, 3);
    let group = prefix(&d[3..], 2);
    let serial = prefix(&d[5..], 4);
    let text: String = d.iter().map(|x| char::from(b'0' + x)).collect();
    area != 0
        && area != 666
        && area < 900
        && group != 0
        && serial != 0
        && !VOIDED_SSNS.contains(&text.as_str())
        && d.iter().any(|&x| x != d[0])
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
