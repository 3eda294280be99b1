//! Which delegated roles are trusted for a target path: glob patterns, hash prefixes
//! and TAP 15 succinct hash bins (at most [`MAX_SUCCINCT_BIT_LENGTH`] bits). Pure
//! functions over `Delegations`.
//!
//! Owns path matching, bin naming and the structural rules of `delegations`; it does
//! not load or verify roles (the walk in [`super::Updater::target_info`] does, through
//! [`super::TrustedSet::verify_targets`]).

use std::collections::HashSet;

use trellis_schema::key::{KeyId, PublicKey};
use trellis_schema::tuf::{DelegatedRole, Delegations, SuccinctRoles, Targets};

use super::{KeyIds, TrustError};

/// The largest `bit_length` of a succinct hash-bin delegation accepted: 2^16 = 65 536
/// bins (a Trellis site has at most that many, `trellis-index` refuses more). TAP 15
/// allows up to 32, but a listing of every bin of a 32-bit delegation is four billion
/// role names: a delegating key could make a search allocate ~96 GiB and abort the
/// host process.
pub const MAX_SUCCINCT_BIT_LENGTH: u32 = 16;

/// The top-level role names, which a delegation may not reuse.
const TOP_LEVEL: [&str; 4] = ["root", "timestamp", "snapshot", "targets"];

/// Checks that every id of the key table `keys` of `role` names its key (the SHA-256
/// of the key's canonical JSON) when `key_ids` asks for it.
pub(crate) fn check_key_ids(
    role: &str,
    keys: &std::collections::BTreeMap<KeyId, PublicKey>,
    key_ids: KeyIds,
) -> Result<(), TrustError> {
    if key_ids == KeyIds::AsListed {
        return Ok(());
    }
    for (id, key) in keys {
        let actual = KeyId::of(key).map_err(|e| TrustError::malformed(role, format!("key {id}: {e}")))?;
        if &actual != id {
            return Err(TrustError::malformed(
                role,
                format!("key id {id} is not the SHA-256 of its key (that is {actual}); a key id must name its key"),
            ));
        }
    }
    Ok(())
}

/// Checks the structural rules of a targets document's delegations.
pub(crate) fn validate(role: &str, targets: &Targets, key_ids: KeyIds) -> Result<(), TrustError> {
    let Some(delegations) = &targets.delegations else { return Ok(()) };
    check_key_ids(role, &delegations.keys, key_ids)?;
    let bad = |reason: String| TrustError::malformed(role, reason);
    match (&delegations.roles, &delegations.succinct_roles) {
        (Some(_), Some(_)) => return Err(bad("delegations has both roles and succinct_roles".into())),
        (None, None) => return Err(bad("delegations has neither roles nor succinct_roles".into())),
        (None, Some(succinct)) => {
            if !(1..=MAX_SUCCINCT_BIT_LENGTH).contains(&succinct.bit_length) {
                return Err(bad(format!(
                    "succinct_roles.bit_length {} is not in 1..={MAX_SUCCINCT_BIT_LENGTH} (at most {} hash bins); refused",
                    succinct.bit_length,
                    1u64 << MAX_SUCCINCT_BIT_LENGTH
                )));
            }
        }
        (Some(roles), None) => {
            let mut names = HashSet::new();
            for delegated in roles {
                if !names.insert(delegated.name.as_str()) {
                    return Err(bad(format!("role {:?} is delegated twice", delegated.name)));
                }
                if TOP_LEVEL.contains(&delegated.name.as_str()) {
                    return Err(bad(format!("delegated role {:?} has a top-level role's name", delegated.name)));
                }
                if delegated.paths.is_some() == delegated.path_hash_prefixes.is_some() {
                    return Err(bad(format!(
                        "delegated role {:?} must have exactly one of paths and path_hash_prefixes",
                        delegated.name
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The child roles trusted for `target`, in delegation order, each with whether it
/// is terminating (succinct bins always are).
pub(crate) fn roles_for_target(delegations: &Delegations, target: &str) -> Vec<(String, bool)> {
    if let Some(succinct) = &delegations.succinct_roles {
        return vec![(bin_for_target(succinct, target), true)];
    }
    let target_hash = std::cell::OnceCell::new();
    delegations
        .roles
        .iter()
        .flatten()
        .filter(|role| is_delegated_path(role, target, || target_hash.get_or_init(|| sha256_hex(target)).clone()))
        .map(|role| (role.name.clone(), role.terminating))
        .collect()
}

/// Key ids and threshold `delegations` gives `role`, if it delegates to it.
pub(crate) fn role_keys<'a>(delegations: &'a Delegations, role: &str) -> Option<(&'a [KeyId], u32)> {
    if let Some(succinct) = &delegations.succinct_roles {
        return is_bin_of(succinct, role).then_some((succinct.keyids.as_slice(), succinct.threshold));
    }
    delegations.roles.iter().flatten().find(|r| r.name == role).map(|r| (r.keyids.as_slice(), r.threshold))
}

fn is_delegated_path(role: &DelegatedRole, target: &str, target_hash: impl FnOnce() -> String) -> bool {
    if let Some(paths) = &role.paths {
        return paths.iter().any(|pattern| path_matches(pattern, target));
    }
    if let Some(prefixes) = &role.path_hash_prefixes {
        let hash = target_hash();
        return prefixes.iter().any(|prefix| hash.starts_with(prefix.as_str()));
    }
    false
}

fn sha256_hex(text: &str) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()))
}

/// The number of hex digits of a bin name's suffix.
fn suffix_len(succinct: &SuccinctRoles) -> usize {
    let last = (1u64 << succinct.bit_length) - 1;
    format!("{last:x}").len()
}

/// The names of every bin of a succinct delegation, in order.
pub(crate) fn all_bins(succinct: &SuccinctRoles) -> Vec<String> {
    let width = suffix_len(succinct);
    let count = 1u64 << succinct.bit_length.min(MAX_SUCCINCT_BIT_LENGTH);
    (0..count).map(|n| format!("{}-{n:0width$x}", succinct.name_prefix)).collect()
}

/// The succinct bin `target` falls into: the first `bit_length` bits of its SHA-256.
pub(crate) fn bin_for_target(succinct: &SuccinctRoles, target: &str) -> String {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(target.as_bytes());
    let first = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    let bin = u64::from(first) >> (32 - succinct.bit_length.clamp(1, 32));
    format!("{}-{:0width$x}", succinct.name_prefix, bin, width = suffix_len(succinct))
}

fn is_bin_of(succinct: &SuccinctRoles, role: &str) -> bool {
    let Some(suffix) = role.strip_prefix(succinct.name_prefix.as_str()).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    suffix.len() == suffix_len(succinct)
        && u64::from_str_radix(suffix, 16).is_ok_and(|bin| bin < (1u64 << succinct.bit_length))
}

/// TUF path matching: pattern and target have the same number of `/`-separated
/// segments and each segment matches as an `fnmatch` glob (`*`, `?`, `[...]`), so
/// `*` never crosses a `/`. Case-sensitive.
pub(crate) fn path_matches(pattern: &str, target: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').collect();
    let target: Vec<&str> = target.split('/').collect();
    pattern.len() == target.len()
        && pattern
            .iter()
            .zip(&target)
            .all(|(p, t)| glob(&p.chars().collect::<Vec<_>>(), &t.chars().collect::<Vec<_>>()))
}

fn glob(pattern: &[char], text: &[char]) -> bool {
    match pattern.first() {
        None => text.is_empty(),
        Some('*') => (0..=text.len()).any(|skip| glob(&pattern[1..], &text[skip..])),
        Some('?') => !text.is_empty() && glob(&pattern[1..], &text[1..]),
        Some('[') => match (class(&pattern[1..]), text.first()) {
            (Some((matches, rest)), Some(&c)) => matches(c) && glob(rest, &text[1..]),
            (None, Some(&c)) => c == '[' && glob(&pattern[1..], &text[1..]),
            (_, None) => false,
        },
        Some(&c) => text.first() == Some(&c) && glob(&pattern[1..], &text[1..]),
    }
}

type ClassMatch<'a> = (Box<dyn Fn(char) -> bool + 'a>, &'a [char]);

/// Parses a `[...]` class after its `[`; `None` when unterminated (then `[` is literal).
fn class(pattern: &[char]) -> Option<ClassMatch<'_>> {
    let (negated, body_start) = match pattern.first() {
        Some('!') => (true, 1),
        _ => (false, 0),
    };
    // A `]` right at the start belongs to the class.
    let close = pattern.iter().enumerate().skip(body_start + 1).find(|(_, c)| **c == ']')?.0;
    let body = &pattern[body_start..close];
    let matcher = move |c: char| {
        let mut i = 0;
        let mut hit = false;
        while i < body.len() {
            if i + 2 < body.len() && body[i + 1] == '-' {
                hit |= body[i] <= c && c <= body[i + 2];
                i += 3;
            } else {
                hit |= body[i] == c;
                i += 1;
            }
        }
        hit != negated
    };
    Some((Box::new(matcher), &pattern[close + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_per_segment_and_case_sensitively() {
        assert!(path_matches("*.md", "README.md"));
        assert!(!path_matches("*.md", "releases/README.md"), "* does not cross /");
        assert!(path_matches("releases/*/*", "releases/x/x_v1"));
        assert!(path_matches("foo-?.tgz", "foo-1.tgz"));
        assert!(!path_matches("foo-?.tgz", "foo-alpha.tgz"));
        assert!(!path_matches("*.md", "README.MD"));
        assert!(path_matches("[a-c]x", "bx") && !path_matches("[!a-c]x", "bx") && path_matches("[!a-c]x", "dx"));
        assert!(path_matches("*", "") && !path_matches("*", "a/b"));
    }

    #[test]
    fn succinct_bins_use_the_leading_bits_of_the_path_hash() {
        let succinct = SuccinctRoles {
            keyids: vec![],
            threshold: 1,
            bit_length: 8,
            name_prefix: "bin".into(),
            extra: Default::default(),
        };
        let digest = <sha2::Sha256 as sha2::Digest>::digest(b"index/ab/acme.clock.json");
        assert_eq!(bin_for_target(&succinct, "index/ab/acme.clock.json"), format!("bin-{:02x}", digest[0]));
        assert!(is_bin_of(&succinct, "bin-ff") && !is_bin_of(&succinct, "bin-100") && !is_bin_of(&succinct, "bin-f"));
        let wide = SuccinctRoles { bit_length: 9, ..succinct.clone() };
        assert!(is_bin_of(&wide, "bin-1ff") && !is_bin_of(&wide, "bin-200") && !is_bin_of(&wide, "bin-ff"));
        let doc = |bit_length: u32| Targets {
            type_: "targets".into(),
            spec_version: "1.0.31".into(),
            version: 1,
            expires: "2030-01-01T00:00:00Z".into(),
            targets: Default::default(),
            delegations: Some(Delegations {
                keys: Default::default(),
                roles: None,
                succinct_roles: Some(SuccinctRoles { bit_length, ..succinct.clone() }),
                extra: Default::default(),
            }),
            extra: Default::default(),
        };
        validate("bins", &doc(16), KeyIds::Bound).unwrap();
        let err = validate("bins", &doc(17), KeyIds::Bound).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bins: malformed metadata: succinct_roles.bit_length 17 is not in 1..=16 (at most 65536 hash bins); refused"
        );
        assert!(
            validate("bins", &doc(0), KeyIds::Bound).is_err() && validate("bins", &doc(32), KeyIds::Bound).is_err()
        );
    }
}
