//! Text decoding (BOMs, UTF-8, detected legacy encodings) and HTML rendering.

use super::{DocMeta, Extracted, Refusal};

/// Decodes text in any encoding: a BOM wins, then valid UTF-8, then the encoding chardetng
/// detects. Returns the text and the encoding's name. Binary data is refused.
pub fn decode_text(bytes: &[u8]) -> Result<(String, String), Refusal> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Refusal::Empty);
    }
    if let Some((enc, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        let (text, had_errors) = enc.decode_without_bom_handling(&bytes[bom..]);
        if had_errors {
            return Err(Refusal::Undecodable {
                detail: format!("invalid {} after its byte-order mark", enc.name()),
            });
        }
        return check_text(text.into_owned(), enc.name());
    }
    if looks_binary(bytes) {
        return Err(Refusal::Binary);
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return check_text(s.to_owned(), "UTF-8");
    }
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    detector.feed(bytes, true);
    let enc = detector.guess(None, chardetng::Utf8Detection::Deny);
    let (text, had_errors) = enc.decode_without_bom_handling(bytes);
    if had_errors {
        return Err(Refusal::Undecodable {
            detail: format!(
                "not valid UTF-8, and not valid {} either (the detected encoding)",
                enc.name()
            ),
        });
    }
    check_text(text.into_owned(), enc.name())
}

/// NUL bytes, or many control characters, mean binary.
fn looks_binary(bytes: &[u8]) -> bool {
    let sample = &bytes[..bytes.len().min(64 * 1024)];
    if sample.contains(&0) {
        return true;
    }
    let controls = sample
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c))
        .count();
    controls * 20 > sample.len()
}

fn check_text(text: String, encoding: &str) -> Result<(String, String), Refusal> {
    if text.trim().is_empty() {
        return Err(Refusal::Empty);
    }
    Ok((text, encoding.to_string()))
}

/// Renders HTML to plain text, with the `<title>` as the title.
pub(super) fn html(bytes: &[u8]) -> Result<Extracted, Refusal> {
    let (source, encoding) = decode_text(bytes)?;
    let title = html_title(&source);
    let text = html2text::config::plain_no_decorate()
        .string_from_read(source.as_bytes(), 100_000)
        .map_err(|_| Refusal::Internal)?;
    Ok(Extracted {
        text,
        page_starts: Vec::new(),
        meta: DocMeta {
            title,
            encoding: Some(encoding),
            ..DocMeta::default()
        },
        ocr_pages: Vec::new(),
    })
}

/// The text of the first `<title>` element.
fn html_title(source: &str) -> Option<String> {
    let lower = source
        .get(..source.len().min(64 * 1024))?
        .to_ascii_lowercase();
    let open = lower.find("<title")?;
    let start = open + lower[open..].find('>')? + 1;
    let end = start + lower[start..].find("</title")?;
    let raw = source.get(start..end)?;
    let title = html2text::config::plain_no_decorate()
        .string_from_read(raw.as_bytes(), 10_000)
        .ok()?;
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    (!title.is_empty()).then_some(title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_boms_utf8_and_legacy_encodings() {
        assert_eq!(decode_text(b"plain").unwrap().0, "plain");
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("Café".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(
            decode_text(&utf16).unwrap(),
            ("Café".into(), "UTF-16LE".into())
        );
        // Latin-1 "Überweisung an Müller" is not UTF-8; it is detected, not refused.
        let latin1 = b"\xdcberweisung an M\xfcller f\xfcr die Kanzlei";
        let (text, enc) = decode_text(latin1).unwrap();
        assert_eq!(text, "Überweisung an Müller für die Kanzlei");
        assert_eq!(enc, "windows-1252");
    }

    #[test]
    fn refuses_empty_and_binary() {
        assert_eq!(decode_text(b"  \n\t "), Err(Refusal::Empty));
        assert_eq!(decode_text(b""), Err(Refusal::Empty));
        assert_eq!(
            decode_text(b"\x7fELF\x02\x01\x01\0\0\0"),
            Err(Refusal::Binary)
        );
        let noise: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 31) as u8).collect();
        assert_eq!(decode_text(&noise), Err(Refusal::Binary));
    }

    #[test]
    fn html_to_text_with_title() {
        let page = b"<html><head><title>Lease &amp; Terms</title><script>var x=1;</script></head>\
            <body><h1>Article 1</h1><p>The tenant pays rent.</p></body></html>";
        let e = html(page).unwrap();
        assert_eq!(e.meta.title.as_deref(), Some("Lease & Terms"));
        assert!(e.text.contains("Article 1"));
        assert!(e.text.contains("The tenant pays rent."));
        assert!(!e.text.contains("var x"));
    }
}
