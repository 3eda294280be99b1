//! Canonical JSON (`trellis_schema::canonical`): parse → canonicalize → reparse.
//!
//! Properties, for any input that parses as JSON:
//! - canonicalizing fails only for a value holding a floating-point number;
//! - the canonical bytes contain no insignificant whitespace outside strings and
//!   object keys come out sorted by code point;
//! - unless a string holds a control character (canonical JSON does not escape them,
//!   so its bytes are not JSON), the canonical bytes parse back to an equal value and
//!   canonicalize to the same bytes again (a fixed point).

use serde_json::Value;
use trellis_schema::canonical;

/// The target body.
pub fn run(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    let bytes = match canonical::to_vec(&value) {
        Ok(bytes) => bytes,
        Err(canonical::CanonicalError::Float(_)) => {
            assert!(has_float(&value), "canonical JSON refused a value without floats: {value}");
            return;
        }
        Err(other) => panic!("canonical JSON failed on a parsed value: {other}"),
    };
    assert!(!has_float(&value), "canonical JSON accepted a float");
    if has_control_character(&value) {
        return;
    }
    let again: Value = match serde_json::from_slice(&bytes) {
        Ok(again) => again,
        Err(e) => panic!("canonical bytes do not parse ({e}): {}", String::from_utf8_lossy(&bytes)),
    };
    assert_eq!(again, value, "canonical JSON changed the value");
    let twice = canonical::to_vec(&again).expect("a value that canonicalized once canonicalizes again");
    assert_eq!(twice, bytes, "canonical JSON is not a fixed point");
    assert_sorted(&again);
}

fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

fn has_control_character(value: &Value) -> bool {
    let control = |s: &str| s.chars().any(|c| u32::from(c) < 0x20);
    match value {
        Value::String(s) => control(s),
        Value::Array(items) => items.iter().any(has_control_character),
        Value::Object(map) => map.iter().any(|(k, v)| control(k) || has_control_character(v)),
        _ => false,
    }
}

/// Reparsed with `preserve_order`, object members must come in code-point order.
fn assert_sorted(value: &Value) {
    match value {
        Value::Array(items) => items.iter().for_each(assert_sorted),
        Value::Object(map) => {
            let keys: Vec<&String> = map.keys().collect();
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "canonical object keys are not sorted: {keys:?}");
            map.values().for_each(assert_sorted);
        }
        _ => {}
    }
}
