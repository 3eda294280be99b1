//! The error every command returns, serialised for the webview as
//! `{ "kind": "...", "message": "..." }` with the whole cause chain in `message`.

use serde::{Serialize, Serializer};
use trellis_client::store::StoreError;

/// A failed store command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store refused or failed the operation (its message says what and where).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An argument from the webview is not valid (names the argument and the value).
    #[error("{0}")]
    Invalid(String),
    /// The store could not be opened when the app started; every command reports why.
    #[error("the plugin store could not be opened: {0}")]
    NotOpen(String),
    /// A consent answer named a question that is not waiting (answered already, timed
    /// out, or never asked).
    #[error("no consent question {0} is waiting for an answer (answered already, timed out, or never asked)")]
    NoSuchQuestion(u64),
    /// The worker thread running the operation panicked or was cancelled.
    #[error("the store operation did not finish: {0}")]
    Task(String),
}

impl Error {
    /// A short machine-readable name of the variant, for the frontend's `switch`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Store(_) => "store",
            Self::Invalid(_) => "invalid",
            Self::NotOpen(_) => "not_open",
            Self::NoSuchQuestion(_) => "no_such_question",
            Self::Task(_) => "task",
        }
    }

    /// The message with every source appended (`outer: inner: innermost`), so the
    /// webview shows what the CLI would.
    pub fn full_message(&self) -> String {
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        // `Store` is transparent: its own message is already the first line.
        if matches!(self, Self::Store(_)) {
            source = source.and_then(std::error::Error::source);
        }
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        message
    }
}

impl Serialize for Error {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Error", 2)?;
        s.serialize_field("kind", self.kind())?;
        s.serialize_field("message", &self.full_message())?;
        s.end()
    }
}

/// The result of every command.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_serialise_with_kind_and_the_whole_chain() {
        let error = Error::Store(StoreError::BadRegistryName { name: "My Store".into() });
        let json = serde_json::to_value(&error).unwrap_or_default();
        assert_eq!(json["kind"], "store");
        assert!(
            json["message"].as_str().unwrap_or_default().contains("`My Store` is not a valid registry name"),
            "{json}"
        );
        let json = serde_json::to_value(Error::NoSuchQuestion(7)).unwrap_or_default();
        assert_eq!(json["kind"], "no_such_question");
        assert!(json["message"].as_str().unwrap_or_default().contains("question 7"), "{json}");
    }
}
