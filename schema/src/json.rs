//! Strict JSON: the one parser for every signed or trusted document.
//!
//! `serde_json` lets the last of two members with the same name win, silently; a
//! derived struct refuses a duplicated *field* but a map (`targets`, `meta`, `keys`)
//! or a `Value` keeps the last one. Two readers of the same bytes can then disagree
//! (one refusing, one taking the last member), which is exactly what an attacker
//! needs to make a verified document mean two things. [`from_slice`] refuses any
//! object, at any depth, that names a member twice, saying which member and where
//! (`duplicate member "version" in $.signed at line 1 column 57`), and only then
//! deserializes.
//!
//! Use it for every document whose bytes are signed or trusted: TUF metadata, index
//! docs, publisher records, the blocklist, DSSE envelopes and their payloads. Files
//! the client writes for itself (the state file, receipts) do not need it.
//!
//! The check is one extra pass over the bytes that allocates only for member names
//! with escapes; see [`check`].

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt::{self, Write as _};

use serde::de::{DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// Why bytes were refused as a strict JSON document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// An object names the same member twice.
    #[error("duplicate member {member:?} in {path} at line {line} column {column}")]
    DuplicateMember {
        /// The member name.
        member: String,
        /// Where the object is, as a JSONPath (`$.signed.meta["snapshot.json"]`).
        path: String,
        /// Line of the second occurrence (1-based).
        line: usize,
        /// Column where its second occurrence ends.
        column: usize,
    },
    /// Not JSON, or not the shape the document type requires (serde's message, with
    /// line and column).
    #[error("{0}")]
    Invalid(String),
}

/// Parses `bytes` into `T` after checking that no object in the document repeats a
/// member name (see the module docs).
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    check(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| JsonError::Invalid(e.to_string()))
}

/// Checks that `bytes` is one JSON value in which no object repeats a member name,
/// without building it.
pub fn check(bytes: &[u8]) -> Result<(), JsonError> {
    let found = RefCell::new(None);
    let root = Node { parent: None, segment: Segment::Root };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let result = Check { at: &root, found: &found }.deserialize(&mut deserializer).and_then(|()| deserializer.end());
    match result {
        Ok(()) => Ok(()),
        Err(e) => Err(match found.into_inner() {
            Some((member, path)) => JsonError::DuplicateMember { member, path, line: e.line(), column: e.column() },
            None => JsonError::Invalid(e.to_string()),
        }),
    }
}

/// One step of the path from the document's root to the value being checked.
enum Segment<'a> {
    Root,
    Member(&'a str),
    Index(usize),
}

/// A path as a linked list on the stack: rendered only when a duplicate is found.
struct Node<'a> {
    parent: Option<&'a Node<'a>>,
    segment: Segment<'a>,
}

impl Node<'_> {
    fn render(&self) -> String {
        let mut segments = Vec::new();
        let mut node = Some(self);
        while let Some(current) = node {
            segments.push(&current.segment);
            node = current.parent;
        }
        let mut out = String::new();
        for segment in segments.into_iter().rev() {
            match segment {
                Segment::Root => out.push('$'),
                Segment::Member(name) if is_plain(name) => {
                    out.push('.');
                    out.push_str(name);
                }
                Segment::Member(name) => {
                    let _ = write!(out, "[{name:?}]");
                }
                Segment::Index(index) => {
                    let _ = write!(out, "[{index}]");
                }
            }
        }
        out
    }
}

fn is_plain(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Walks one value, refusing objects with a repeated member name. The first duplicate
/// (name, rendered path) is left in `found`.
struct Check<'a, 'f> {
    at: &'a Node<'a>,
    found: &'f RefCell<Option<(String, String)>>,
}

impl<'de> DeserializeSeed<'de> for Check<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            let node = Node { parent: Some(self.at), segment: Segment::Index(index) };
            if seq.next_element_seed(Check { at: &node, found: self.found })?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(name) = map.next_key_seed(MemberName)? {
            if seen.contains(&name) {
                let path = self.at.render();
                let message = format!("duplicate member {:?} in {path}", name.as_ref());
                *self.found.borrow_mut() = Some((name.into_owned(), path));
                return Err(serde::de::Error::custom(message));
            }
            {
                let node = Node { parent: Some(self.at), segment: Segment::Member(name.as_ref()) };
                map.next_value_seed(Check { at: &node, found: self.found })?;
            }
            seen.insert(name);
        }
        Ok(())
    }
}

/// A member name, borrowed from the input when it has no escapes.
struct MemberName;

impl<'de> DeserializeSeed<'de> for MemberName {
    type Value = Cow<'de, str>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for MemberName {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn refuses_a_duplicate_member_naming_it_and_where() {
        let err = from_slice::<Value>(br#"{"signed":{"version":2,"version":1},"signatures":[]}"#).unwrap_err();
        assert!(
            matches!(&err, JsonError::DuplicateMember { member, path, .. } if member == "version" && path == "$.signed")
        );
        assert_eq!(err.to_string(), r#"duplicate member "version" in $.signed at line 1 column 32"#);
    }

    #[test]
    fn finds_duplicates_at_any_depth_and_in_arrays() {
        let cases: [(&str, &str, &str); 4] = [
            (r#"{"a":1,"a":1}"#, "a", "$"),
            (r#"{"meta":{"snapshot.json":{"version":1},"snapshot.json":{"version":9}}}"#, "snapshot.json", "$.meta"),
            (r#"{"s":[{},{"k":1,"k":2}]}"#, "k", "$.s[1]"),
            (r#"{"targets":{"a/b.json":{"hashes":{"x":"1","x":"2"}}}}"#, "x", r#"$.targets["a/b.json"].hashes"#),
        ];
        for (text, member, path) in cases {
            match from_slice::<Value>(text.as_bytes()) {
                Err(JsonError::DuplicateMember { member: m, path: p, .. }) => {
                    assert_eq!((m.as_str(), p.as_str()), (member, path), "{text}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn escaped_and_plain_spellings_of_one_name_are_the_same_member() {
        let err = from_slice::<Value>(br#"{"version":1,"vers\u0069on":2}"#).unwrap_err();
        assert!(matches!(err, JsonError::DuplicateMember { member, .. } if member == "version"));
    }

    #[test]
    fn accepts_what_serde_json_accepts_without_duplicates() {
        let text = br#" {"a":[1,-2,3.5,"x",null,true,{"a":1}],"b":{"a":{}} , "\"q":"" } "#;
        assert_eq!(from_slice::<Value>(text).unwrap(), serde_json::from_slice::<Value>(text).unwrap());
        assert!(matches!(from_slice::<Value>(b"{} {}"), Err(JsonError::Invalid(_))));
        assert!(matches!(from_slice::<Value>(b"{\"a\":"), Err(JsonError::Invalid(_))));
        assert!(matches!(from_slice::<u32>(b"\"x\""), Err(JsonError::Invalid(_))));
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_serde_json_on_documents_without_duplicates(keys in proptest::collection::btree_set("[a-z\"\\\\]{0,4}", 0..6)) {
            let map: serde_json::Map<String, Value> = keys.into_iter().map(|k| (k.clone(), Value::String(k))).collect();
            let text = serde_json::to_vec(&Value::Object(map.clone())).unwrap();
            proptest::prop_assert_eq!(from_slice::<Value>(&text).unwrap(), Value::Object(map));
        }
    }
}
