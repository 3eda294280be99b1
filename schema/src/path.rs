//! The portable name policy: which paths may appear inside a package.
//!
//! One policy for every operating system, so a package that installs on Linux installs
//! identically on Windows and macOS, and no name can escape the install directory or
//! mean something special to a file system. A [`PackagePath`] is a `/`-separated
//! relative path that:
//!
//! - is not empty and has no empty, `.` or `..` segment;
//! - does not start with `/` or `\`, is not a UNC path (`\\host\share`, `//host/share`)
//!   and has no drive prefix (`C:x`, `C:\x`);
//! - contains no `\` and no `:` (alternate data streams, drive-relative paths);
//! - contains no NUL or control character and none of `< > " | ? *`, which Windows refuses;
//! - has no segment that is a Windows device name (`CON`, `PRN`, `AUX`, `NUL`, `COM0-9`,
//!   `LPT0-9`, the superscript digits `COM¹²³`/`LPT¹²³`, `CONIN$`, `CONOUT$`) in any case
//!   and with any extension (`aux.json`, `Com1.tar.gz`);
//! - has no segment ending in `.` or space (Windows silently strips them);
//! - is at most [`MAX_PATH_LEN`] bytes with segments of at most [`MAX_SEGMENT_LEN`] bytes.
//!
//! [`NameSet`] then refuses a *set* of names that would collide on a case-insensitive
//! file system (`A.dll` + `a.dll`) or a normalization-insensitive one (macOS: `café`
//! spelled with `é` and with `e` + combining acute accent), exact duplicates, and a name
//! used both as a file and as a directory. Both spellings of a name are accepted on their
//! own; only a set holding two of them is refused.
//!
//! This module is pure. `trellis-index pack` and `lint` call it to refuse trees that
//! extraction would refuse; `trellis_client::package` calls it on every entry of an
//! archive before anything touches the disk.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use unicode_normalization::UnicodeNormalization;

/// Longest accepted path, in bytes. Leaves room under Windows' 260-character `MAX_PATH`
/// for the install prefix (`…\plugins\<id>\<version>\`).
pub const MAX_PATH_LEN: usize = 160;
/// Longest accepted segment, in bytes.
pub const MAX_SEGMENT_LEN: usize = 100;

/// Why a name is not a portable package path. Every variant names the path and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The empty string.
    #[error("empty path; package paths are relative paths such as `resources/icon.png`")]
    Empty,
    /// Starts with `/`.
    #[error("{path:?}: absolute path; package paths are relative to the package root")]
    Absolute {
        /// The offending path.
        path: String,
    },
    /// `\\host\share\…` or `//host/share/…`.
    #[error("{path:?}: UNC network path; package paths are relative to the package root")]
    Unc {
        /// The offending path.
        path: String,
    },
    /// `C:x`, `C:\x`, `C:/x`.
    #[error("{path:?}: drive prefix {drive:?}; package paths are relative and carry no drive letter")]
    DriveLetter {
        /// The offending path.
        path: String,
        /// The drive prefix, e.g. `C:`.
        drive: String,
    },
    /// A `\` anywhere.
    #[error("{path:?}: backslash at byte {index}; use `/` as the only separator")]
    Backslash {
        /// The offending path.
        path: String,
        /// Byte offset of the first backslash.
        index: usize,
    },
    /// A `:` anywhere (NTFS alternate data stream, drive-relative path).
    #[error("{path:?}: ':' at byte {index} (an NTFS alternate data stream or drive reference) is not allowed")]
    Colon {
        /// The offending path.
        path: String,
        /// Byte offset of the first colon.
        index: usize,
    },
    /// `a//b`, or a trailing `/`.
    #[error("{path:?}: empty segment (`//` or a trailing `/`)")]
    EmptySegment {
        /// The offending path.
        path: String,
    },
    /// A `.` or `..` segment.
    #[error("{path:?}: segment {segment:?} is not allowed; paths must not refer to `.` or `..`")]
    DotSegment {
        /// The offending path.
        path: String,
        /// `.` or `..`.
        segment: String,
    },
    /// A Windows device name, with or without extension, in any case.
    #[error("{path:?}: segment {segment:?} is the Windows device name {device}; rename it")]
    DeviceName {
        /// The offending path.
        path: String,
        /// The offending segment.
        segment: String,
        /// The device it names, upper case (`AUX`, `COM1`).
        device: String,
    },
    /// A segment ending in `.` or space, which Windows strips.
    #[error("{path:?}: segment {segment:?} ends with a dot or space, which Windows strips; rename it")]
    TrailingDotOrSpace {
        /// The offending path.
        path: String,
        /// The offending segment.
        segment: String,
    },
    /// NUL or another control character.
    #[error("{path:?}: control character {ch:?} at byte {index}")]
    ControlCharacter {
        /// The offending path.
        path: String,
        /// The character.
        ch: char,
        /// Its byte offset.
        index: usize,
    },
    /// One of `< > " | ? *`.
    #[error("{path:?}: character {ch:?} at byte {index} is reserved on Windows")]
    ReservedCharacter {
        /// The offending path.
        path: String,
        /// The character.
        ch: char,
        /// Its byte offset.
        index: usize,
    },
    /// Longer than [`MAX_PATH_LEN`].
    #[error("{path:?}: {len} bytes long; at most {max} are allowed")]
    PathTooLong {
        /// The offending path.
        path: String,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A segment longer than [`MAX_SEGMENT_LEN`].
    #[error("{path:?}: segment {segment:?} is {len} bytes long; at most {max} are allowed")]
    SegmentTooLong {
        /// The offending path.
        path: String,
        /// The offending segment.
        segment: String,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The same path twice.
    #[error("{path:?} appears twice")]
    Duplicate {
        /// The duplicated path.
        path: String,
    },
    /// Two paths equal but for letter case (`A.dll`, `a.dll`).
    #[error("{path:?} and {other:?} differ only in letter case and collide on Windows and macOS")]
    CaseCollision {
        /// The path added last.
        path: String,
        /// The path it collides with.
        other: String,
    },
    /// Two paths equal but for Unicode normalization (`é` as one code point and as `e`
    /// plus a combining accent), possibly also letter case.
    #[error(
        "{path:?} and {other:?} are the same name in different Unicode normalization forms (NFC/NFD) \
         and collide on macOS; spell both the same way"
    )]
    NormalizationCollision {
        /// The path added last.
        path: String,
        /// The path it collides with.
        other: String,
    },
    /// A path used both as a file and as a directory (`docs` and `docs/README.md`).
    #[error("{file:?} is a file but {other:?} uses it as a directory")]
    FileDirectoryConflict {
        /// The path that is a file.
        file: String,
        /// The path that needs it to be a directory.
        other: String,
    },
}

/// A path inside a package that passed the portable name policy.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PackagePath(String);

impl PackagePath {
    /// Checks `path` against the policy.
    pub fn new(path: &str) -> Result<Self, NameError> {
        check(path)?;
        Ok(Self(path.to_owned()))
    }

    /// The path as written, `/`-separated.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The case-folded form used to detect collisions.
    pub fn folded(&self) -> String {
        fold(&self.0)
    }
}

impl fmt::Display for PackagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PackagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PackagePath({:?})", self.0)
    }
}

impl AsRef<str> for PackagePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl FromStr for PackagePath {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl Serialize for PackagePath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PackagePath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// The key two names collide under: Unicode canonical caseless matching
/// (`NFD(lowercase(NFD(path)))`), which catches case-insensitive (Windows, macOS) and
/// normalization-insensitive (macOS) collisions. Lower case rather than full case
/// folding: `ß` and `ss` are different names on every file system we install to.
fn fold(path: &str) -> String {
    path.nfd().collect::<String>().to_lowercase().nfd().collect()
}

/// Checks one path against the policy.
pub fn check(path: &str) -> Result<(), NameError> {
    let owned = || path.to_owned();
    if path.is_empty() {
        return Err(NameError::Empty);
    }
    let bytes = path.as_bytes();
    if path.starts_with("\\\\") || path.starts_with("//") {
        return Err(NameError::Unc { path: owned() });
    }
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err(NameError::DriveLetter { path: owned(), drive: path[..2].to_owned() });
    }
    if path.starts_with('/') {
        return Err(NameError::Absolute { path: owned() });
    }
    if let Some(index) = path.find('\\') {
        return Err(NameError::Backslash { path: owned(), index });
    }
    if let Some(index) = path.find(':') {
        return Err(NameError::Colon { path: owned(), index });
    }
    for (index, ch) in path.char_indices() {
        if ch.is_control() {
            return Err(NameError::ControlCharacter { path: owned(), ch, index });
        }
        if matches!(ch, '<' | '>' | '"' | '|' | '?' | '*') {
            return Err(NameError::ReservedCharacter { path: owned(), ch, index });
        }
    }
    for segment in path.split('/') {
        check_segment(path, segment)?;
    }
    if path.len() > MAX_PATH_LEN {
        return Err(NameError::PathTooLong { path: owned(), len: path.len(), max: MAX_PATH_LEN });
    }
    Ok(())
}

fn check_segment(path: &str, segment: &str) -> Result<(), NameError> {
    let path = || path.to_owned();
    if segment.is_empty() {
        return Err(NameError::EmptySegment { path: path() });
    }
    if segment == "." || segment == ".." {
        return Err(NameError::DotSegment { path: path(), segment: segment.to_owned() });
    }
    if segment.ends_with('.') || segment.ends_with(' ') {
        return Err(NameError::TrailingDotOrSpace { path: path(), segment: segment.to_owned() });
    }
    if let Some(device) = device_name(segment) {
        return Err(NameError::DeviceName { path: path(), segment: segment.to_owned(), device });
    }
    if segment.len() > MAX_SEGMENT_LEN {
        return Err(NameError::SegmentTooLong {
            path: path(),
            segment: segment.to_owned(),
            len: segment.len(),
            max: MAX_SEGMENT_LEN,
        });
    }
    Ok(())
}

/// The Windows device a segment names, if any: the part before the first `.`, with
/// trailing spaces removed, compared without regard to case.
pub(crate) fn device_name(segment: &str) -> Option<String> {
    let stem = segment.split('.').next().unwrap_or(segment).trim_end_matches(' ');
    // Upper-casing never makes fewer characters, and the longest device name has 7
    // (`CONOUT$`): a longer stem names none (most ids and paths: no allocation).
    if stem.chars().nth(7).is_some() {
        return None;
    }
    // An ASCII stem (every id segment, most path segments) is upper-cased on the stack;
    // any other by the Unicode rules (`ı` upper-cases to `I`, `ſ` to `S`).
    let mut ascii = [0u8; 7];
    let upper: std::borrow::Cow<'_, str> = match ascii.get_mut(..stem.len()) {
        Some(buffer) if stem.is_ascii() => {
            buffer.copy_from_slice(stem.as_bytes());
            buffer.make_ascii_uppercase();
            std::str::from_utf8(buffer).map_or_else(|_| stem.to_uppercase().into(), Into::into)
        }
        _ => stem.to_uppercase().into(),
    };
    let is_device = match upper.as_ref() {
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$" => true,
        other => {
            let numbered = other.strip_prefix("COM").or_else(|| other.strip_prefix("LPT"));
            matches!(numbered, Some("0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "¹" | "²" | "³"))
        }
    };
    is_device.then(|| upper.into_owned())
}

/// A set of package paths that refuses names that would collide once extracted on
/// any supported file system.
#[derive(Debug, Default, Clone)]
pub struct NameSet {
    /// Folded file path → the spelling first seen.
    files: HashMap<String, String>,
    /// Folded directory path → the spelling first seen and whether an explicit
    /// directory entry named it.
    dirs: HashMap<String, (String, bool)>,
}

impl NameSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file path.
    pub fn insert_file(&mut self, path: &PackagePath) -> Result<(), NameError> {
        self.insert_ancestors(path)?;
        let folded = path.folded();
        if let Some((dir, _)) = self.dirs.get(&folded) {
            return Err(NameError::FileDirectoryConflict { file: path.to_string(), other: dir.clone() });
        }
        if let Some(other) = self.files.get(&folded) {
            return Err(collision(path.as_str(), other, path.as_str(), other));
        }
        self.files.insert(folded, path.to_string());
        Ok(())
    }

    /// Adds an explicit directory path (a ZIP directory entry, without its trailing `/`).
    pub fn insert_dir(&mut self, path: &PackagePath) -> Result<(), NameError> {
        self.insert_ancestors(path)?;
        let folded = path.folded();
        if let Some(file) = self.files.get(&folded) {
            return Err(NameError::FileDirectoryConflict { file: file.clone(), other: path.to_string() });
        }
        match self.dirs.get_mut(&folded) {
            Some((seen, explicit)) if seen == path.as_str() => {
                if *explicit {
                    return Err(NameError::Duplicate { path: path.to_string() });
                }
                *explicit = true;
            }
            Some((seen, _)) => return Err(collision(path.as_str(), seen, path.as_str(), seen)),
            None => {
                self.dirs.insert(folded, (path.to_string(), true));
            }
        }
        Ok(())
    }

    fn insert_ancestors(&mut self, path: &PackagePath) -> Result<(), NameError> {
        let full = path.as_str();
        for (end, _) in full.match_indices('/') {
            let dir = &full[..end];
            let folded = fold(dir);
            if let Some(file) = self.files.get(&folded) {
                return Err(NameError::FileDirectoryConflict { file: file.clone(), other: full.to_owned() });
            }
            match self.dirs.get(&folded) {
                Some((seen, _)) if seen != dir => return Err(collision(full, seen, dir, seen)),
                Some(_) => {}
                None => {
                    self.dirs.insert(folded, (dir.to_owned(), false));
                }
            }
        }
        Ok(())
    }

    /// Number of files in the set.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }
}

/// The error for `path` colliding with `other`, judged on the two names that collide:
/// `name` and `seen` are the paths themselves or, for a collision between their
/// directories, those directories.
fn collision(path: &str, other: &str, name: &str, seen: &str) -> NameError {
    let (path, other) = (path.to_owned(), other.to_owned());
    if name == seen {
        NameError::Duplicate { path }
    } else if name.to_lowercase() == seen.to_lowercase() {
        NameError::CaseCollision { path, other }
    } else {
        NameError::NormalizationCollision { path, other }
    }
}

/// Checks a whole list of file paths: each against the policy, then the set for
/// collisions. Returns the first problem.
pub fn check_files<'a>(paths: impl IntoIterator<Item = &'a str>) -> Result<Vec<PackagePath>, NameError> {
    let mut set = NameSet::new();
    let mut out = Vec::new();
    for path in paths {
        let path = PackagePath::new(path)?;
        set.insert_file(&path)?;
        out.push(path);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn refused(path: &str) -> NameError {
        PackagePath::new(path).expect_err(path)
    }

    #[test]
    fn accepts_ordinary_package_paths() {
        for path in [
            "plugin.json",
            "LICENSE",
            "bin/windows-x86_64/clock.dll",
            "resources/icons/icon-16x16.png",
            "docs/README.md",
            ".hidden",
            "a..b",
            "con-tools.txt",
            "console.log",
            "com10.txt",
            "lpt.txt",
            "résumé/übersicht.md",
        ] {
            assert_eq!(PackagePath::new(path).map(|p| p.to_string()), Ok(path.to_owned()));
        }
    }

    #[test]
    fn refuses_traversal_and_absolute_forms() {
        assert!(matches!(refused("../x"), NameError::DotSegment { segment, .. } if segment == ".."));
        assert!(matches!(refused("a/../../x"), NameError::DotSegment { .. }));
        assert!(matches!(refused("./x"), NameError::DotSegment { segment, .. } if segment == "."));
        assert!(matches!(refused("..\\x"), NameError::Backslash { index: 2, .. }));
        assert!(matches!(refused("/abs"), NameError::Absolute { .. }));
        assert!(matches!(refused("\\abs"), NameError::Backslash { index: 0, .. }));
        assert!(matches!(refused("\\\\host\\share\\x"), NameError::Unc { .. }));
        assert!(matches!(refused("//host/share/x"), NameError::Unc { .. }));
        assert!(matches!(refused("C:\\x"), NameError::DriveLetter { drive, .. } if drive == "C:"));
        assert!(matches!(refused("C:x"), NameError::DriveLetter { .. }));
        assert!(matches!(refused("z:/x"), NameError::DriveLetter { .. }));
        assert_eq!(refused(""), NameError::Empty);
        assert!(matches!(refused("a//b"), NameError::EmptySegment { .. }));
        assert!(matches!(refused("a/"), NameError::EmptySegment { .. }));
    }

    #[test]
    fn refuses_windows_device_names_in_any_case_with_any_extension() {
        for (path, device) in [
            ("CON", "CON"),
            ("aux.json", "AUX"),
            ("COM1.txt", "COM1"),
            ("lib/Nul.tar.gz", "NUL"),
            ("prn", "PRN"),
            ("lpt9.log", "LPT9"),
            ("COM¹", "COM¹"),
            ("x/conout$.txt", "CONOUT$"),
            ("CON .txt", "CON"),
            // Upper-cased as Unicode does (dotless ı is I): as long as CONOUT$ or shorter.
            ("conın$", "CONIN$"),
            ("CONOUT$       .txt", "CONOUT$"),
        ] {
            match refused(path) {
                NameError::DeviceName { device: d, .. } => assert_eq!(d, device, "{path}"),
                other => panic!("{path}: {other:?}"),
            }
        }
    }

    #[test]
    fn names_longer_than_any_device_are_none() {
        for segment in ["conout$x", "console.txt", "com10", "lpt1lpt1", "nul-plugin", "auxiliary"] {
            assert_eq!(super::device_name(segment), None, "{segment}");
        }
    }

    #[test]
    fn refuses_streams_trailing_dots_spaces_and_control_characters() {
        assert!(matches!(refused("notes.txt:stream"), NameError::Colon { index: 9, .. }));
        // A one-letter name before the colon is, to Windows, a drive-relative path.
        assert!(matches!(refused("a:stream"), NameError::DriveLetter { .. }));
        assert!(matches!(refused("docs/file.txt:zone"), NameError::Colon { .. }));
        assert!(matches!(refused("file."), NameError::TrailingDotOrSpace { .. }));
        assert!(matches!(refused("dir./x"), NameError::TrailingDotOrSpace { .. }));
        assert!(matches!(refused("file "), NameError::TrailingDotOrSpace { .. }));
        assert!(matches!(refused("a\0b"), NameError::ControlCharacter { ch: '\0', index: 1, .. }));
        assert!(matches!(refused("a\nb"), NameError::ControlCharacter { ch: '\n', .. }));
        assert!(matches!(refused("a\u{7f}"), NameError::ControlCharacter { .. }));
        assert!(matches!(refused("what?.txt"), NameError::ReservedCharacter { ch: '?', .. }));
        assert!(matches!(refused("a|b"), NameError::ReservedCharacter { ch: '|', .. }));
    }

    #[test]
    fn refuses_over_long_paths_and_segments() {
        let segment = "s".repeat(MAX_SEGMENT_LEN + 1);
        assert!(matches!(refused(&segment), NameError::SegmentTooLong { len, .. } if len == MAX_SEGMENT_LEN + 1));
        let path = vec!["d".repeat(50); 4].join("/");
        assert!(matches!(refused(&path), NameError::PathTooLong { max: MAX_PATH_LEN, .. }));
        assert!(PackagePath::new(&"s".repeat(MAX_SEGMENT_LEN)).is_ok());
    }

    #[test]
    fn messages_name_the_path_and_the_rule() {
        assert_eq!(
            refused("bin/aux.json").to_string(),
            "\"bin/aux.json\": segment \"aux.json\" is the Windows device name AUX; rename it"
        );
        assert_eq!(
            refused("a/../../x").to_string(),
            "\"a/../../x\": segment \"..\" is not allowed; paths must not refer to `.` or `..`"
        );
    }

    #[test]
    fn deserialize_refuses_bad_names() {
        assert!(serde_json::from_str::<PackagePath>("\"../x\"").is_err());
        let ok: PackagePath = serde_json::from_str("\"docs/a.md\"").unwrap();
        assert_eq!(ok.as_str(), "docs/a.md");
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"docs/a.md\"");
    }

    #[test]
    fn name_set_refuses_case_collisions_duplicates_and_file_directory_conflicts() {
        let p = |s: &str| PackagePath::new(s).unwrap();
        let mut set = NameSet::new();
        set.insert_file(&p("A.dll")).unwrap();
        assert_eq!(
            set.insert_file(&p("a.dll")),
            Err(NameError::CaseCollision { path: "a.dll".into(), other: "A.dll".into() })
        );
        assert_eq!(set.insert_file(&p("A.dll")), Err(NameError::Duplicate { path: "A.dll".into() }));

        set.insert_file(&p("Docs/x.md")).unwrap();
        assert!(matches!(set.insert_file(&p("docs/y.md")), Err(NameError::CaseCollision { .. })));
        assert!(matches!(set.insert_file(&p("Docs")), Err(NameError::FileDirectoryConflict { .. })));
        assert!(matches!(set.insert_file(&p("A.dll/z")), Err(NameError::FileDirectoryConflict { .. })));

        set.insert_dir(&p("Docs")).unwrap();
        assert_eq!(set.insert_dir(&p("Docs")), Err(NameError::Duplicate { path: "Docs".into() }));
        assert!(matches!(
            set.insert_file(&p("ÉTÉ.txt")).and_then(|()| set.insert_file(&p("été.txt"))),
            Err(NameError::CaseCollision { .. })
        ));
        assert_eq!(set.file_count(), 3);
    }

    #[test]
    fn name_set_refuses_names_equal_under_unicode_normalization() {
        let p = |s: &str| PackagePath::new(s).unwrap();
        let (nfc, nfd) = ("caf\u{e9}.txt", "cafe\u{301}.txt");
        assert_ne!(nfc, nfd);
        // Each spelling is a valid name on its own.
        assert!(check_files([nfc]).is_ok() && check_files([nfd]).is_ok());
        assert_eq!(
            check_files([nfc, nfd]).unwrap_err(),
            NameError::NormalizationCollision { path: nfd.into(), other: nfc.into() }
        );
        // Normalization and case at once, and through a directory.
        assert!(matches!(check_files([nfc, "CAFE\u{301}.TXT"]), Err(NameError::NormalizationCollision { .. })));
        let mut set = NameSet::new();
        set.insert_file(&p("r\u{e9}sum\u{e9}/a.md")).unwrap();
        assert!(matches!(
            set.insert_file(&p("re\u{301}sume\u{301}/b.md")),
            Err(NameError::NormalizationCollision { .. })
        ));
        assert!(
            NameError::NormalizationCollision { path: nfd.into(), other: nfc.into() }.to_string().contains("NFC/NFD")
        );
    }

    #[test]
    fn check_files_reports_the_first_problem() {
        assert!(check_files(["a", "b/c"]).is_ok());
        assert!(matches!(check_files(["a", "B", "b"]), Err(NameError::CaseCollision { .. })));
        assert!(matches!(check_files(["a", "x/../y"]), Err(NameError::DotSegment { .. })));
    }

    proptest! {
        #[test]
        fn policy_never_panics_and_accepted_paths_are_portable(s in "(?s).{0,40}|[a-zA-Z0-9./\\\\: ]{0,20}") {
            if let Ok(path) = PackagePath::new(&s) {
                prop_assert!(!path.as_str().starts_with('/'));
                prop_assert!(!path.as_str().contains('\\') && !path.as_str().contains(':'));
                for segment in path.segments() {
                    prop_assert!(!segment.is_empty() && segment != "." && segment != "..");
                    prop_assert!(!segment.ends_with('.') && !segment.ends_with(' '));
                }
                prop_assert_eq!(path.as_str().parse::<PackagePath>().ok(), Some(path.clone()));
            }
        }

        #[test]
        fn name_set_never_panics(names in proptest::collection::vec("[aA/]{1,6}", 0..12)) {
            let mut set = NameSet::new();
            for name in &names {
                if let Ok(path) = PackagePath::new(name) {
                    let _ = set.insert_file(&path);
                    let _ = set.insert_dir(&path);
                }
            }
            prop_assert!(set.file_count() <= names.len());
        }
    }
}
