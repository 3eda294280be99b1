//! TUF target paths of the documents a site serves: the contract between the builder,
//! which writes them, and the client, which asks for them.
//!
//! Paths are relative to `targets/` and carry no hash; with consistent snapshots the
//! file on disk is `dir/<sha256>.<basename>` (the builder's `site` module).

use crate::Sha256;
use crate::id::{PluginId, VendorId};

/// Target path of the blocklist (signed by the `security` role).
pub const BLOCKLIST_TARGET: &str = "security/blocklist.json";

/// Target path of the published advisories ([`crate::advisory::Advisories`]), signed by
/// the `security` role; absent on sites built before advisories existed.
pub const ADVISORIES_TARGET: &str = "security/advisories.json";

/// Target path of the registry's mirror list ([`crate::mirrors::MirrorList`]), signed by
/// the top-level `targets` role; absent when the registry publishes no mirrors.
pub const MIRRORS_TARGET: &str = "mirrors.json";

/// Target path of a plugin's index doc: `index/<shard>/<id>.json`, the shard being the
/// first byte of SHA-256(id) in hex, so no directory holds more than 1/256 of the docs.
pub fn index_target(id: &PluginId) -> String {
    let shard = Sha256::of(id.as_str().as_bytes()).as_bytes()[0];
    format!("index/{shard:02x}/{id}.json")
}

/// Path, relative to `targets/`, of the *alias* of a plugin's current index doc:
/// `index/alias/<shard>/<id>.json`, the same bytes as the doc [`index_target`] names,
/// at a path that carries no hash. It is **not a TUF target** (no role lists it, and
/// it is overwritten by each build that changes the doc): a client that knows a
/// dependency's id but not yet the doc hash its bin signs requests the alias in the
/// same round trip as the bin, and keeps the bytes only if their length and SHA-256
/// are the ones the verified bin lists for [`index_target`]. A stale, missing or
/// tampered alias costs one more round trip (the hashed path), never trust.
pub fn index_alias_path(id: &PluginId) -> String {
    let shard = Sha256::of(id.as_str().as_bytes()).as_bytes()[0];
    format!("{INDEX_ALIAS_DIR}/{shard:02x}/{id}.json")
}

/// The directory of the index doc aliases, relative to `targets/` ([`index_alias_path`]).
/// A shard of [`index_target`] is two hex digits, so it never collides.
pub const INDEX_ALIAS_DIR: &str = "index/alias";

/// Target path of a publisher record (signed by the `publishers` role).
pub fn publisher_target(vendor: &VendorId) -> String {
    format!("publishers/{vendor}.json")
}

/// Directory (target path prefix, with trailing `/`) holding a plugin's blobs.
pub fn plugin_blob_dir(id: &PluginId) -> String {
    format!("plugins/{}/{}/", id.vendor(), id)
}

/// Target path of a release's package.
pub fn package_target(id: &PluginId, version: &semver::Version) -> String {
    format!("{}{id}-{version}.zip", plugin_blob_dir(id))
}

/// Target path of a release's DSSE envelope.
pub fn envelope_target(id: &PluginId, version: &semver::Version) -> String {
    format!("{}{id}-{version}.dsse", plugin_blob_dir(id))
}

/// Target path of the delta from release `from` to release `to` of a plugin:
/// `deltas/<id>/<from>_<to>.delta`. The separator is `_` because semantic versions
/// cannot contain it (with `-`, `1.0.0-a` → `1.0.0` and `1.0.0` → … could collide).
pub fn delta_target(id: &PluginId, from: &semver::Version, to: &semver::Version) -> String {
    format!("deltas/{id}/{from}_{to}.delta")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_site_layout() {
        let id: PluginId = "acme.clock".parse().unwrap();
        let shard = format!("{:02x}", Sha256::of(b"acme.clock").as_bytes()[0]);
        assert_eq!(index_target(&id), format!("index/{shard}/acme.clock.json"));
        assert_eq!(index_alias_path(&id), format!("index/alias/{shard}/acme.clock.json"));
        assert_eq!(publisher_target(&"acme".parse().unwrap()), "publishers/acme.json");
        let v = "1.2.0".parse().unwrap();
        assert_eq!(package_target(&id, &v), "plugins/acme/acme.clock/acme.clock-1.2.0.zip");
        assert_eq!(envelope_target(&id, &v), "plugins/acme/acme.clock/acme.clock-1.2.0.dsse");
        assert_eq!(delta_target(&id, &"1.0.0".parse().unwrap(), &v), "deltas/acme.clock/1.0.0_1.2.0.delta");
    }
}
