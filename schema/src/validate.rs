//! Validation of untrusted `plugin.json` and of a package's contents against it.
//!
//! Every check runs and every problem is reported at once, each with the JSON path it
//! is about and a reason a person can act on:
//! `permissions[2].scope: unknown scope "everything" for type "filesystem"; expected one
//! of plugin_directory, app_data, …`. A document with no problem becomes a typed
//! [`PluginMetadata`]; nothing else does.
//!
//! This module is pure: [`package_contents`] gets the package's file list and a way to
//! read the first bytes of a file. Opening packages is `trellis_client::package`; the
//! `lint` command in `trellis-index` combines both.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::id::{PluginId, VendorId};
use crate::permission::PermissionKind;
use crate::plugin::{METADATA_PATH, Platform, PluginMetadata};

/// Store categories a plugin may be listed under.
pub const CATEGORIES: &[&str] = &[
    "accessibility",
    "ai",
    "communication",
    "data",
    "design",
    "developer-tools",
    "education",
    "finance",
    "games",
    "integration",
    "language",
    "media",
    "productivity",
    "security",
    "theme",
    "utility",
    "other",
];

/// Longest display name.
pub const MAX_NAME_LEN: usize = 64;
/// Longest short description.
pub const MAX_SHORT_DESCRIPTION_LEN: usize = 140;
/// Most tags.
pub const MAX_TAGS: usize = 20;
/// Longest tag.
pub const MAX_TAG_LEN: usize = 32;
/// Pixel size of each icon, by field name.
pub const ICON_SIZES: [(&str, u32); 3] = [("small", 16), ("medium", 32), ("large", 128)];
/// Accepted names of the license file at the root of a package.
pub const LICENSE_FILES: [&str; 3] = ["LICENSE", "LICENSE.txt", "LICENSE.md"];
/// Top-level entries a package may have besides the license file.
pub const TOP_LEVEL: [&str; 5] = [METADATA_PATH, crate::manifest::CONTENT_MANIFEST_PATH, "bin", "resources", "docs"];

/// How serious a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth fixing; the store still accepts the package.
    Warning,
    /// The store refuses the package.
    Error,
}

/// One problem, located by a JSON path (for `plugin.json`) or a package path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Where: `permissions[2].scope`, or a file path inside the package.
    pub path: String,
    /// What is wrong and what to do.
    pub message: String,
    /// Error or warning.
    pub severity: Severity,
}

impl Problem {
    /// An error about `path`.
    pub fn error(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into(), severity: Severity::Error }
    }

    /// The same problem, located inside `file` (`plugin.json: permissions[0].scope`).
    #[must_use]
    pub fn in_file(mut self, file: &str) -> Self {
        self.path = format!("{file}: {}", self.path);
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a document; never empty.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} problem(s):\n{}", .0.len(), .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
pub struct Problems(pub Vec<Problem>);

#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem { path: path.into(), message: message.into(), severity: Severity::Error });
    }

    fn warning(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem { path: path.into(), message: message.into(), severity: Severity::Warning });
    }

    fn object<'a>(&mut self, value: Option<&'a Value>, path: &str, required: bool) -> Option<&'a Map<String, Value>> {
        match value {
            Some(Value::Object(map)) => Some(map),
            None | Some(Value::Null) if !required => None,
            None => {
                self.error(path, "required field is missing");
                None
            }
            Some(other) => {
                self.error(path, format!("expected an object, found {}", kind(other)));
                None
            }
        }
    }

    fn array<'a>(&mut self, value: Option<&'a Value>, path: &str, required: bool) -> &'a [Value] {
        match value {
            Some(Value::Array(items)) => items,
            None | Some(Value::Null) if !required => &[],
            None => {
                self.error(path, "required field is missing");
                &[]
            }
            Some(other) => {
                self.error(path, format!("expected an array, found {}", kind(other)));
                &[]
            }
        }
    }

    fn string<'a>(&mut self, value: Option<&'a Value>, path: &str, required: bool) -> Option<&'a str> {
        match value {
            Some(Value::String(s)) => Some(s),
            None | Some(Value::Null) if !required => None,
            None => {
                self.error(path, "required field is missing");
                None
            }
            Some(other) => {
                self.error(path, format!("expected a string, found {}", kind(other)));
                None
            }
        }
    }

    /// A required, non-blank string of at most `max` characters.
    fn text<'a>(&mut self, value: Option<&'a Value>, path: &str, max: Option<usize>) -> Option<&'a str> {
        let s = self.string(value, path, true)?;
        if s.trim().is_empty() {
            self.error(path, "must not be empty");
        } else if let Some(max) = max.filter(|max| s.chars().count() > *max) {
            self.error(path, format!("is {} characters long; at most {max} allowed", s.chars().count()));
        }
        Some(s)
    }

    fn https_url(&mut self, value: Option<&Value>, path: &str) {
        if let Some(url) = self.string(value, path, false)
            && let Err(why) = check_https_url(url)
        {
            self.error(path, why);
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks that `url` is an absolute `https://` URL with a host.
pub fn check_https_url(url: &str) -> Result<(), String> {
    let Some(rest) = url.strip_prefix("https://") else {
        return Err(format!("{url:?} is not an https:// URL; plain http and other schemes are refused"));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} is not a well-formed URL"));
    }
    Ok(())
}

fn one_of(items: &[&str]) -> String {
    items.join(", ")
}

/// Parses and validates untrusted `plugin.json` bytes.
pub fn plugin_metadata_bytes(bytes: &[u8]) -> Result<PluginMetadata, Problems> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => plugin_metadata(&value),
        Err(e) => Err(Problems(vec![Problem {
            path: "$".into(),
            message: format!("not valid JSON: {e}"),
            severity: Severity::Error,
        }])),
    }
}

/// Validates an untrusted `plugin.json` document and returns it typed.
///
/// Warnings do not fail validation; they are dropped here (see [`plugin_metadata_report`]).
pub fn plugin_metadata(value: &Value) -> Result<PluginMetadata, Problems> {
    let (meta, problems) = plugin_metadata_report(value);
    meta.ok_or(Problems(problems))
}

/// Validates an untrusted `plugin.json` document: the typed document when there is no
/// error, and every problem found (errors and warnings).
pub fn plugin_metadata_report(value: &Value) -> (Option<PluginMetadata>, Vec<Problem>) {
    let mut c = Checker::default();
    let Some(root) = c.object(Some(value), "$", true) else {
        return (None, c.problems);
    };

    let vendor = c.object(root.get("vendor"), "vendor", true);
    let vendor_id = vendor
        .and_then(|v| c.string(v.get("id"), "vendor.id", true))
        .and_then(|s| s.parse::<VendorId>().map_err(|e| c.error("vendor.id", e.to_string())).ok());
    if let Some(vendor) = vendor {
        c.text(vendor.get("name"), "vendor.name", Some(MAX_NAME_LEN));
        c.https_url(vendor.get("website"), "vendor.website");
    }
    if let Some(id) = c.string(root.get("id"), "id", true) {
        match id.parse::<PluginId>() {
            Ok(id) => {
                if let Some(vendor) = vendor_id.as_ref().filter(|v| !id.belongs_to(v)) {
                    c.error(
                        "id",
                        format!("{id:?} is not in the namespace of vendor.id {vendor:?}; use \"{vendor}.<name>\""),
                    );
                }
            }
            Err(e) => c.error("id", e.to_string()),
        }
    }
    c.text(root.get("name"), "name", Some(MAX_NAME_LEN));
    if let Some(version) = c.string(root.get("version"), "version", true)
        && let Err(e) = semver::Version::parse(version)
    {
        c.error("version", format!("{version:?} is not a semantic version (like 1.4.2): {e}"));
    }
    if let Some(description) = c.object(root.get("description"), "description", true) {
        c.text(description.get("short"), "description.short", Some(MAX_SHORT_DESCRIPTION_LEN));
        c.string(description.get("full"), "description.full", false);
    }
    check_categories(&mut c, root.get("categories"));
    check_tags(&mut c, root.get("tags"));
    if let Some(icons) = c.object(root.get("icons"), "icons", false) {
        for (field, _) in ICON_SIZES {
            c.string(icons.get(field), &format!("icons.{field}"), true);
        }
    }
    for (i, shot) in c.array(root.get("screenshots"), "screenshots", false).iter().enumerate() {
        if let Some(shot) = c.object(Some(shot), &format!("screenshots[{i}]"), true) {
            c.string(shot.get("url"), &format!("screenshots[{i}].url"), true);
            c.string(shot.get("caption"), &format!("screenshots[{i}].caption"), false);
        }
    }
    check_permissions(&mut c, root.get("permissions"));
    check_dependencies(&mut c, root.get("dependencies"), root.get("id").and_then(Value::as_str));
    check_pricing(&mut c, root.get("pricing"));
    c.string(root.get("release_notes"), "release_notes", false);
    if let Some(channel) = c.string(root.get("channel"), "channel", false)
        && let Err(e) = channel.parse::<crate::plugin::Channel>()
    {
        c.error("channel", e);
    }
    if let Some(host) = c.object(root.get("host"), "host", true) {
        c.text(host.get("id"), "host.id", Some(MAX_NAME_LEN));
        if let Some(req) = c.string(host.get("api_version_requirement"), "host.api_version_requirement", true)
            && let Err(e) = semver::VersionReq::parse(req)
        {
            c.error("host.api_version_requirement", format!("{req:?} is not a version requirement: {e}"));
        }
    }
    let platforms = check_platforms(&mut c, root.get("platforms"));
    check_entry(&mut c, root.get("entry"), &platforms);
    if let Some(license) = c.text(root.get("license"), "license", None) {
        check_license(&mut c, license);
    }
    c.https_url(root.get("repository"), "repository");
    if let Some(v) = c.string(root.get("min_client_version"), "min_client_version", false)
        && let Err(e) = semver::Version::parse(v)
    {
        c.error("min_client_version", format!("{v:?} is not a semantic version: {e}"));
    }

    if c.problems.iter().any(|p| p.severity == Severity::Error) {
        return (None, c.problems);
    }
    match serde_json::from_value::<PluginMetadata>(value.clone()) {
        Ok(meta) => (Some(meta), c.problems),
        Err(e) => {
            c.error("$", format!("does not match the plugin.json schema: {e}"));
            (None, c.problems)
        }
    }
}

fn check_categories(c: &mut Checker, value: Option<&Value>) {
    let items = c.array(value, "categories", true);
    if items.is_empty() && value.is_some_and(Value::is_array) {
        c.error("categories", format!("list at least one category; one of {}", one_of(CATEGORIES)));
    }
    let mut seen = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("categories[{i}]");
        if let Some(cat) = c.string(Some(item), &path, true) {
            if !CATEGORIES.contains(&cat) {
                c.error(&path, format!("unknown category {cat:?}; expected one of {}", one_of(CATEGORIES)));
            } else if !seen.insert(cat) {
                c.error(&path, format!("category {cat:?} is listed twice"));
            }
        }
    }
}

fn check_tags(c: &mut Checker, value: Option<&Value>) {
    let items = c.array(value, "tags", false);
    if items.len() > MAX_TAGS {
        c.error("tags", format!("{} tags; at most {MAX_TAGS} allowed", items.len()));
    }
    for (i, item) in items.iter().enumerate() {
        let path = format!("tags[{i}]");
        if let Some(tag) = c.string(Some(item), &path, true) {
            let ok = !tag.is_empty()
                && tag.len() <= MAX_TAG_LEN
                && tag.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-');
            if !ok {
                c.error(&path, format!("tag {tag:?} must be 1-{MAX_TAG_LEN} characters of a-z, 0-9 and '-'"));
            }
        }
    }
}

fn check_permissions(c: &mut Checker, value: Option<&Value>) {
    let kinds: Vec<&str> = PermissionKind::ALL.iter().map(|k| k.as_str()).collect();
    let mut seen = BTreeSet::new();
    for (i, item) in c.array(value, "permissions", false).iter().enumerate() {
        let path = format!("permissions[{i}]");
        let Some(perm) = c.object(Some(item), &path, true) else { continue };
        let kind = c.string(perm.get("type"), &format!("{path}.type"), true).and_then(|t| {
            let kind = PermissionKind::ALL.iter().copied().find(|k| k.as_str() == t);
            if kind.is_none() {
                c.error(
                    format!("{path}.type"),
                    format!("unknown permission type {t:?}; expected one of {}", one_of(&kinds)),
                );
            }
            kind
        });
        let scope = c.string(perm.get("scope"), &format!("{path}.scope"), true);
        if let (Some(kind), Some(scope)) = (kind, scope) {
            if kind.scope(scope).is_none() {
                let scopes: Vec<&str> = kind.scopes().iter().map(|s| s.name).collect();
                c.error(
                    format!("{path}.scope"),
                    format!(
                        "unknown scope {scope:?} for type {:?}; expected one of {}",
                        kind.as_str(),
                        one_of(&scopes)
                    ),
                );
            } else if !seen.insert((kind, scope)) {
                c.error(&path, format!("permission {}:{scope} is requested twice", kind.as_str()));
            }
        }
        if let Some(reason) = c.string(perm.get("reason"), &format!("{path}.reason"), true)
            && reason.trim().is_empty()
        {
            c.error(format!("{path}.reason"), "say why the plugin needs this permission; users see this text");
        }
    }
}

fn check_dependencies(c: &mut Checker, value: Option<&Value>, own_id: Option<&str>) {
    let mut seen = BTreeSet::new();
    for (i, item) in c.array(value, "dependencies", false).iter().enumerate() {
        let path = format!("dependencies[{i}]");
        let Some(dep) = c.object(Some(item), &path, true) else { continue };
        if let Some(id) = c.string(dep.get("id"), &format!("{path}.id"), true) {
            match id.parse::<PluginId>() {
                Err(e) => c.error(format!("{path}.id"), e.to_string()),
                Ok(_) if Some(id) == own_id => c.error(format!("{path}.id"), "a plugin cannot depend on itself"),
                Ok(_) if !seen.insert(id) => {
                    c.error(format!("{path}.id"), format!("{id} is listed twice; merge the requirements"))
                }
                Ok(_) => {}
            }
        }
        if let Some(req) = c.string(dep.get("version_requirement"), &format!("{path}.version_requirement"), true)
            && let Err(e) = semver::VersionReq::parse(req)
        {
            c.error(
                format!("{path}.version_requirement"),
                format!("{req:?} is not a version requirement (like \">=1.2, <2\"): {e}"),
            );
        }
    }
}

fn check_pricing(c: &mut Checker, value: Option<&Value>) {
    const MODELS: [&str; 4] = ["free", "paid", "freemium", "subscription"];
    let Some(pricing) = c.object(value, "pricing", false) else { return };
    let model = c.string(pricing.get("model"), "pricing.model", true);
    if let Some(model) = model.filter(|m| !MODELS.contains(m)) {
        c.error("pricing.model", format!("unknown pricing model {model:?}; expected one of {}", one_of(&MODELS)));
    }
    match pricing.get("trial_days") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_u64().is_some_and(|d| d <= u64::from(u32::MAX)) => {
            if n.as_u64().is_some_and(|d| d > 0) && model == Some("free") {
                c.error(
                    "pricing.trial_days",
                    "a free plugin has no trial; set trial_days to 0 or choose another model",
                );
            }
        }
        Some(Value::Number(n)) => c.error("pricing.trial_days", format!("{n} is not a whole number of days >= 0")),
        Some(other) => c.error("pricing.trial_days", format!("expected a number, found {}", kind(other))),
    }
}

fn check_platforms(c: &mut Checker, value: Option<&Value>) -> Vec<Platform> {
    let items = c.array(value, "platforms", true);
    if items.is_empty() && value.is_some_and(Value::is_array) {
        c.error("platforms", "list at least one platform (\"any\" for platform-independent plugins)");
    }
    let mut platforms = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("platforms[{i}]");
        if let Some(name) = c.string(Some(item), &path, true) {
            match name.parse::<Platform>() {
                Ok(p) if platforms.contains(&p) => c.error(&path, format!("platform {p} is listed twice")),
                Ok(p) => platforms.push(p),
                Err(e) => c.error(&path, e),
            }
        }
    }
    platforms
}

fn check_entry(c: &mut Checker, value: Option<&Value>, platforms: &[Platform]) {
    let Some(entry) = c.object(value, "entry", false) else {
        if !platforms.is_empty() {
            c.error("entry", "required field is missing; give the entry point for each platform");
        }
        return;
    };
    for (name, path_value) in entry {
        let path = format!("entry.{name}");
        match name.parse::<Platform>() {
            Ok(p) if !platforms.contains(&p) => {
                c.error(&path, format!("entry point for {p}, which is not listed in platforms"));
            }
            Ok(_) => {}
            Err(e) => c.error(&path, e),
        }
        c.string(Some(path_value), &path, true);
    }
    for p in platforms {
        if !entry.contains_key(p.as_str()) {
            c.error("entry", format!("no entry point for platform {p}; add entry.{p}"));
        }
    }
}

#[cfg(feature = "validate")]
fn check_license(c: &mut Checker, license: &str) {
    if let Err(e) = spdx::Expression::parse(license) {
        c.error(
            "license",
            format!("{license:?} is not an SPDX license expression (like \"MIT OR Apache-2.0\"): {}", e.reason),
        );
    }
}

#[cfg(not(feature = "validate"))]
fn check_license(_: &mut Checker, _: &str) {}

/// A file of a package, as far as validation needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageFile {
    /// Size in bytes.
    pub size: u64,
    /// The file's first bytes (at least 32 when the file has them), for format checks.
    pub head: Vec<u8>,
}

/// Checks what a package must hold whatever its metadata says: a license file and only
/// the allowed top-level entries.
pub fn package_layout(files: &BTreeMap<String, PackageFile>) -> Vec<Problem> {
    let mut c = Checker::default();
    layout(&mut c, files);
    c.problems
}

fn layout(c: &mut Checker, files: &BTreeMap<String, PackageFile>) {
    if !LICENSE_FILES.iter().any(|name| files.contains_key(*name)) {
        c.error("LICENSE", format!("the package has no license file; add one of {}", one_of(&LICENSE_FILES)));
    }
    for path in files.keys() {
        let top = path.split('/').next().unwrap_or_default();
        let allowed = if path.contains('/') {
            matches!(top, "bin" | "resources" | "docs")
        } else {
            TOP_LEVEL.contains(&top) || LICENSE_FILES.contains(&top)
        };
        if !allowed {
            c.error(path, "unexpected top-level entry; packages hold plugin.json, LICENSE, bin/, resources/ and docs/");
        }
    }
}

/// Checks a package's files against its metadata: everything [`package_layout`] checks,
/// plus icons with their declared pixel sizes, screenshots, platform directories and
/// entry points.
pub fn package_contents(meta: &PluginMetadata, files: &BTreeMap<String, PackageFile>) -> Vec<Problem> {
    let mut c = Checker::default();
    layout(&mut c, files);
    for path in files.keys() {
        if let Some(platform) = path.strip_prefix("bin/").and_then(|rest| rest.split('/').next()) {
            match platform.parse::<Platform>() {
                Ok(p) if !meta.platforms.contains(&p) => {
                    c.error(path, format!("binaries for {p}, which plugin.json does not list in platforms"))
                }
                Ok(_) => {}
                Err(e) => c.error(path, e),
            }
        }
    }
    for platform in &meta.platforms {
        let prefix = format!("bin/{platform}/");
        if *platform != Platform::Any && !files.keys().any(|p| p.starts_with(&prefix)) {
            c.error(
                format!("bin/{platform}"),
                format!("platforms lists {platform} but the package has no {prefix} files"),
            );
        }
    }
    for (platform, entry) in &meta.entry {
        match files.get(entry) {
            None => c.error(format!("entry.{platform}"), format!("entry point {entry:?} is not in the package")),
            Some(_) if !entry.starts_with(&format!("bin/{platform}/")) && !entry.starts_with("bin/any/") => c.error(
                format!("entry.{platform}"),
                format!("entry point {entry:?} must be under bin/{platform}/ or bin/any/"),
            ),
            Some(_) => {}
        }
    }
    if let Some(icons) = &meta.icons {
        for (field, expected) in ICON_SIZES {
            let path = match field {
                "small" => &icons.small,
                "medium" => &icons.medium,
                _ => &icons.large,
            };
            match files.get(path) {
                None => c.error(format!("icons.{field}"), format!("icon {path:?} is not in the package")),
                Some(file) => match png_dimensions(&file.head) {
                    None => c.error(format!("icons.{field}"), format!("icon {path:?} is not a PNG image")),
                    Some((w, h)) if (w, h) != (expected, expected) => c.error(
                        format!("icons.{field}"),
                        format!("icon {path:?} is {w}x{h} pixels; the {field} icon must be {expected}x{expected}"),
                    ),
                    Some(_) => {}
                },
            }
        }
    } else {
        c.warning("icons", "no icons; the store shows a generic one");
    }
    for (i, shot) in meta.screenshots.iter().enumerate() {
        if shot.url.starts_with("https://") {
            continue;
        }
        match files.get(&shot.url) {
            None => {
                c.error(format!("screenshots[{i}].url"), format!("screenshot {:?} is not in the package", shot.url))
            }
            Some(file) if png_dimensions(&file.head).is_none() && !is_jpeg(&file.head) => {
                c.error(format!("screenshots[{i}].url"), format!("screenshot {:?} is neither PNG nor JPEG", shot.url))
            }
            Some(_) => {}
        }
    }
    c.problems
}

/// Width and height of a PNG image from its first 24 bytes.
pub fn png_dimensions(head: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if head.len() < 24 || &head[..8] != SIGNATURE || &head[12..16] != b"IHDR" {
        return None;
    }
    let width = u32::from_be_bytes(head[16..20].try_into().ok()?);
    let height = u32::from_be_bytes(head[20..24].try_into().ok()?);
    Some((width, height))
}

fn is_jpeg(head: &[u8]) -> bool {
    head.starts_with(&[0xFF, 0xD8, 0xFF])
}

#[cfg(test)]
mod tests;
