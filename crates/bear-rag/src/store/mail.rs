//! E-mail documents as messages: their header fields (kept with the document, scrubbed like
//! its text), the filters a search takes on them (sender, recipients, subject, when sent,
//! thread), and threads rebuilt from In-Reply-To links.
//!
//! A message id is scrubbed like any text, so a reply is linked to the message it answers by
//! a key computed before scrubbing (SHA-256 of the id, cut to 128 bits), never by the
//! scrubbed id. Sender, recipient and subject filters compare the user's text with the
//! fields restored by the collection's scrubber, in memory: under the `tokenize` policy a
//! filter on an address works; under the others it matches what the policy kept.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{Collection, DocumentRecord, Error, Result};

/// An e-mail's header fields and thread keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MailMeta {
    /// Sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Copied recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cc: Option<String>,
    /// The Date header as the message states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// Subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Message-ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// In-Reply-To.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_reply_to: Option<String>,
    /// When it was sent, Unix seconds (from the Date header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<i64>,
    /// The key of its Message-ID, which a reply's `reply_key` equals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_key: Option<String>,
    /// The key of its In-Reply-To.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_key: Option<String>,
}

impl MailMeta {
    /// The thread key of a message id (`<id>` or `id`); none for a blank one.
    pub fn key(id: &str) -> Option<String> {
        let id = id
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim();
        if id.is_empty() {
            return None;
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, id.as_bytes());
        Some(hex::encode(&digest.as_ref()[..16]))
    }
}

/// Which messages a search keeps: every field given must match. A message's attachments
/// are kept with it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MailFilter {
    /// Text in the sender (case ignored).
    #[serde(default)]
    pub from: Option<String>,
    /// Text in the recipients, To or Cc (case ignored).
    #[serde(default)]
    pub to: Option<String>,
    /// Text in the subject (case ignored).
    #[serde(default)]
    pub subject: Option<String>,
    /// Sent at or after this Unix time.
    #[serde(default)]
    pub sent_after: Option<i64>,
    /// Sent at or before this Unix time.
    #[serde(default)]
    pub sent_before: Option<i64>,
    /// Only the thread of this document (its id): the messages linked to it by In-Reply-To,
    /// either way, and their attachments.
    #[serde(default)]
    pub thread: Option<String>,
}

/// Restores a scrubbed field to what the document said (the collection's scrubber).
pub type Restore<'a> = &'a (dyn Fn(&str) -> Result<String> + Sync);

impl MailFilter {
    /// Whether message `m` (its fields restored by `restore`) passes the field filters.
    fn admits(&self, m: &MailMeta, restore: Restore<'_>) -> Result<bool> {
        let has = |field: &Option<String>, needle: &Option<String>| -> Result<bool> {
            let Some(needle) = needle else {
                return Ok(true);
            };
            let Some(field) = field else {
                return Ok(false);
            };
            Ok(restore(field)?
                .to_lowercase()
                .contains(&needle.trim().to_lowercase()))
        };
        Ok(has(&m.from, &self.from)?
            && (has(&m.to, &self.to)? || (self.to.is_some() && has(&m.cc, &self.to)?))
            && has(&m.subject, &self.subject)?
            && self
                .sent_after
                .is_none_or(|t| m.sent.is_some_and(|s| s >= t))
            && self
                .sent_before
                .is_none_or(|t| m.sent.is_some_and(|s| s <= t)))
    }

    /// The ids of the documents of `docs` this filter keeps.
    pub fn select(&self, docs: &[DocumentRecord], restore: Restore<'_>) -> Result<Vec<String>> {
        let thread = match &self.thread {
            Some(id) => Some(thread_of(docs, id)?),
            None => None,
        };
        let mut kept = Vec::new();
        for d in docs {
            let Some(m) = d.mail.as_ref() else {
                continue;
            };
            if thread.as_ref().is_none_or(|t| t.contains(d.id.as_str()))
                && self.admits(m, restore)?
            {
                kept.push(d);
            }
        }
        Ok(with_attachments(docs, &kept))
    }
}

/// The ids of `kept` and of their attachments (`<message>/attachment-N/...`, nested; a
/// mailbox's later messages sit below its first, at `message-N`, and are not attachments).
fn with_attachments(docs: &[DocumentRecord], kept: &[&DocumentRecord]) -> Vec<String> {
    let roots: Vec<String> = kept
        .iter()
        .map(|d| format!("{}/attachment-", d.path))
        .collect();
    docs.iter()
        .filter(|d| {
            kept.iter().any(|k| k.id == d.id) || roots.iter().any(|r| d.path.starts_with(r))
        })
        .map(|d| d.id.clone())
        .collect()
}

/// For each message of `docs` that answers another message of `docs`, that message's id.
pub fn reply_links(docs: &[DocumentRecord]) -> HashMap<String, String> {
    let by_key: HashMap<&str, &str> = docs
        .iter()
        .filter_map(|d| Some((d.mail.as_ref()?.message_key.as_deref()?, d.id.as_str())))
        .collect();
    docs.iter()
        .filter_map(|d| {
            let parent = by_key.get(d.mail.as_ref()?.reply_key.as_deref()?)?;
            (*parent != d.id).then(|| (d.id.clone(), parent.to_string()))
        })
        .collect()
}

/// The messages in the thread of document `id`: linked to it by In-Reply-To, either way,
/// through any number of messages.
fn thread_of<'d>(docs: &'d [DocumentRecord], id: &str) -> Result<HashSet<&'d str>> {
    let start = docs.iter().find(|d| d.id == id).ok_or_else(|| {
        Error::InvalidRequest("thread: no such document in the collection".into())
    })?;
    if start.mail.is_none() {
        return Err(Error::InvalidRequest(
            "thread: that document is not an e-mail message".into(),
        ));
    }
    let links = reply_links(docs);
    let mut neighbours: HashMap<&str, Vec<&str>> = HashMap::new();
    for (child, parent) in &links {
        neighbours.entry(child).or_default().push(parent);
        neighbours.entry(parent).or_default().push(child);
    }
    let mut seen = HashSet::from([start.id.as_str()]);
    let mut todo = vec![start.id.as_str()];
    while let Some(d) = todo.pop() {
        for n in neighbours.get(d).into_iter().flatten() {
            if let Some(own) = docs.iter().find(|x| x.id == *n)
                && seen.insert(own.id.as_str())
            {
                todo.push(own.id.as_str());
            }
        }
    }
    Ok(seen)
}

impl Collection {
    /// `filter` with its mail filter turned into the documents it keeps (`within`), reading
    /// this collection's document rows; a filter without one comes back as it is.
    pub async fn resolve(
        &self,
        filter: &super::Filter,
        restore: Restore<'_>,
    ) -> Result<super::Filter> {
        let Some(mail) = &filter.mail else {
            return Ok(filter.clone());
        };
        let docs = self.documents().await?;
        let mut ids = mail.select(&docs, restore)?;
        if let Some(within) = &filter.within {
            ids.retain(|i| within.contains(i));
        }
        Ok(super::Filter {
            mail: None,
            within: Some(ids),
            ..filter.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, path: &str, mail: Option<MailMeta>) -> DocumentRecord {
        DocumentRecord {
            id: id.into(),
            path: path.into(),
            title: String::new(),
            author: None,
            created: None,
            modified: None,
            file_modified: 0,
            page_count: None,
            mime: "message/rfc822".into(),
            sha256: String::new(),
            size: 0,
            chunks: 1,
            ingested_at: 0,
            mail,
        }
    }

    fn message(from: &str, id: &str, reply_to: Option<&str>, sent: i64) -> Option<MailMeta> {
        Some(MailMeta {
            from: Some(from.into()),
            to: Some("Anna Visser <a.visser@lawfirm.example>".into()),
            subject: Some("Oven failure".into()),
            sent: Some(sent),
            message_key: MailMeta::key(id),
            reply_key: reply_to.and_then(MailMeta::key),
            ..MailMeta::default()
        })
    }

    fn box_of_mail() -> Vec<DocumentRecord> {
        vec![
            doc(
                "a",
                "/m/a.eml",
                message("ops@greenfield.example", "<1@g>", None, 100),
            ),
            doc(
                "b",
                "/m/b.eml",
                message("Anna Visser", "<2@l>", Some("<1@g>"), 200),
            ),
            doc(
                "c",
                "/m/c.eml",
                message("ops@greenfield.example", "<3@g>", Some("2@l"), 300),
            ),
            doc(
                "d",
                "/m/d.eml",
                message("legal@fjord.example", "<4@f>", None, 400),
            ),
            doc("e", "/m/c.eml/attachment-1/invoice.pdf", None),
            doc("f", "/m/notes.txt", None),
            doc(
                "g",
                "/m/d.eml/message-2",
                message("x@y.example", "<5@x>", None, 500),
            ),
        ]
    }

    fn same(t: &str) -> Result<String> {
        Ok(t.to_string())
    }

    #[test]
    fn keys_ignore_angle_brackets_and_blanks() {
        assert_eq!(MailMeta::key("<1@g>"), MailMeta::key(" 1@g "));
        assert_ne!(MailMeta::key("<1@g>"), MailMeta::key("<2@g>"));
        assert_eq!(MailMeta::key(" <> "), None);
        assert_eq!(MailMeta::key("<1@g>").unwrap().len(), 32);
    }

    #[test]
    fn fields_match_ignoring_case_and_attachments_come_along() {
        let docs = box_of_mail();
        let by = |f: MailFilter| f.select(&docs, &same).unwrap();
        let from = MailFilter {
            from: Some("GREENFIELD".into()),
            ..MailFilter::default()
        };
        assert_eq!(by(from), ["a", "c", "e"]);
        let to = MailFilter {
            to: Some("a.visser@".into()),
            sent_after: Some(150),
            sent_before: Some(300),
            ..MailFilter::default()
        };
        assert_eq!(by(to), ["b", "c", "e"]);
        let none = MailFilter {
            subject: Some("lease".into()),
            ..MailFilter::default()
        };
        assert!(by(none).is_empty());
        // A mailbox's second message is not an attachment of its first.
        let fjord = MailFilter {
            from: Some("fjord".into()),
            ..MailFilter::default()
        };
        assert_eq!(by(fjord), ["d"]);
    }

    #[test]
    fn a_thread_follows_replies_both_ways_and_no_further() {
        let docs = box_of_mail();
        for start in ["a", "b", "c"] {
            let thread = MailFilter {
                thread: Some(start.into()),
                ..MailFilter::default()
            };
            assert_eq!(thread.select(&docs, &same).unwrap(), ["a", "b", "c", "e"]);
        }
        let links = reply_links(&docs);
        assert_eq!(links.get("c").map(String::as_str), Some("b"));
        assert_eq!(links.get("b").map(String::as_str), Some("a"));
        assert_eq!(links.len(), 2);
        let not_mail = MailFilter {
            thread: Some("f".into()),
            ..MailFilter::default()
        };
        assert!(not_mail.select(&docs, &same).is_err());
    }

    #[test]
    fn fields_are_compared_restored() {
        let docs = vec![doc(
            "a",
            "/m/a.eml",
            Some(MailMeta {
                from: Some("[EMAIL_1]".into()),
                ..MailMeta::default()
            }),
        )];
        let restore = |t: &str| Ok(t.replace("[EMAIL_1]", "legal@fjord.example"));
        let f = MailFilter {
            from: Some("fjord".into()),
            ..MailFilter::default()
        };
        assert_eq!(f.select(&docs, &restore).unwrap(), ["a"]);
        assert!(f.select(&docs, &same).unwrap().is_empty());
    }
}
