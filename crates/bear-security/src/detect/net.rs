//! The rules for network identifiers: an e-mail address (RFC 5321 lengths), a URL (its host
//! and the punctuation around it), IPv4 (dotted decimal, with a prefix length) and IPv6 in
//! every textual form of RFC 4291 §2.2 and RFC 5952 (compressed, embedded IPv4, zone id,
//! bracketed with a port, with a prefix length), parsed by the standard library.

use std::net::Ipv6Addr;

use super::recognizers::TLDS;

/// Characters that wrap an address in running text (quotes, markdown) rather than start it.
const WRAPPERS: &[char] = &['\'', '`', '|', '*', '~', '^'];

/// Checks an e-mail address match; how many wrapping characters to drop from its start.
pub(crate) fn email(m: &str) -> Option<usize> {
    let lead = m.len() - m.trim_start_matches(WRAPPERS).len();
    let addr = &m[lead..];
    let (local, domain) = addr.rsplit_once('@')?;
    if local.is_empty() || local.len() > 64 || addr.len() > 254 {
        return None;
    }
    if !domain.starts_with('[') && domain.split('.').any(|l| l.is_empty() || l.len() > 63) {
        return None;
    }
    Some(lead)
}

/// `t` without the punctuation that ends the sentence around a URL: trailing stops, and a
/// closing bracket it did not open.
fn trim_url(mut t: &str) -> &str {
    loop {
        let before = t.len();
        t = t.trim_end_matches(['.', ',', ';', ':', '!', '?', '\'', '"', '*', '>']);
        for (open, close) in [('(', ')'), ('[', ']')] {
            if t.ends_with(close) && t.matches(close).count() > t.matches(open).count() {
                t = &t[..t.len() - 1];
            }
        }
        if t.len() == before {
            return t;
        }
    }
}

/// Whether `host`, written without a scheme, ends in a top-level domain of [`TLDS`].
fn known_tld(host: &str) -> bool {
    let tld = host.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    TLDS.split(' ').any(|t| t == tld)
}

/// Checks a URL match; the length of the URL itself (trailing punctuation dropped).
pub(crate) fn url(m: &str) -> Option<usize> {
    let t = trim_url(m);
    let bare = !t.contains("://") && !t.get(..4).is_some_and(|w| w.eq_ignore_ascii_case("www."));
    let rest = t.find("://").map_or(t, |i| &t[i + 3..]);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(literal) = host.strip_prefix('[') {
        let addr = literal.split(']').next().unwrap_or("");
        return addr
            .split('%')
            .next()
            .and_then(|a| a.parse::<Ipv6Addr>().ok())
            .map(|_| t.len());
    }
    let host = host.split(':').next().unwrap_or("").trim_end_matches('.');
    if host.eq_ignore_ascii_case("localhost") {
        return Some(t.len());
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return Some(t.len());
    }
    let labels_ok = host
        .split('.')
        .all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-'));
    // A top-level domain has two letters at least (or is punycode).
    let tld = host.rsplit('.').next().unwrap_or("");
    let tld_ok = tld.starts_with("xn--")
        || (tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic));
    let listed = !bare || known_tld(host);
    (host.contains('.') && labels_ok && tld_ok && listed).then_some(t.len())
}

/// Checks a dotted-decimal IPv4 match, `/prefix` included: four octets up to 255 (leading
/// zeros allowed, as written in logs), not `0.x.x.x` ("this network") or the broadcast
/// address, a prefix up to 32.
pub(crate) fn ipv4(m: &str) -> bool {
    let (addr, prefix) = m.split_once('/').map_or((m, None), |(a, p)| (a, Some(p)));
    if prefix.is_some_and(|p| p.parse::<u8>().map_or(true, |p| p > 32)) {
        return false;
    }
    let octets: Option<Vec<u16>> = addr
        .split('.')
        .map(|o| o.parse::<u16>().ok().filter(|v| *v <= 255))
        .collect();
    match octets {
        Some(o) => o.len() == 4 && o[0] != 0 && o.iter().any(|&v| v != 255),
        None => false,
    }
}

/// Checks an IPv6 match: the address's span within `m` (brackets and port left out; zone id
/// and prefix length kept) and whether it is the unspecified address `::`.
pub(crate) fn ipv6(m: &str) -> Option<(usize, usize, bool)> {
    let (start, inner) = match m.strip_prefix('[') {
        Some(rest) => {
            let close = rest.find(']')?;
            let after = &rest[close + 1..];
            if let Some(port) = after.strip_prefix(':') {
                port.parse::<u16>().ok()?;
            }
            (1, &rest[..close])
        }
        None => (0, m),
    };
    let (body, prefix) = inner
        .split_once('/')
        .map_or((inner, None), |(a, p)| (a, Some(p)));
    if prefix.is_some_and(|p| p.parse::<u8>().map_or(true, |p| p > 128)) {
        return None;
    }
    let (addr, zone) = body
        .split_once('%')
        .map_or((body, None), |(a, z)| (a, Some(z)));
    if let Ok(ip) = addr.parse::<Ipv6Addr>() {
        return Some((start, start + inner.len(), ip.is_unspecified()));
    }
    // A colon of the sentence right after a bare address ("at fe80::1: it").
    let trimmed = addr.strip_suffix(':')?;
    if start != 0 || zone.is_some() || prefix.is_some() {
        return None;
    }
    let ip = trimmed.parse::<Ipv6Addr>().ok()?;
    Some((0, trimmed.len(), ip.is_unspecified()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_forms() {
        assert_eq!(ipv6("2001:db8::1"), Some((0, 11, false)));
        assert_eq!(ipv6("[2001:db8::1]:8080"), Some((1, 12, false)));
        assert_eq!(ipv6("fe80::1%eth0"), Some((0, 12, false)));
        assert_eq!(ipv6("2001:db8::/32"), Some((0, 13, false)));
        assert_eq!(ipv6("::ffff:192.0.2.1"), Some((0, 16, false)));
        assert_eq!(ipv6("fe80::1:"), Some((0, 7, false)));
        assert_eq!(ipv6("::"), Some((0, 2, true)));
        assert_eq!(ipv6("12:30:45"), None);
        assert_eq!(ipv6("[2001:db8::1]:99999"), None);
        assert_eq!(ipv6("2001:db8::/129"), None);
    }

    #[test]
    fn ipv4_and_urls() {
        assert!(ipv4("192.168.001.010") && ipv4("10.0.0.0/8"));
        assert!(!ipv4("256.1.1.1") && !ipv4("0.1.2.3") && !ipv4("255.255.255.255"));
        assert!(!ipv4("10.0.0.0/33"));
        assert_eq!(url("https://example.com/a_(b))."), Some(25));
        assert_eq!(url("example.com),"), Some(11));
        assert_eq!(url("http://localhost:8080/x"), Some(23));
        assert_eq!(url("http://[2001:db8::1]:80/"), Some(24));
        assert_eq!(url("https://nohost/"), None);
        assert_eq!(url("www.k"), None);
        assert_eq!(url("main.py"), None);
        assert_eq!(url("bit.ly/x"), Some(8));
        assert_eq!(url("http://10.0.0.1/admin"), Some(21));
        assert_eq!(email("'jane@example.com"), Some(1));
        assert_eq!(email(&format!("{}@example.com", "a".repeat(65))), None);
    }
}
