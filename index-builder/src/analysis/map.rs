//! The capability map: `capabilities.toml`, compiled in, parsed and checked against the
//! permission catalog once.
//!
//! Owns what an import or a script pattern *means* (a [`Capability`]) and which
//! permissions allow each class. Reading binaries is [`super::binary`], scripts
//! [`super::script`]; comparing with what a release declares is [`super`].

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use serde::Deserialize;
use trellis_schema::analysis::Capability;
use trellis_schema::permission::PermissionKind;

/// The map as shipped (see the file for its format).
pub const MAP_SOURCE: &str = include_str!("capabilities.toml");

/// What happens to a class no permission allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unpermitted {
    /// Listed in the analysis summary; nothing refused.
    Report,
    /// Always an error.
    Refuse,
}

/// Script languages the pattern rules know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Language {
    /// `.ps1`, `.psm1`, `.psd1`; patterns matched case-insensitively.
    PowerShell,
    /// `.sh`, `.bash`, or a `sh`/`bash`/`zsh` shebang.
    Shell,
    /// `.js`, `.mjs`, `.cjs`, or a `node` shebang.
    JavaScript,
    /// `.py`, or a `python` shebang.
    Python,
    /// `.cmd`, `.bat` (Windows command scripts); patterns matched case-insensitively.
    Batch,
}

impl Language {
    /// Every language.
    pub const ALL: [Language; 5] = [Self::PowerShell, Self::Shell, Self::JavaScript, Self::Python, Self::Batch];

    /// Name in the map and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PowerShell => "powershell",
            Self::Shell => "shell",
            Self::JavaScript => "javascript",
            Self::Python => "python",
            Self::Batch => "batch",
        }
    }

    /// Whether patterns are matched case-insensitively (the language ignores case).
    pub fn ignores_case(self) -> bool {
        matches!(self, Self::PowerShell | Self::Batch)
    }
}

/// One class of the map.
#[derive(Clone, Debug)]
pub struct Class {
    /// The capability.
    pub capability: Capability,
    /// Permissions (`type:scope`) that allow it; the first is the one asked for.
    pub permissions: Vec<String>,
    /// What happens when `permissions` is empty.
    pub unpermitted: Unpermitted,
    /// Script patterns per language (lower-cased where the language ignores case).
    pub scripts: BTreeMap<Language, Vec<String>>,
}

/// The parsed map.
#[derive(Debug)]
pub struct CapabilityMap {
    /// `version` of the file.
    pub version: u32,
    /// Classes, in file order.
    pub classes: Vec<Class>,
    exact_symbols: HashMap<String, usize>,
    prefix_symbols: Vec<(String, usize)>,
    libraries: Vec<(Pattern, usize)>,
}

/// A library pattern: lower-cased text with `*` wildcards.
#[derive(Clone, Debug)]
struct Pattern(String);

impl Pattern {
    fn matches(&self, name: &str) -> bool {
        wildcard(&self.0, &name.to_ascii_lowercase())
    }
}

/// `*` matches any run of characters.
fn wildcard(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Why the map does not load (a bug in `capabilities.toml`, caught by its unit test).
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    /// Not TOML of the expected shape.
    #[error("capabilities.toml: {0}")]
    Parse(#[from] toml::de::Error),
    /// A class name that is not a [`Capability`].
    #[error("capabilities.toml: [capabilities.{0}]: not a capability class")]
    Class(String),
    /// A permission the catalog does not have.
    #[error("capabilities.toml: [capabilities.{class}]: {permission} is not in the permission catalog")]
    Permission {
        /// The class.
        class: String,
        /// The permission.
        permission: String,
    },
    /// A class without permissions that does not say what happens.
    #[error("capabilities.toml: [capabilities.{0}]: no permissions, so `unpermitted` must be \"report\" or \"refuse\"")]
    Unpermitted(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMap {
    version: u32,
    capabilities: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClass {
    permissions: Vec<String>,
    unpermitted: Option<Unpermitted>,
    #[serde(default)]
    symbols: Vec<String>,
    #[serde(default)]
    libraries: Vec<String>,
    #[serde(default)]
    powershell: Vec<String>,
    #[serde(default)]
    shell: Vec<String>,
    #[serde(default)]
    javascript: Vec<String>,
    #[serde(default)]
    python: Vec<String>,
    #[serde(default)]
    batch: Vec<String>,
}

impl CapabilityMap {
    /// The compiled-in map.
    pub fn builtin() -> &'static CapabilityMap {
        static MAP: OnceLock<CapabilityMap> = OnceLock::new();
        // The shipped file is checked by `builtin_map_loads_and_names_catalog_permissions`.
        #[allow(clippy::expect_used)]
        MAP.get_or_init(|| Self::parse(MAP_SOURCE).expect("the compiled-in capabilities.toml is valid"))
    }

    /// Parses and checks a map.
    pub fn parse(source: &str) -> Result<Self, MapError> {
        let raw: RawMap = toml::from_str(source)?;
        let mut map = CapabilityMap {
            version: raw.version,
            classes: Vec::new(),
            exact_symbols: HashMap::new(),
            prefix_symbols: Vec::new(),
            libraries: Vec::new(),
        };
        for (name, value) in raw.capabilities {
            let capability: Capability = name.parse().map_err(|_| MapError::Class(name.clone()))?;
            let class: RawClass = value.try_into()?;
            for permission in &class.permissions {
                let known = permission.split_once(':').is_some_and(|(kind, scope)| {
                    PermissionKind::ALL.iter().any(|k| k.as_str() == kind && k.scope(scope).is_some())
                });
                if !known {
                    return Err(MapError::Permission { class: name, permission: permission.clone() });
                }
            }
            let unpermitted = match (class.permissions.is_empty(), class.unpermitted) {
                (true, None) => return Err(MapError::Unpermitted(name)),
                (_, value) => value.unwrap_or(Unpermitted::Refuse),
            };
            let index = map.classes.len();
            for symbol in class.symbols {
                match symbol.strip_suffix('*') {
                    Some(prefix) => map.prefix_symbols.push((prefix.to_owned(), index)),
                    None => {
                        map.exact_symbols.entry(symbol).or_insert(index);
                    }
                }
            }
            map.libraries.extend(class.libraries.into_iter().map(|l| (Pattern(l.to_ascii_lowercase()), index)));
            let scripts = BTreeMap::from([
                (Language::PowerShell, class.powershell.iter().map(|p| p.to_lowercase()).collect()),
                (Language::Shell, class.shell),
                (Language::JavaScript, class.javascript),
                (Language::Python, class.python),
                (Language::Batch, class.batch.iter().map(|p| p.to_lowercase()).collect()),
            ]);
            map.classes.push(Class { capability, permissions: class.permissions, unpermitted, scripts });
        }
        Ok(map)
    }

    /// The class (index into [`CapabilityMap::classes`]) an imported symbol belongs to.
    pub fn symbol(&self, name: &str) -> Option<usize> {
        self.exact_symbols.get(name).copied().or_else(|| {
            self.prefix_symbols.iter().find(|(prefix, _)| name.starts_with(prefix.as_str())).map(|(_, i)| *i)
        })
    }

    /// The class (index into [`CapabilityMap::classes`]) an imported library belongs to.
    pub fn library(&self, name: &str) -> Option<usize> {
        self.libraries.iter().find(|(p, _)| p.matches(name)).map(|(_, i)| *i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_map_loads_and_names_catalog_permissions() {
        let map = CapabilityMap::parse(MAP_SOURCE).unwrap();
        assert!(map.version >= 1);
        assert_eq!(map.classes.len(), Capability::ALL.len(), "every class has an entry");
        assert_eq!(map.symbol("connect").map(|c| map.classes[c].capability), Some(Capability::Network));
        assert_eq!(map.symbol("CreateProcessW").map(|c| map.classes[c].capability), Some(Capability::ProcessCreation));
        assert_eq!(
            map.symbol("CreateProcessAsUserW").map(|c| map.classes[c].capability),
            Some(Capability::ProcessCreation)
        );
        assert!(map.symbol("puts").is_none());
        assert_eq!(map.library("WS2_32.dll").map(|c| map.classes[c].capability), Some(Capability::Network));
        assert_eq!(map.library("libcurl.so.4").map(|c| map.classes[c].capability), Some(Capability::Network));
        assert!(map.library("KERNEL32.dll").is_none());
    }

    #[test]
    fn refuses_unknown_classes_and_permissions() {
        let bad = "version = 1\n[capabilities.telepathy]\npermissions = []\nunpermitted = \"report\"\n";
        assert!(matches!(CapabilityMap::parse(bad), Err(MapError::Class(c)) if c == "telepathy"));
        let bad = "version = 1\n[capabilities.network]\npermissions = [\"network:everywhere\"]\n";
        let err = CapabilityMap::parse(bad).unwrap_err().to_string();
        assert!(err.contains("network:everywhere is not in the permission catalog"), "{err}");
        let bad = "version = 1\n[capabilities.network]\npermissions = []\n";
        assert!(matches!(CapabilityMap::parse(bad), Err(MapError::Unpermitted(_))));
        let bad = "version = 1\n[capabilities.network]\npermissions = []\nsymbolz = []\n";
        assert!(matches!(CapabilityMap::parse(bad), Err(MapError::Parse(_))));
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("libcurl.so*", "libcurl.so.4"));
        assert!(wildcard("*/cfnetwork.framework/*", "/system/library/frameworks/cfnetwork.framework/cfnetwork"));
        assert!(!wildcard("ws2_32.dll", "ws2_32.dll.bak"));
        assert!(wildcard("libcurl*.dll", "libcurl-4.dll"));
    }
}
