//! Publisher chains against the published site: key continuity at build time.
//!
//! Owns the rule that a build never changes an existing vendor's keys on its own
//! authority: every record chain the previous site published must still be in the
//! registry, byte for byte as a prefix of the new chain, and every version added since
//! must be a valid successor of the published head (signed by a threshold of its keys,
//! or of the recovery signers: the `targets` role of the newest root). A chain whose
//! published bytes did not change is not re-read. New vendors are checked from
//! version 1 when the registry is opened ([`crate::registry`]).

use std::collections::{BTreeMap, BTreeSet};

use trellis_schema::publisher::{ChainLimits, PublisherChain, RecoverySigners};
use trellis_schema::tuf::{Envelope, Root};
use trellis_schema::{Sha256, VendorId};

use super::previous::PublishedRecord;
use super::{BuildError, PreviousSite};
use crate::registry::PublisherScope;
use crate::site;
use crate::tuf::PUBLISHER_BIN_PREFIX;

/// What a site publishes in the publisher bins a build plans.
pub(super) struct PublishedRecords {
    /// Every record target of those bins.
    pub(super) records: Vec<PublishedRecord>,
    /// Those bins, when not every one (a registry with some publishers' chains).
    pub(super) bins: Option<BTreeSet<String>>,
}

/// The publisher record targets of `previous` a build of the chains of `scope` plans
/// bins from: every published one, or (some publishers') every record of the bins of
/// theirs, with those bins.
pub(super) fn published_records(
    previous: &PreviousSite,
    scope: &PublisherScope,
    bits: u32,
) -> Result<PublishedRecords, BuildError> {
    let PublisherScope::Vendors(vendors) = scope else {
        return Ok(PublishedRecords { records: previous.published_publisher_targets()?, bins: None });
    };
    let Some(records) = previous.published_publisher_targets_of(vendors, bits)? else {
        return Err(BuildError::Trust(format!(
            "{}: the site's publisher bins are not the 2^{bits} this registry configures; \
             a build that changes publisher_bin_bits is a full build (without --only)",
            previous.dir().display()
        )));
    };
    let bins = vendors.iter().map(|v| site::bin_for_target(&site::publisher_target(v), bits, PUBLISHER_BIN_PREFIX));
    Ok(PublishedRecords { records, bins: Some(bins.collect()) })
}

/// Refuses `chains` (with their new target SHA-256s in `new_sha256`) unless each
/// published chain of `previous` (its record targets: `published`, from
/// [`PreviousSite::published_publisher_targets`]) of a publisher `scope` covers is
/// extended by its new chain, validly.
pub(super) fn check_chains(
    previous: &PreviousSite,
    published: &[PublishedRecord],
    chains: &BTreeMap<VendorId, PublisherChain>,
    scope: &PublisherScope,
    new_sha256: &BTreeMap<VendorId, Sha256>,
    root: Option<&Root>,
) -> Result<(), BuildError> {
    let (keys, threshold) = root.map(crate::registry::recovery_keys).unwrap_or_default();
    let recovery = root.map(|_| RecoverySigners { keys: &keys, threshold });
    let limits = ChainLimits::default();
    for (target, sha256, _) in published {
        let sha256 = *sha256;
        let refuse =
            |vendor: &str, problem: String| BuildError::PublisherChain { publisher: vendor.to_owned(), problem };
        let Some(vendor_id) = vendor_of(target) else { continue };
        let vendor = vendor_id.as_str();
        if !scope.covers(&vendor_id) {
            continue;
        }
        let Some(chain) = chains.get(&vendor_id) else {
            return Err(refuse(
                vendor,
                "its record was published and is missing from publishers/; a published publisher record is never removed".into(),
            ));
        };
        if new_sha256.get(&vendor_id) == Some(&sha256) {
            continue;
        }
        let path = site::target_file(previous.dir(), target, &sha256);
        let bytes = previous.read_target(target, &sha256)?;
        let published = PublisherChain::from_slice(&vendor_id, &bytes, &limits)
            .map_err(|e| BuildError::Site { path: path.clone(), reason: e.to_string() })?;
        if !chain.extends(&published) {
            return Err(refuse(
                vendor,
                format!(
                    "publishers/{vendor}.json does not keep the {} published version(s) of the record unchanged; \
                     a record changes only by appending a version signed by the current keys (trellis-index publisher update)",
                    published.records.len()
                ),
            ));
        }
        chain
            .verify(&vendor_id, published.head(), recovery, &limits)
            .map_err(|e| refuse(vendor, format!("publishers/{vendor}.json: {}", e.problem)))?;
    }
    Ok(())
}

/// The publisher of a publisher record target (`publishers/<vendor>.json`).
pub(super) fn vendor_of(target: &str) -> Option<VendorId> {
    target.strip_prefix("publishers/")?.strip_suffix(".json")?.parse().ok()
}

/// The newest root of `roots` (bytes as published), parsed.
pub(super) fn newest_root(roots: &[Vec<u8>]) -> Option<Root> {
    let bytes = roots.last()?;
    serde_json::from_slice::<Envelope<Root>>(bytes).ok().map(|e| e.signed)
}
