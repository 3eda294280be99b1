//! Canonical JSON: the exact bytes that get signed.
//!
//! The encoding is the one of securesystemslib (python-tuf) and OLPC: object keys
//! sorted by code point, no insignificant whitespace, strings escaping only `"` and
//! `\`, integers only. Any TUF implementation computes the same bytes for the same
//! value, which is what lets python-tuf, go-tuf or tough verify a Trellis registry.
//!
//! Signatures are always checked over the canonical form of the document *as
//! received* (a `serde_json::Value`), never over a re-serialisation of our own types,
//! so fields this version does not know about are still covered by the signature.

use serde::Serialize;
use serde_json::Value;

/// A value that has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// Canonical JSON has no floating-point numbers.
    #[error("canonical JSON has no floating-point numbers, found {0}")]
    Float(String),
    /// The value did not serialise to JSON.
    #[error("value does not serialise to JSON: {0}")]
    Serialize(String),
}

/// Canonical bytes of a JSON value.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write_value(value, &mut out)?;
    Ok(out)
}

/// Canonical bytes of any serialisable value.
pub fn to_vec_of<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    let value = serde_json::to_value(value).map_err(|e| CanonicalError::Serialize(e.to_string()))?;
    to_vec(&value)
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if n.is_f64() {
                return Err(CanonicalError::Float(n.to_string()));
            }
            out.extend_from_slice(n.to_string().as_bytes());
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_value(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for &byte in s.as_bytes() {
        if byte == b'"' || byte == b'\\' {
            out.push(b'\\');
        }
        out.push(byte);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let v = json!({"b": 1, "a": [true, null, "x"], "A": {"z": -3, "y": "q"}});
        assert_eq!(to_vec(&v).unwrap(), br#"{"A":{"y":"q","z":-3},"a":[true,null,"x"],"b":1}"#);
    }

    #[test]
    fn escapes_only_quote_and_backslash() {
        let v = json!("a\"b\\c\nd\u{e9}");
        assert_eq!(to_vec(&v).unwrap(), "\"a\\\"b\\\\c\nd\u{e9}\"".as_bytes());
    }

    #[test]
    fn refuses_floats() {
        assert!(matches!(to_vec(&json!({"x": 1.5})), Err(CanonicalError::Float(_))));
    }

    #[test]
    fn sorts_by_code_point_not_by_locale() {
        let v = json!({"\u{e9}": 1, "z": 2, "Z": 3});
        assert_eq!(to_vec(&v).unwrap(), "{\"Z\":3,\"z\":2,\"\u{e9}\":1}".as_bytes());
    }
}
