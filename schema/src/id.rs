//! Identifiers: publisher (vendor) ids and plugin ids.
//!
//! A plugin id is namespaced by its publisher: `acme.clock` belongs to the publisher
//! `acme`, and only keys in `acme`'s publisher record can sign its releases. The
//! namespace is also what binds a plugin to exactly one registry on the client, which
//! is the defence against dependency confusion.
//!
//! Ids become directory names (`plugins/acme.clock/`), so no segment may be a Windows
//! device name (`nul.clock`, `acme.con`, `lpt1.x`; the list of [`crate::path`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest accepted segment of an id.
pub const MAX_SEGMENT_LEN: usize = 64;
/// Longest accepted plugin id.
pub const MAX_ID_LEN: usize = 128;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty string or empty segment (`acme..clock`).
    #[error("{id:?}: empty segment; ids look like `vendor.plugin-name`")]
    EmptySegment {
        /// The offending id.
        id: String,
    },
    /// A segment starts with something else than a lowercase letter.
    #[error("{id:?}: segment {segment:?} must start with a lowercase letter a-z")]
    BadStart {
        /// The offending id.
        id: String,
        /// The offending segment.
        segment: String,
    },
    /// A character outside `a-z 0-9 -`.
    #[error("{id:?}: character {ch:?} is not allowed; use lowercase a-z, digits 0-9 and '-'")]
    BadChar {
        /// The offending id.
        id: String,
        /// The offending character.
        ch: char,
    },
    /// A segment ends in `-`.
    #[error("{id:?}: segment {segment:?} must not end with '-'")]
    TrailingDash {
        /// The offending id.
        id: String,
        /// The offending segment.
        segment: String,
    },
    /// Too long.
    #[error("{id:?}: longer than {max} characters")]
    TooLong {
        /// The offending id.
        id: String,
        /// The limit.
        max: usize,
    },
    /// A plugin id without a vendor namespace.
    #[error("{id:?}: a plugin id needs its publisher's namespace, as in `vendor.{id}`")]
    MissingNamespace {
        /// The offending id.
        id: String,
    },
    /// A vendor id with a dot.
    #[error("{id:?}: a publisher id is a single segment without '.'")]
    DottedVendor {
        /// The offending id.
        id: String,
    },
    /// A segment that is a Windows device name: ids become directory names
    /// (`plugins/<id>/`), and `nul.clock` names the device `NUL` on Windows.
    #[error(
        "{id:?}: segment {segment:?} is the Windows device name {device}, which cannot be a directory name; choose another name"
    )]
    DeviceName {
        /// The offending id.
        id: String,
        /// The offending segment.
        segment: String,
        /// The device it names, upper case (`NUL`, `COM1`).
        device: String,
    },
}

fn check_segment(id: &str, segment: &str) -> Result<(), IdError> {
    let mut chars = segment.chars();
    let Some(first) = chars.next() else {
        return Err(IdError::EmptySegment { id: id.to_owned() });
    };
    if !first.is_ascii_lowercase() {
        return Err(IdError::BadStart { id: id.to_owned(), segment: segment.to_owned() });
    }
    if let Some(ch) = chars.find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Err(IdError::BadChar { id: id.to_owned(), ch });
    }
    if segment.ends_with('-') {
        return Err(IdError::TrailingDash { id: id.to_owned(), segment: segment.to_owned() });
    }
    if segment.len() > MAX_SEGMENT_LEN {
        return Err(IdError::TooLong { id: id.to_owned(), max: MAX_SEGMENT_LEN });
    }
    // The same list the package path policy refuses (CON, PRN, AUX, NUL, COM0-9, LPT0-9).
    if let Some(device) = crate::path::device_name(segment) {
        return Err(IdError::DeviceName { id: id.to_owned(), segment: segment.to_owned(), device });
    }
    Ok(())
}

/// A publisher id: one segment of `a-z 0-9 -`, starting with a letter (`acme`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VendorId(String);

/// A plugin id: its publisher's id, a dot, and one or more further segments
/// (`acme.clock`, `acme.tools.grep`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PluginId(String);

impl VendorId {
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PluginId {
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The publisher namespace: everything before the first dot.
    pub fn vendor(&self) -> &str {
        self.0.split('.').next().unwrap_or_default()
    }

    /// The publisher namespace as a [`VendorId`].
    pub fn vendor_id(&self) -> VendorId {
        // Every segment of a plugin id passed the same checks a vendor id needs.
        VendorId(self.vendor().to_owned())
    }

    /// Whether this plugin id lives in `vendor`'s namespace.
    pub fn belongs_to(&self, vendor: &VendorId) -> bool {
        self.vendor() == vendor.as_str()
    }
}

impl FromStr for VendorId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains('.') {
            return Err(IdError::DottedVendor { id: s.to_owned() });
        }
        check_segment(s, s)?;
        Ok(Self(s.to_owned()))
    }
}

impl PluginId {
    /// Checks that `s` is a plugin id without making one (what [`str::parse`] checks,
    /// allocating nothing unless it is not).
    pub fn check(s: &str) -> Result<(), IdError> {
        if s.len() > MAX_ID_LEN {
            return Err(IdError::TooLong { id: s.to_owned(), max: MAX_ID_LEN });
        }
        for segment in s.split('.') {
            check_segment(s, segment)?;
        }
        if !s.contains('.') {
            return Err(IdError::MissingNamespace { id: s.to_owned() });
        }
        Ok(())
    }
}

impl FromStr for PluginId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::check(s)?;
        Ok(Self(s.to_owned()))
    }
}

macro_rules! string_newtype_impls {
    ($ty:ident, $pattern:literal, $what:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        #[cfg(feature = "json-schema")]
        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($ty).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "pattern": $pattern,
                    "description": $what,
                })
            }
        }
    };
}

string_newtype_impls!(
    VendorId,
    "^[a-z]([a-z0-9-]{0,62}[a-z0-9])?$",
    "Publisher id: one segment of lowercase letters, digits and '-'"
);
string_newtype_impls!(
    PluginId,
    "^[a-z]([a-z0-9-]*[a-z0-9])?(\\.[a-z]([a-z0-9-]*[a-z0-9])?)+$",
    "Plugin id: the publisher id, a dot, and the plugin's name (`acme.clock`)"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_windows_device_names_as_any_segment() {
        for (id, device) in [
            ("nul.clock", "NUL"),
            ("acme.con", "CON"),
            ("acme.tools.aux", "AUX"),
            ("com1.x", "COM1"),
            ("acme.lpt9", "LPT9"),
            ("prn.a", "PRN"),
        ] {
            match id.parse::<PluginId>() {
                Err(IdError::DeviceName { device: d, .. }) => assert_eq!(d, device, "{id}"),
                other => panic!("{id}: {other:?}"),
            }
        }
        assert!(matches!("nul".parse::<VendorId>(), Err(IdError::DeviceName { .. })));
        let message = "nul.clock".parse::<PluginId>().unwrap_err().to_string();
        assert!(message.contains("Windows device name NUL"), "{message}");
        for fine in ["acme.console", "nullsoft.clock", "acme.com10", "acme.lpt", "comx.a"] {
            assert!(fine.parse::<PluginId>().is_ok(), "{fine}");
        }
    }

    #[test]
    fn plugin_id_needs_a_namespace_and_knows_its_vendor() {
        let id: PluginId = "acme.clock".parse().unwrap();
        assert_eq!(id.vendor(), "acme");
        assert!(id.belongs_to(&"acme".parse().unwrap()));
        assert_eq!(id.vendor_id(), "acme".parse::<VendorId>().unwrap());
        assert!(!id.belongs_to(&"acm".parse().unwrap()));
        assert_eq!("clock".parse::<PluginId>(), Err(IdError::MissingNamespace { id: "clock".into() }));
    }

    #[test]
    fn rejects_bad_ids_with_the_reason() {
        assert!(matches!("Acme.clock".parse::<PluginId>(), Err(IdError::BadStart { .. })));
        assert!(matches!("acme..clock".parse::<PluginId>(), Err(IdError::EmptySegment { .. })));
        assert!(matches!("acme.clo_ck".parse::<PluginId>(), Err(IdError::BadChar { ch: '_', .. })));
        assert!(matches!("acme.clock-".parse::<PluginId>(), Err(IdError::TrailingDash { .. })));
        assert!(matches!("acme.c".repeat(30).parse::<PluginId>(), Err(IdError::TooLong { .. })));
        assert!(matches!("acme.x".parse::<VendorId>(), Err(IdError::DottedVendor { .. })));
        assert!(matches!("9acme".parse::<VendorId>(), Err(IdError::BadStart { .. })));
    }

    #[test]
    fn deserialize_runs_the_same_checks() {
        let ok: PluginId = serde_json::from_str("\"acme.clock\"").unwrap();
        assert_eq!(ok.as_str(), "acme.clock");
        let err = serde_json::from_str::<PluginId>("\"Acme.x\"").unwrap_err();
        assert!(err.to_string().contains("must start with a lowercase letter"), "{err}");
    }
}
