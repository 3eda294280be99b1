//! The layout of a built site: where every document and blob lives.
//!
//! Owns the mapping from things (a plugin, a release, a role) to TUF target paths and
//! to file paths under the site directory, following DESIGN.md:
//!
//! ```text
//! metadata/N.root.json, metadata/timestamp.json, metadata/V.<role>.json
//! metadata/snapshot.json, metadata/targets.json               (copies: see crate::unversioned)
//! targets/index/<shard>/<H>.<plugin-id>.json
//! targets/plugins/<vendor>/<id>/<H>.<id>-<version>.zip   (and .dsse)
//! targets/deltas/<id>/<H>.<from>_<to>.delta
//! targets/publishers/<H>.<vendor>.json
//! targets/security/<H>.blocklist.json
//! targets/security/<H>.advisories.json
//! targets/index/alias/<shard>/<plugin-id>.json           (not signed: see below)
//! ```
//!
//! A *target path* is the name TUF signs (`index/3f/acme.clock.json`); the file is
//! served under TUF's consistent-snapshot name, the SHA-256 prefixed on the basename
//! (`targets/index/3f/<sha256>.acme.clock.json`). The `<shard>` is the first byte of
//! SHA-256(plugin id) in hex: 256 evenly filled directories any client can compute.
//! The *alias* of an index doc is the same bytes at a path without the hash
//! ([`index_alias_path`]): not a TUF target, rewritten by each build that changes the
//! doc, and accepted by clients only when it matches the doc hash a verified bin lists.
//! Nothing here reads or writes files; [`crate::build`] does.

use std::path::{Path, PathBuf};

use trellis_schema::Sha256;

/// Directory of the metadata files, relative to the site root.
pub const METADATA_DIR: &str = "metadata";
/// Directory of the target files, relative to the site root.
pub const TARGETS_DIR: &str = "targets";
pub use trellis_schema::target::{
    ADVISORIES_TARGET, BLOCKLIST_TARGET, INDEX_ALIAS_DIR, MIRRORS_TARGET, delta_target, envelope_target,
    index_alias_path, index_target, package_target, plugin_blob_dir, publisher_target,
};

/// The alias path (relative to `targets/`) of `target` when it is the target path of
/// an index doc (`index/<shard>/<id>.json` with the shard of `<id>`), else `None`.
pub fn index_alias_of(target: &str) -> Option<String> {
    let id: trellis_schema::PluginId =
        target.strip_prefix("index/")?.rsplit('/').next()?.strip_suffix(".json")?.parse().ok()?;
    (index_target(&id) == target).then(|| index_alias_path(&id))
}

/// The consistent-snapshot name of a target: `dir/<sha256>.<basename>`, relative to
/// `targets/`.
pub fn hashed_target_path(target: &str, sha256: &Sha256) -> String {
    match target.rsplit_once('/') {
        Some((dir, base)) => format!("{dir}/{sha256}.{base}"),
        None => format!("{sha256}.{target}"),
    }
}

/// File of a target in the site.
pub fn target_file(site: &Path, target: &str, sha256: &Sha256) -> PathBuf {
    site.join(TARGETS_DIR).join(hashed_target_path(target, sha256))
}

/// File name of version `version` of role `role` (`7.snapshot.json`).
pub fn metadata_name(role: &str, version: u64) -> String {
    format!("{version}.{role}.json")
}

/// File of version `version` of role `role` in the site.
pub fn metadata_file(site: &Path, role: &str, version: u64) -> PathBuf {
    site.join(METADATA_DIR).join(metadata_name(role, version))
}

/// The file of the timestamp, rewritten in place by every build (as are the index doc
/// aliases and the unversioned copies of [`crate::unversioned`]).
pub fn timestamp_file(site: &Path) -> PathBuf {
    site.join(METADATA_DIR).join("timestamp.json")
}

/// The hash bin (TAP 15 succinct roles) that signs `target`: the first `bit_length`
/// bits of SHA-256(target path), as `<prefix>-<zero-padded hex>`. Same computation as
/// python-tuf's `SuccinctRoles.get_role_for_target`.
pub fn bin_for_target(target: &str, bit_length: u32, prefix: &str) -> String {
    bin_name(bin_number(target, bit_length), bit_length, prefix)
}

/// The bin number of `target` (see [`bin_for_target`]).
pub fn bin_number(target: &str, bit_length: u32) -> u32 {
    let digest = Sha256::of(target.as_bytes());
    let head = digest.as_bytes();
    let first = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    if bit_length == 0 { 0 } else { first >> (32 - bit_length.min(32)) }
}

/// Name of bin `number`.
pub fn bin_name(number: u32, bit_length: u32, prefix: &str) -> String {
    let bins = 1u64 << bit_length.min(32);
    let width = format!("{:x}", bins - 1).len();
    format!("{prefix}-{number:0width$x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consistent_names_prefix_the_basename_with_the_hash() {
        let sha = Sha256::of(b"x");
        assert_eq!(hashed_target_path("index/3f/acme.clock.json", &sha), format!("index/3f/{sha}.acme.clock.json"));
        assert_eq!(hashed_target_path("top.json", &sha), format!("{sha}.top.json"));
    }

    #[test]
    fn bin_names_match_python_tuf_succinct_roles() {
        // python-tuf: SuccinctRoles(bit_length=8, name_prefix="bin").get_role_for_target(...)
        // = first byte of sha256(path) as two hex digits.
        let path = "index/3f/acme.clock.json";
        let first = Sha256::of(path.as_bytes()).as_bytes()[0];
        assert_eq!(bin_for_target(path, 8, "bin"), format!("bin-{first:02x}"));
        assert_eq!(bin_name(5, 12, "bin"), "bin-005");
        assert_eq!(bin_name(1, 1, "bin"), "bin-1");
        assert_eq!(bin_name(1023, 10, "bin"), "bin-3ff");
    }

    #[test]
    fn paths_follow_the_design_layout() {
        let id: trellis_schema::PluginId = "acme.clock".parse().unwrap();
        let v: semver::Version = "1.2.0".parse().unwrap();
        assert_eq!(package_target(&id, &v), "plugins/acme/acme.clock/acme.clock-1.2.0.zip");
        assert_eq!(envelope_target(&id, &v), "plugins/acme/acme.clock/acme.clock-1.2.0.dsse");
        assert!(index_target(&id).starts_with("index/") && index_target(&id).ends_with("/acme.clock.json"));
        assert_eq!(index_alias_of(&index_target(&id)), Some(index_alias_path(&id)));
        assert!(index_alias_path(&id).starts_with("index/alias/"));
        let wrong_shard = Sha256::of(b"acme.clock").as_bytes()[0] ^ 1;
        assert_eq!(index_alias_of(&format!("index/{wrong_shard:02x}/acme.clock.json")), None);
        assert_eq!(index_alias_of("security/blocklist.json"), None);
    }
}
