//! The portable name policy (`trellis_schema::path`).
//!
//! The input is two names separated by the first NUL byte (a name without a NUL is
//! checked alone). Properties:
//! - an accepted name is relative, has no empty, `.` or `..` segment, no `\`, `:`,
//!   control or reserved character, no segment ending in a dot or space, no segment
//!   naming a Windows device (`CON`, `nul.txt`, `COM1`, …, compared as Windows does,
//!   ASCII case-insensitively, on the part before the first dot with trailing spaces
//!   removed), and fits the length limits; `PackagePath`, `check` and serde agree;
//! - `NameSet` collision is symmetric: two accepted names inserted as files collide in
//!   one order exactly when they collide in the other, and names whose folded forms
//!   are equal always collide.

use trellis_schema::path::{self, MAX_PATH_LEN, MAX_SEGMENT_LEN, NameSet, PackagePath};

/// The target body.
pub fn run(data: &[u8]) {
    let (first, second) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let Ok(first) = std::str::from_utf8(first) else { return };
    let a = check_one(first);
    let Some(second) = second.and_then(|s| std::str::from_utf8(s).ok()) else { return };
    let b = check_one(second);
    let (Some(a), Some(b)) = (a, b) else { return };
    let forward = collide(&a, &b);
    let backward = collide(&b, &a);
    assert_eq!(
        forward.is_err(),
        backward.is_err(),
        "NameSet is not symmetric: {a:?} then {b:?}: {forward:?}; {b:?} then {a:?}: {backward:?}"
    );
    if a.folded() == b.folded() {
        assert!(forward.is_err(), "{a:?} and {b:?} fold to the same name but do not collide");
    }
    // A directory entry and a file under it never collide; the same name as file and
    // directory always does.
    let mut set = NameSet::new();
    if set.insert_dir(&a).is_ok() {
        assert!(set.insert_file(&a).is_err(), "{a:?} accepted as both a directory and a file");
    }
}

fn collide(a: &PackagePath, b: &PackagePath) -> Result<(), path::NameError> {
    let mut set = NameSet::new();
    set.insert_file(a)?;
    set.insert_file(b)
}

/// Checks one name and, when accepted, the properties of an accepted name.
fn check_one(name: &str) -> Option<PackagePath> {
    let checked = path::check(name);
    let parsed = PackagePath::new(name);
    assert_eq!(checked.is_ok(), parsed.is_ok(), "check and PackagePath::new disagree on {name:?}");
    let via_serde = serde_json::from_value::<PackagePath>(serde_json::Value::String(name.to_owned()));
    assert_eq!(via_serde.is_ok(), parsed.is_ok(), "serde and PackagePath::new disagree on {name:?}");
    let parsed = parsed.ok()?;
    assert_eq!(parsed.as_str(), name);
    assert!(!name.is_empty() && name.len() <= MAX_PATH_LEN, "accepted length {}: {name:?}", name.len());
    assert!(!name.starts_with('/'), "accepted an absolute name {name:?}");
    for forbidden in ['\\', ':', '<', '>', '"', '|', '?', '*'] {
        assert!(!name.contains(forbidden), "accepted {forbidden:?} in {name:?}");
    }
    assert!(!name.chars().any(char::is_control), "accepted a control character in {name:?}");
    for segment in name.split('/') {
        assert!(!segment.is_empty() && segment != "." && segment != "..", "accepted segment {segment:?} in {name:?}");
        assert!(!segment.ends_with('.') && !segment.ends_with(' '), "accepted segment {segment:?} in {name:?}");
        assert!(segment.len() <= MAX_SEGMENT_LEN, "accepted a {}-byte segment in {name:?}", segment.len());
        assert!(!is_windows_device(segment), "accepted device name {segment:?} in {name:?}");
    }
    assert_eq!(parsed.segments().collect::<Vec<_>>(), name.split('/').collect::<Vec<_>>());
    Some(parsed)
}

/// An independent statement of Windows' reserved device names.
fn is_windows_device(segment: &str) -> bool {
    let stem = segment.split('.').next().unwrap_or(segment).trim_end_matches(' ').to_ascii_uppercase();
    if matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$") {
        return true;
    }
    let digit = stem.strip_prefix("COM").or_else(|| stem.strip_prefix("LPT"));
    matches!(digit, Some("0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "¹" | "²" | "³"))
}
