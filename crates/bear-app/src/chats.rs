//! Saved free chats (the web app's Chat history): each user's conversations with a model, kept
//! on the server in one file per user (`<data>/chats/<owner>.sealed`), sealed whole under that
//! user's own data key in the keyring (`@chats/<owner>`), so a chat is protected as a matter's
//! data is and one user's chats can be destroyed without touching another's. Without a keyring
//! (sealing off), the file is plain JSON lines (`<owner>.jsonl`). A user sees only their own
//! chats, admins included: a chat is private, not an object of the firm.

use serde::{Deserialize, Serialize};

use crate::docs::Removed;
use crate::sealed_list::SealedList;
use crate::{App, Error, Result, Viewer};

/// The directory below the data directory.
const DIR: &str = "chats";
/// The most chats one user keeps.
pub const MAX_CHATS: usize = 1000;
/// The most messages in one chat.
pub const MAX_MESSAGES: usize = 1000;
/// The most text (bytes, all messages and the system prompt) in one chat.
pub const MAX_TEXT: usize = 1 << 20;
/// The longest title, in characters; a title made from the first message is cut there.
pub const MAX_TITLE: usize = 120;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    /// The user.
    User,
    /// The model.
    Assistant,
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatMessage {
    /// Who said it.
    pub role: ChatRole,
    /// What was said.
    pub content: String,
}

/// A chat to save: `POST /api/v1/chats` (new) or `PUT /api/v1/chats/{id}` (replaces it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SaveChat {
    /// Its title; absent or blank: the start of the first message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The model it was held with.
    pub model: String,
    /// The system prompt.
    #[serde(default)]
    pub system: String,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Token limit per answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The messages, oldest first.
    pub messages: Vec<ChatMessage>,
}

/// A saved chat, whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SavedChat {
    /// Its id (a UUID, time-ordered).
    pub id: String,
    /// When it was first saved (RFC 3339, UTC).
    pub created_at: String,
    /// When it was last saved.
    pub updated_at: String,
    /// The chat: title (always set here), model, settings, messages.
    #[serde(flatten)]
    pub chat: SaveChat,
}

/// One chat in a list: enough to pick it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ChatItem {
    /// Its id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// The model it was held with.
    pub model: String,
    /// When it was last saved (RFC 3339, UTC).
    pub updated_at: String,
    /// How many messages it holds.
    pub messages: usize,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn not_found(id: &str) -> Error {
    Error::Core(bear_core::Error::backend(
        bear_core::ErrorKind::NotFound,
        format!("no saved chat `{id}`: it was deleted, or it is another user's"),
    ))
}

/// The name of `viewer`'s chat file and keyring entry.
fn owner(viewer: &Viewer) -> Result<String> {
    match viewer {
        Viewer::Local => Ok("local".into()),
        Viewer::Key { id, .. } => key_owner(id),
    }
}

/// The owner name of API key `id`'s chats.
fn key_owner(id: &str) -> Result<String> {
    let plain = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    match plain {
        true => Ok(format!("key-{id}")),
        false => Err(Error::invalid("key", "a key id of letters and digits")),
    }
}

/// Checks `chat` against the limits and gives it a title if it has none.
fn checked(mut chat: SaveChat) -> Result<SaveChat> {
    if chat.model.trim().is_empty() {
        return Err(Error::invalid("model", "the model the chat was held with"));
    }
    if chat.messages.is_empty() || chat.messages.len() > MAX_MESSAGES {
        return Err(Error::invalid(
            "messages",
            format!("1 to {MAX_MESSAGES} messages"),
        ));
    }
    let text: usize =
        chat.system.len() + chat.messages.iter().map(|m| m.content.len()).sum::<usize>();
    if text > MAX_TEXT {
        return Err(Error::invalid(
            "messages",
            format!(
                "at most {} MiB of text in one chat: start a new chat",
                MAX_TEXT >> 20
            ),
        ));
    }
    if let Some(t) = &chat.temperature
        && !(0.0..=2.0).contains(t)
    {
        return Err(Error::invalid("temperature", "0 to 2"));
    }
    let title = match chat.title.as_deref().map(str::trim) {
        Some(t) if !t.is_empty() => t.to_string(),
        _ => chat.messages[0].content.trim().to_string(),
    };
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    chat.title = Some(match title.chars().count() > MAX_TITLE {
        true => title.chars().take(MAX_TITLE - 1).collect::<String>() + "…",
        false if title.is_empty() => "Untitled chat".into(),
        false => title,
    });
    Ok(chat)
}

impl App {
    /// `viewer`'s chat file, sealed under their key when data is sealed.
    fn chat_file(&self, viewer: &Viewer) -> Result<SealedList<SavedChat>> {
        let owner = owner(viewer)?;
        let dir = self.config().dirs.data_dir.join(DIR);
        let (file, keys) = match self.scrubbers_seal() {
            true => (
                format!("{owner}.sealed"),
                Some(self.keys_for(&format!("@chats/{owner}"))?),
            ),
            false => (format!("{owner}.jsonl"), None),
        };
        let lock = dir.join(format!("{owner}.lock"));
        Ok(SealedList::new(
            dir.join(&file),
            &file,
            lock,
            keys,
            "the saved chats",
        ))
    }

    /// `viewer`'s saved chats, the most recently saved first.
    pub fn chats(&self, viewer: &Viewer) -> Result<Vec<ChatItem>> {
        let mut all = self.chat_file(viewer)?.read()?;
        all.sort_by(|a, b| b.updated_at.cmp(&a.updated_at));
        Ok(all
            .into_iter()
            .map(|c| ChatItem {
                id: c.id,
                title: c.chat.title.unwrap_or_default(),
                model: c.chat.model,
                updated_at: c.updated_at,
                messages: c.chat.messages.len(),
            })
            .collect())
    }

    /// `viewer`'s saved chat `id`.
    pub fn chat_of(&self, viewer: &Viewer, id: &str) -> Result<SavedChat> {
        self.chat_file(viewer)?
            .read()?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| not_found(id))
    }

    /// Saves `chat` as a new chat of `viewer`'s (`id` absent) or in place of chat `id`.
    pub fn save_chat(
        &self,
        viewer: &Viewer,
        id: Option<&str>,
        chat: SaveChat,
    ) -> Result<SavedChat> {
        let chat = checked(chat)?;
        let saved = self.chat_file(viewer)?.update(|all| match id {
            Some(id) => {
                let old = all
                    .iter_mut()
                    .find(|c| c.id == id)
                    .ok_or_else(|| not_found(id))?;
                old.chat = chat;
                old.updated_at = now();
                Ok(old.clone())
            }
            None if all.len() >= MAX_CHATS => Err(Error::invalid(
                "chats",
                format!("at most {MAX_CHATS} saved chats: delete some first"),
            )),
            None => {
                let at = now();
                let new = SavedChat {
                    id: uuid::Uuid::now_v7().to_string(),
                    created_at: at.clone(),
                    updated_at: at,
                    chat,
                };
                all.push(new.clone());
                Ok(new)
            }
        })?;
        Ok(saved)
    }

    /// Destroys the saved chats of API key `id` (revoked: no one can sign in as it again):
    /// their data key first, so a copy of the file made before opens with nothing, then the
    /// file. Whether there were any.
    pub(crate) fn shred_chats_of_key(&self, id: &str) -> Result<bool> {
        let owner = key_owner(id)?;
        let shredded = self.scrubbers.shred(&format!("@chats/{owner}"))?;
        let dir = self.config().dirs.data_dir.join(DIR);
        let mut removed = false;
        for file in [
            format!("{owner}.sealed"),
            format!("{owner}.jsonl"),
            format!("{owner}.lock"),
        ] {
            match std::fs::remove_file(dir.join(&file)) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::Core(bear_core::Error::backend(
                        bear_core::ErrorKind::Storage,
                        format!("the key is revoked but its saved chats are not removed: {e}"),
                    )));
                }
            }
        }
        Ok(shredded || removed)
    }

    /// Deletes `viewer`'s saved chat `id`, and audits it.
    pub fn remove_chat(&self, viewer: &Viewer, id: &str) -> Result<Removed> {
        self.audit_log()?;
        self.chat_file(viewer)?.update(|all| {
            let before = all.len();
            all.retain(|c| c.id != id);
            match all.len() == before {
                true => Err(not_found(id)),
                false => Ok(()),
            }
        })?;
        self.record(viewer, "chats.rm", "ok", (1, 0))?;
        Ok(Removed {
            id: id.to_string(),
            path: None,
            status: "removed".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(first: &str) -> SaveChat {
        SaveChat {
            title: None,
            model: "m".into(),
            system: String::new(),
            temperature: None,
            max_tokens: None,
            messages: vec![ChatMessage {
                role: ChatRole::User,
                content: first.into(),
            }],
        }
    }

    #[test]
    fn a_title_comes_from_the_first_message_cut_to_its_limit() {
        let c = checked(chat("  What is\n the notice  period? ")).unwrap();
        assert_eq!(c.title.as_deref(), Some("What is the notice period?"));
        let c = checked(chat(&"é".repeat(500))).unwrap();
        let t = c.title.unwrap();
        assert_eq!(t.chars().count(), MAX_TITLE);
        assert!(t.ends_with('…'));
        assert_eq!(
            checked(chat("   ")).unwrap().title.as_deref(),
            Some("Untitled chat")
        );
    }

    #[test]
    fn chats_outside_the_limits_are_refused_naming_the_field() {
        let mut empty = chat("x");
        empty.messages.clear();
        assert_eq!(checked(empty).unwrap_err().field(), Some("messages"));
        let huge = chat(&"x".repeat(MAX_TEXT + 1));
        assert_eq!(checked(huge).unwrap_err().field(), Some("messages"));
        let mut hot = chat("x");
        hot.temperature = Some(f32::NAN);
        assert_eq!(checked(hot).unwrap_err().field(), Some("temperature"));
        let mut nameless = chat("x");
        nameless.model = " ".into();
        assert_eq!(checked(nameless).unwrap_err().field(), Some("model"));
    }

    #[test]
    fn a_key_id_that_could_leave_the_directory_is_refused() {
        let bad = Viewer::Key {
            id: "../x".into(),
            admin: false,
        };
        assert!(owner(&bad).is_err());
        let good = Viewer::Key {
            id: "a1b2c3".into(),
            admin: true,
        };
        assert_eq!(owner(&good).unwrap(), "key-a1b2c3");
        assert_eq!(owner(&Viewer::Local).unwrap(), "local");
    }
}
