//! [`RegistryName`], the local name of a configured registry.
//!
//! Owns the one type every layer uses for it: the state file keys trusted metadata,
//! installed plugins and namespace bindings by it, the resolver tags each candidate with
//! it, and the store looks up a registry's mirrors and TUF updater by it. The name is
//! checked once, when it is parsed (from the user, the state file or a configuration), so
//! it is always safe as a single directory name under the data dir.
//!
//! It does not know which registries exist or where they are served: that is
//! [`crate::store::Registries`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest registry name accepted.
pub const MAX_REGISTRY_NAME_LEN: usize = 64;

/// The local name of a configured registry (`public`, `acme-internal`): 1 to 64 lowercase
/// letters, digits and `-`, starting with a letter and not ending with `-`, so it is safe
/// as a directory name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegistryName(String);

/// A registry name that breaks the rules of [`RegistryName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "registry name {name:?} is not valid; use 1 to {MAX_REGISTRY_NAME_LEN} lowercase letters, digits and '-', starting with a letter"
)]
pub struct InvalidRegistryName {
    /// The refused name.
    pub name: String,
}

impl RegistryName {
    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn is_valid(s: &str) -> bool {
        (1..=MAX_REGISTRY_NAME_LEN).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && !s.ends_with('-')
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    }
}

impl FromStr for RegistryName {
    type Err = InvalidRegistryName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if Self::is_valid(s) { Ok(Self(s.to_owned())) } else { Err(InvalidRegistryName { name: s.to_owned() }) }
    }
}

impl TryFrom<String> for RegistryName {
    type Error = InvalidRegistryName;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        if Self::is_valid(&s) { Ok(Self(s)) } else { Err(InvalidRegistryName { name: s }) }
    }
}

impl From<RegistryName> for String {
    fn from(name: RegistryName) -> Self {
        name.0
    }
}

impl AsRef<str> for RegistryName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RegistryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RegistryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_lowercase_names_with_digits_and_dashes() {
        for good in ["public", "acme-internal", "r2", &"a".repeat(MAX_REGISTRY_NAME_LEN)] {
            let name: RegistryName = good.parse().unwrap();
            assert_eq!(name.as_str(), good);
        }
    }

    #[test]
    fn refuses_names_that_are_not_safe_directory_names() {
        for bad in ["", "../x", "Public", "a/b", "-x", "x-", "a.b", "1x", &"a".repeat(MAX_REGISTRY_NAME_LEN + 1)] {
            let err = bad.parse::<RegistryName>().unwrap_err();
            assert_eq!(err.name, bad);
            assert!(err.to_string().contains("registry name"), "{bad}: {err}");
        }
    }

    #[test]
    fn serde_checks_the_name_like_parsing_does() {
        let name: RegistryName = serde_json::from_str("\"acme-internal\"").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"acme-internal\"");
        let err = serde_json::from_str::<RegistryName>("\"../up\"").unwrap_err();
        assert!(err.to_string().contains("registry name \"../up\" is not valid"), "{err}");
    }
}
