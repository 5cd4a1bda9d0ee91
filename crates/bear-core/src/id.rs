//! Identifiers for the things BEAR names: models, documents, collections, runs, steps, agents.
//!
//! Every identifier is a validated string: 1 to 128 bytes of ASCII letters, digits, `.`, `_`,
//! `-` and `:`, not starting with `.` and without `..`. The rule makes an id safe to use as a
//! file name, a URL path segment or a SQL value, which is why ids from users (API paths, CLI
//! arguments) are parsed here before anything else sees them. bear-core only validates; crates
//! that mint new ids (runs, requests) do so from their own randomness.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// Longest accepted identifier, in bytes.
pub const MAX_ID_LEN: usize = 128;

fn validate(what: &'static str, s: &str) -> Result<(), Error> {
    let reason = if s.is_empty() {
        "it is empty"
    } else if s.len() > MAX_ID_LEN {
        "it is longer than 128 bytes"
    } else if s.starts_with('.') || s.contains("..") {
        "it starts with `.` or contains `..`"
    } else if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
    {
        "only ASCII letters, digits, `.`, `_`, `-` and `:` are allowed"
    } else {
        return Ok(());
    };
    Err(Error::InvalidId { what, reason })
}

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps an identifier.
            pub fn new(s: impl Into<String>) -> Result<Self, Error> {
                let s = s.into();
                validate($what, &s)?;
                Ok(Self(s))
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Self::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

define_id!(
    /// A model in the registry, such as `smollm2-135m-instruct-q4_1`.
    ModelId, "model"
);
define_id!(
    /// A document inside a collection.
    DocumentId, "document"
);
define_id!(
    /// A collection of documents: one matter, one LanceDB table.
    CollectionId, "collection"
);
define_id!(
    /// A workflow definition.
    WorkflowId, "workflow"
);
define_id!(
    /// One run of a workflow.
    RunId, "run"
);
define_id!(
    /// A step inside a workflow definition.
    StepId, "step"
);
define_id!(
    /// A registered agent.
    AgentId, "agent"
);
define_id!(
    /// An installed plugin.
    PluginId, "plugin"
);
define_id!(
    /// One API request, echoed in every response and audit record.
    RequestId, "request"
);

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, ok: bool) {
        assert_eq!(ModelId::new(input).is_ok(), ok, "{input:?}");
    }

    #[test]
    fn id_rules() {
        check("smollm2-135m-instruct.q4_1", true);
        check("run:2026-11-24:0001", true);
        check("A_b.c-9", true);
        check("", false);
        check(".hidden", false);
        check("a..b", false);
        check("../etc/passwd", false);
        check("a/b", false);
        check("a b", false);
        check("café", false);
        check(&"x".repeat(128), true);
        check(&"x".repeat(129), false);
    }

    #[test]
    fn ids_deserialize_with_validation() {
        let ok: StepId = serde_json::from_str("\"extract\"").unwrap();
        assert_eq!(ok.as_str(), "extract");
        let err = serde_json::from_str::<StepId>("\"../x\"").unwrap_err();
        assert!(err.to_string().contains("invalid step id"), "{err}");
    }
}
