//! E-mail: `.eml` (one message) and `.mbox` (one document per message), parsed with
//! mail-parser. A message's document is its header block (from, to, cc, date, subject,
//! message id, in-reply-to, the attachments' names) and its body (plain text preferred, else
//! the HTML as text); subject, sender and date are its title, author and creation date. Each
//! attachment in a format BEAR reads is a document of its own, named below the message
//! (`attachment-2/contract.pdf`, `message-3/attachment-1/fees.xlsx`), recursively for an
//! attached e-mail or ZIP archive, within the limits below; one that cannot be read is reported
//! alone.

use mail_parser::{Address, Message, MessageParser, MessagePart, MimeHeaders};

use super::{DocMeta, Extracted, Format, Limits, Refusal, extract};
use crate::store::MailMeta;

/// Most documents one file may yield (messages and attachments together).
pub const MAX_PARTS: usize = 20_000;
/// Most attachments one message may have.
pub const MAX_ATTACHMENTS: usize = 1_000;
/// Deepest chain of e-mails attached to e-mails.
pub const MAX_DEPTH: usize = 8;

/// One document found in a file: where it sits in the file (empty for the file's own, first
/// document), its format and its text, or why it could not be read.
#[derive(Debug)]
pub struct Part {
    /// Its place below the file, as a relative path (`attachment-1/contract.pdf`).
    pub locator: String,
    /// Its format.
    pub format: Format,
    /// Its text, or why it has none.
    pub extracted: Result<Extracted, Refusal>,
}

/// The documents of an e-mail file (`.eml`: its message; `.mbox`: every message), each
/// message followed by its attachments.
pub(super) fn parts(bytes: &[u8], format: Format, limits: &Limits) -> Result<Vec<Part>, Refusal> {
    let mut out = Parts {
        limits,
        parts: Vec::new(),
    };
    match format {
        Format::Mbox => {
            let iter = mail_parser::mailbox::mbox::MessageIterator::new(bytes);
            for (i, raw) in iter.enumerate() {
                let raw = raw.map_err(|_| malformed("a message of the mailbox cannot be read"))?;
                let at = if i == 0 {
                    String::new()
                } else {
                    format!("message-{}", i + 1)
                };
                out.message(raw.contents(), &at, 0)?;
            }
            if out.parts.is_empty() {
                return Err(Refusal::Empty);
            }
        }
        _ => out.message(bytes, "", 0)?,
    }
    Ok(out.parts)
}

fn malformed(detail: &str) -> Refusal {
    Refusal::Malformed {
        format: "e-mail".into(),
        detail: detail.into(),
    }
}

/// The parts gathered so far.
struct Parts<'l> {
    limits: &'l Limits,
    parts: Vec<Part>,
}

impl Part {
    /// A part that could not be read, with why.
    pub(super) fn refused(locator: impl Into<String>, format: Format, reason: Refusal) -> Self {
        Self {
            locator: locator.into(),
            format,
            extracted: Err(reason),
        }
    }
}

/// Adds `part` to `parts`, refusing the whole file past [`MAX_PARTS`].
pub(super) fn push_part(parts: &mut Vec<Part>, part: Part) -> Result<(), Refusal> {
    if parts.len() >= MAX_PARTS {
        return Err(Refusal::TooManyParts { limit: MAX_PARTS });
    }
    parts.push(part);
    Ok(())
}

impl Parts<'_> {
    fn push(&mut self, part: Part) -> Result<(), Refusal> {
        push_part(&mut self.parts, part)
    }

    /// The message in `raw` at `at`, then its attachments.
    fn message(&mut self, raw: &[u8], at: &str, depth: usize) -> Result<(), Refusal> {
        self.limits.check_time(self.limits.secs_left())?;
        let Some(msg) = MessageParser::default().parse(raw) else {
            return self.push(Part {
                locator: at.to_string(),
                format: Format::Eml,
                extracted: Err(malformed("not an RFC 5322 message")),
            });
        };
        let attachments: Vec<&MessagePart<'_>> = msg.attachments().collect();
        if attachments.len() > MAX_ATTACHMENTS {
            return Err(Refusal::TooManyParts {
                limit: MAX_ATTACHMENTS,
            });
        }
        let names: Vec<String> = attachments.iter().map(|a| file_name(a)).collect();
        let names: Vec<String> = names
            .into_iter()
            .zip(&attachments)
            .map(|(n, a)| match (n.as_str(), a.is_message()) {
                ("attachment", true) => "message.eml".to_string(),
                _ => n,
            })
            .collect();
        self.push(Part {
            locator: at.to_string(),
            format: Format::Eml,
            extracted: Ok(message_text(&msg, &names)),
        })?;
        for (i, (a, name)) in attachments.iter().zip(&names).enumerate() {
            let below = join(at, &format!("attachment-{}", i + 1));
            self.attachment(a, &below, name, depth)?;
        }
        Ok(())
    }

    /// Attachment `a`, named `name`, at `at`.
    fn attachment(
        &mut self,
        a: &MessagePart<'_>,
        at: &str,
        name: &str,
        depth: usize,
    ) -> Result<(), Refusal> {
        if a.is_message() || Format::from_path(std::path::Path::new(name)) == Some(Format::Eml) {
            if depth + 1 >= MAX_DEPTH {
                return self.push(Part {
                    locator: join(at, name),
                    format: Format::Eml,
                    extracted: Err(Refusal::TooDeep { limit: MAX_DEPTH }),
                });
            }
            let raw = match a.message() {
                Some(m) => m.raw_message(),
                None => a.contents(),
            };
            return self.message(raw, &join(at, name), depth + 1);
        }
        let path = std::path::Path::new(name);
        if Format::from_path(path) == Some(Format::Zip) {
            let below = join(at, name);
            for p in super::archive::parts_at(a.contents(), &below, depth + 1, self.limits) {
                self.push(p)?;
            }
            return Ok(());
        }
        if Format::from_path(path) == Some(Format::Msg) {
            let below = join(at, name);
            return match super::msg::parts(a.contents(), self.limits) {
                Ok(found) => found.into_iter().try_for_each(|p| {
                    self.push(Part {
                        locator: join(&below, &p.locator),
                        ..p
                    })
                }),
                Err(reason) => self.push(Part {
                    locator: below,
                    format: Format::Msg,
                    extracted: Err(reason),
                }),
            };
        }
        let Some(format) = Format::from_path(path).filter(|f| !f.is_container()) else {
            let extension = path
                .extension()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_default();
            return self.push(Part {
                locator: join(at, name),
                format: Format::Text,
                extracted: Err(Refusal::UnsupportedFormat { extension }),
            });
        };
        let extracted = extract(a.contents(), format, self.limits);
        self.push(Part {
            locator: join(at, name),
            format,
            extracted,
        })
    }
}

/// `below`'s locator under `at` (either may be empty: the file's own document).
pub(super) fn join(at: &str, below: &str) -> String {
    match (at.is_empty(), below.is_empty()) {
        (true, _) => below.to_string(),
        (false, true) => at.to_string(),
        (false, false) => format!("{at}/{below}"),
    }
}

/// An attachment's file name as one path component (no folders, no leading dot).
fn file_name(a: &MessagePart<'_>) -> String {
    let raw = a.attachment_name().unwrap_or("attachment");
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let clean: String = base
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    let clean = clean.trim().trim_start_matches('.');
    match clean.is_empty() {
        true => "attachment".into(),
        false => clean.chars().take(200).collect(),
    }
}

fn addresses(a: Option<&Address<'_>>) -> Option<String> {
    let list: Vec<String> = a?
        .iter()
        .map(|x| match (x.name(), x.address()) {
            (Some(n), Some(e)) => format!("{n} <{e}>"),
            (None, Some(e)) => e.to_string(),
            (Some(n), None) => n.to_string(),
            (None, None) => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect();
    (!list.is_empty()).then(|| list.join(", "))
}

/// A message's header block and body, with its metadata.
fn message_text(msg: &Message<'_>, attachments: &[String]) -> Extracted {
    let body = msg
        .body_text(0)
        .map(|b| b.into_owned())
        .or_else(|| {
            let html = msg.body_html(0)?;
            super::text::html(html.as_bytes()).ok().map(|e| e.text)
        })
        .unwrap_or_default();
    let header = Header {
        from: addresses(msg.from()),
        to: addresses(msg.to()),
        cc: addresses(msg.cc()),
        date: msg.date().map(|d| d.to_rfc3339()),
        subject: msg.subject().map(str::to_string),
        message_id: msg.message_id().map(|m| format!("<{m}>")),
        in_reply_to: msg.in_reply_to().as_text().map(|m| format!("<{m}>")),
    };
    header.document(attachments, &body)
}

/// When a message was sent, Unix seconds, from its Date (RFC 3339 as `.eml` dates are kept,
/// or RFC 5322 as a `.msg` file's transport headers hold it).
fn sent(date: &str) -> Option<i64> {
    mail_parser::DateTime::parse_rfc3339(date)
        .or_else(|| mail_parser::DateTime::parse_rfc822(date))
        .filter(mail_parser::DateTime::is_valid)
        .map(|d| d.to_timestamp())
}

/// The header fields of a message's document (.eml and .msg alike).
pub(super) struct Header {
    pub(super) from: Option<String>,
    pub(super) to: Option<String>,
    pub(super) cc: Option<String>,
    pub(super) date: Option<String>,
    pub(super) subject: Option<String>,
    pub(super) message_id: Option<String>,
    pub(super) in_reply_to: Option<String>,
}

impl Header {
    /// The fields as document metadata, with the sending time and thread keys.
    fn meta(&self) -> MailMeta {
        fn field(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|v| !v.is_empty())
        }
        let own = |v: &Option<String>| field(v).map(str::to_string);
        MailMeta {
            from: own(&self.from),
            to: own(&self.to),
            cc: own(&self.cc),
            date: own(&self.date),
            subject: own(&self.subject),
            message_id: own(&self.message_id),
            in_reply_to: own(&self.in_reply_to),
            sent: field(&self.date).and_then(sent),
            message_key: field(&self.message_id).and_then(MailMeta::key),
            reply_key: field(&self.in_reply_to).and_then(MailMeta::key),
        }
    }

    /// The header lines (empty ones left out), the attachments' names, a blank line and the
    /// body; subject, sender and date as title, author and creation date.
    pub(super) fn document(self, attachments: &[String], body: &str) -> Extracted {
        let list: Vec<String> = attachments
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{}. {n}", i + 1))
            .collect();
        let mail = self.meta();
        let fields = [
            ("From", self.from.clone()),
            ("To", self.to),
            ("Cc", self.cc),
            ("Date", self.date.clone()),
            ("Subject", self.subject.clone()),
            ("Message-ID", self.message_id),
            ("In-Reply-To", self.in_reply_to),
            ("Attachments", Some(list.join("; "))),
        ];
        let mut text = String::new();
        for (k, v) in fields {
            if let Some(v) = v.filter(|v| !v.trim().is_empty()) {
                text.push_str(&format!("{k}: {}\n", v.trim()));
            }
        }
        text.push('\n');
        text.push_str(body.trim());
        text.push('\n');
        Extracted {
            text,
            page_starts: Vec::new(),
            meta: DocMeta {
                title: self.subject,
                author: self.from,
                created: self.date,
                mail: Some(mail),
                ..DocMeta::default()
            },
            ocr_pages: Vec::new(),
        }
    }
}
