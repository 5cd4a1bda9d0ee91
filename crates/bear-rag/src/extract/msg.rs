//! Outlook `.msg` files (MS-OXMSG): an OLE compound file, opened with `cfb`, whose properties
//! are streams named `__substg1.0_<id><type>`. A message's document is the same header block
//! as an e-mail's (from, to, cc, date, subject, message id, in-reply-to, the attachments'
//! names) and its body (plain text, else the HTML as text); each attachment is a document of
//! its own below the message, an attached message recursively, within the e-mail limits.

use std::io::{Cursor, Read};

use super::mail::{Header, MAX_ATTACHMENTS, MAX_DEPTH, Part, join, push_part};
use super::{Extracted, Format, Limits, Refusal, extract};

type Msg = cfb::CompoundFile<Cursor<Vec<u8>>>;

/// The most bytes read from one string property.
const MAX_STRING: u64 = 16 << 20;

/// Property ids (MS-OXPROPS) read from a message or an attachment.
const SUBJECT: u16 = 0x0037;
const SENDER_NAME: u16 = 0x0C1A;
const SENDER_SMTP: u16 = 0x5D01;
const SENDER_EMAIL: u16 = 0x0C1F;
const DISPLAY_TO: u16 = 0x0E04;
const DISPLAY_CC: u16 = 0x0E03;
const HEADERS: u16 = 0x007D;
const BODY: u16 = 0x1000;
const HTML: u16 = 0x1013;
const MESSAGE_ID: u16 = 0x1035;
const IN_REPLY_TO: u16 = 0x1042;
const LONG_NAME: u16 = 0x3707;
const SHORT_NAME: u16 = 0x3704;
const DATA: u16 = 0x3701;

/// The documents of a `.msg` file: its message, then each attachment.
pub(super) fn parts(bytes: &[u8], limits: &Limits) -> Result<Vec<Part>, Refusal> {
    let mut file = cfb::CompoundFile::open(Cursor::new(bytes.to_vec()))
        .map_err(|_| malformed("not an OLE compound file"))?;
    if !file.exists(prop_path("", SUBJECT, 0x001F))
        && !file.exists(prop_path("", SUBJECT, 0x001E))
        && !file.is_stream("/__properties_version1.0")
    {
        return Err(malformed("an OLE file, but not an Outlook message"));
    }
    let mut walk = Walk {
        limits,
        parts: Vec::new(),
    };
    walk.message(&mut file, "", "", 0)?;
    Ok(walk.parts)
}

fn malformed(detail: &str) -> Refusal {
    Refusal::Malformed {
        format: "Outlook message".into(),
        detail: detail.into(),
    }
}

/// `<storage>/__substg1.0_<id><type>`.
fn prop_path(storage: &str, id: u16, kind: u16) -> String {
    format!("{storage}/__substg1.0_{id:04X}{kind:04X}")
}

struct Walk<'l> {
    limits: &'l Limits,
    parts: Vec<Part>,
}

impl Walk<'_> {
    fn push(&mut self, part: Part) -> Result<(), Refusal> {
        push_part(&mut self.parts, part)
    }

    /// The message in `storage` of `file`, at `at`, then its attachments.
    fn message(
        &mut self,
        file: &mut Msg,
        storage: &str,
        at: &str,
        depth: usize,
    ) -> Result<(), Refusal> {
        self.limits.check_time(self.limits.secs_left())?;
        let attachments = attachment_storages(file, storage)?;
        if attachments.len() > MAX_ATTACHMENTS {
            return Err(Refusal::TooManyParts {
                limit: MAX_ATTACHMENTS,
            });
        }
        let names: Vec<String> = attachments.iter().map(|a| file_name(file, a)).collect();
        let text = message_text(file, storage, &names, self.limits)?;
        self.push(Part {
            locator: at.to_string(),
            format: Format::Msg,
            extracted: Ok(text),
        })?;
        for (i, (a, name)) in attachments.iter().zip(&names).enumerate() {
            let below = join(at, &format!("attachment-{}", i + 1));
            self.attachment(file, a, &join(&below, name), depth)?;
        }
        Ok(())
    }

    /// Attachment storage `a`, at `at`.
    fn attachment(
        &mut self,
        file: &mut Msg,
        a: &str,
        at: &str,
        depth: usize,
    ) -> Result<(), Refusal> {
        let embedded = format!("{a}/__substg1.0_{DATA:04X}000D");
        if file.is_storage(&embedded) {
            if depth + 1 >= MAX_DEPTH {
                return self.push(Part::refused(
                    at,
                    Format::Msg,
                    Refusal::TooDeep { limit: MAX_DEPTH },
                ));
            }
            return self.message(file, &embedded, at, depth + 1);
        }
        let data = read(file, &prop_path(a, DATA, 0x0102), self.limits)?.unwrap_or_default();
        let path = std::path::Path::new(at);
        match Format::from_path(path) {
            Some(Format::Zip) => {
                for p in super::archive::parts_at(&data, at, depth + 1, self.limits) {
                    self.push(p)?;
                }
                Ok(())
            }
            Some(format @ (Format::Eml | Format::Mbox | Format::Msg)) => {
                let found = match format {
                    Format::Msg if depth + 1 < MAX_DEPTH => parts(&data, self.limits),
                    Format::Msg => Err(Refusal::TooDeep { limit: MAX_DEPTH }),
                    _ => super::mail::parts(&data, format, self.limits),
                };
                match found {
                    Ok(found) => found.into_iter().try_for_each(|p| {
                        self.push(Part {
                            locator: join(at, &p.locator),
                            ..p
                        })
                    }),
                    Err(e) => self.push(Part::refused(at, format, e)),
                }
            }
            Some(format) => {
                let extracted = extract(&data, format, self.limits);
                self.push(Part {
                    locator: at.to_string(),
                    format,
                    extracted,
                })
            }
            None => {
                let extension = path
                    .extension()
                    .map(|e| e.to_string_lossy().into_owned())
                    .unwrap_or_default();
                self.push(Part::refused(
                    at,
                    Format::Text,
                    Refusal::UnsupportedFormat { extension },
                ))
            }
        }
    }
}

/// The attachment storages of the message in `storage`, in their order.
fn attachment_storages(file: &Msg, storage: &str) -> Result<Vec<String>, Refusal> {
    let root = if storage.is_empty() { "/" } else { storage };
    let entries = file
        .read_storage(root)
        .map_err(|_| malformed("a storage of the message cannot be read"))?;
    let mut found: Vec<String> = entries
        .filter(|e| e.is_storage() && e.name().starts_with("__attach_version1.0_#"))
        .map(|e| format!("{storage}/{}", e.name()))
        .collect();
    found.sort();
    Ok(found)
}

/// An attachment's file name as one path component.
fn file_name(file: &mut Msg, a: &str) -> String {
    let raw = string(file, a, LONG_NAME)
        .or_else(|| string(file, a, SHORT_NAME))
        .unwrap_or_default();
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(&raw);
    let clean: String = base
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    let clean = clean.trim().trim_start_matches('.');
    let embedded = file.is_storage(format!("{a}/__substg1.0_{DATA:04X}000D"));
    match (clean.is_empty(), embedded) {
        (true, true) => "message.msg".into(),
        (true, false) => "attachment".into(),
        (false, _) => clean.chars().take(200).collect(),
    }
}

/// A stream's bytes, within the file size limit; `None` when it does not exist.
fn read(file: &mut Msg, path: &str, limits: &Limits) -> Result<Option<Vec<u8>>, Refusal> {
    if !file.is_stream(path) {
        return Ok(None);
    }
    let mut s = file
        .open_stream(path)
        .map_err(|_| malformed("a property stream cannot be read"))?;
    let mut out = Vec::new();
    (&mut s)
        .take(limits.max_file_bytes)
        .read_to_end(&mut out)
        .map_err(|_| malformed("a property stream is cut short or corrupt"))?;
    Ok(Some(out))
}

/// A string property of `storage`: UTF-16 (`001F`), else 8-bit (`001E`, read as Latin-1 when
/// it is not UTF-8).
fn string(file: &mut Msg, storage: &str, id: u16) -> Option<String> {
    let wide = read_raw(file, &prop_path(storage, id, 0x001F), MAX_STRING);
    if let Some(b) = wide {
        let units: Vec<u16> = b
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        return Some(
            String::from_utf16_lossy(&units)
                .trim_end_matches('\0')
                .to_string(),
        );
    }
    let narrow = read_raw(file, &prop_path(storage, id, 0x001E), MAX_STRING)?;
    Some(
        match String::from_utf8(narrow.clone()) {
            Ok(s) => s,
            Err(_) => narrow.iter().map(|&b| b as char).collect(),
        }
        .trim_end_matches('\0')
        .to_string(),
    )
}

fn read_raw(file: &mut Msg, path: &str, cap: u64) -> Option<Vec<u8>> {
    let mut s = file.open_stream(path).ok()?;
    let mut out = Vec::new();
    (&mut s).take(cap).read_to_end(&mut out).ok()?;
    Some(out)
}

/// One header of the transport headers (`Date: ...`), unfolded.
fn header(headers: &str, name: &str) -> Option<String> {
    let mut lines = headers.lines();
    while let Some(l) = lines.next() {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        if !k.trim().eq_ignore_ascii_case(name) {
            continue;
        }
        let mut value = v.trim().to_string();
        for more in lines.by_ref() {
            if !more.starts_with([' ', '\t']) {
                break;
            }
            value.push(' ');
            value.push_str(more.trim());
        }
        return Some(value);
    }
    None
}

/// The message's header block and body, with its metadata.
fn message_text(
    file: &mut Msg,
    storage: &str,
    attachments: &[String],
    limits: &Limits,
) -> Result<Extracted, Refusal> {
    let mut prop = |id| string(file, storage, id).filter(|v| !v.trim().is_empty());
    let headers = prop(HEADERS).unwrap_or_default();
    let address = prop(SENDER_SMTP).or_else(|| prop(SENDER_EMAIL));
    let from = match (prop(SENDER_NAME), address) {
        (Some(n), Some(a)) if n != a => Some(format!("{n} <{a}>")),
        (n, a) => n.or(a),
    };
    let header_block = Header {
        from,
        to: prop(DISPLAY_TO),
        cc: prop(DISPLAY_CC),
        date: header(&headers, "Date"),
        subject: prop(SUBJECT),
        message_id: prop(MESSAGE_ID).or_else(|| header(&headers, "Message-ID")),
        in_reply_to: prop(IN_REPLY_TO).or_else(|| header(&headers, "In-Reply-To")),
    };
    let body = match prop(BODY) {
        Some(b) => b,
        None => html_body(file, storage, limits)?,
    };
    Ok(header_block.document(attachments, &body))
}

/// The HTML body (binary or string property) as text, or nothing.
fn html_body(file: &mut Msg, storage: &str, limits: &Limits) -> Result<String, Refusal> {
    let html = match read(file, &prop_path(storage, HTML, 0x0102), limits)? {
        Some(b) => b,
        None => match string(file, storage, HTML) {
            Some(s) => s.into_bytes(),
            None => return Ok(String::new()),
        },
    };
    Ok(super::text::html(&html).map(|e| e.text).unwrap_or_default())
}
