//! Version requirements as pubgrub version sets, and how sets read in messages.
//!
//! Owns the translation of a `semver::VersionReq` (as written in `plugin.json` and the
//! index) into a [`Ranges`] of versions the solver can intersect and complement, and the
//! inverse direction for people: a set printed the way a requirement is written. It does
//! not decide which releases exist or are allowed; that is [`super::provider`].
//!
//! Pre-releases: a requirement is an interval in semver order, so the set `^1.2` contains
//! `1.5.0-beta.1`. Whether a pre-release is offered to the solver at all is decided per
//! release by [`super::provider`] ([`super::PreReleases`]: like cargo, only when asked
//! for). Upper bounds written
//! `<2.0.0` (or implied by `^1`, `~1.2`, `1.*`) stop before `2.0.0-0`, so no requirement
//! reaches into the pre-releases of the next excluded version, exactly as
//! `semver::VersionReq::matches` behaves there.

use std::fmt::{self, Write as _};
use std::ops::Bound;

use pubgrub::Ranges;
use semver::{Comparator, Op, Prerelease, Version, VersionReq};

/// The set of versions a requirement admits.
pub(crate) fn requirement_ranges(req: &VersionReq) -> Ranges<Version> {
    req.comparators.iter().fold(Ranges::full(), |set, comparator| set.intersection(&comparator_ranges(comparator)))
}

/// The smallest version with this major.minor.patch (`1.2.3-0`).
fn floor(major: u64, minor: u64, patch: u64) -> Version {
    Version { major, minor, patch, pre: Prerelease::new("0").unwrap_or(Prerelease::EMPTY), build: Default::default() }
}

fn release(major: u64, minor: u64, patch: u64) -> Version {
    Version::new(major, minor, patch)
}

/// `[low, next)` where `next` is the first version of the next excluded triple.
fn half_open(low: Version, next: (u64, u64, u64)) -> Ranges<Version> {
    Ranges::between(low, floor(next.0, next.1, next.2))
}

fn comparator_ranges(c: &Comparator) -> Ranges<Version> {
    let major = c.major;
    let exact = |minor: u64, patch: u64| Version { major, minor, patch, pre: c.pre.clone(), build: Default::default() };
    // The triple after the one the comparator names at its own precision.
    let bump = || match (c.minor, c.patch) {
        (Some(minor), Some(patch)) => (major, minor, patch.saturating_add(1)),
        (Some(minor), None) => (major, minor.saturating_add(1), 0),
        _ => (major.saturating_add(1), 0, 0),
    };
    let minor = c.minor.unwrap_or(0);
    let patch = c.patch.unwrap_or(0);
    match c.op {
        Op::Exact | Op::Wildcard => match c.patch {
            Some(patch) => Ranges::singleton(exact(minor, patch)),
            None => half_open(release(major, minor, 0), bump()),
        },
        Op::Greater => match c.patch {
            Some(patch) => Ranges::strictly_higher_than(exact(minor, patch)),
            None => {
                let (a, b, p) = bump();
                Ranges::higher_than(release(a, b, p))
            }
        },
        Op::GreaterEq => Ranges::higher_than(exact(minor, patch)),
        Op::Less => {
            if c.pre.is_empty() {
                Ranges::strictly_lower_than(floor(major, minor, patch))
            } else {
                Ranges::strictly_lower_than(exact(minor, patch))
            }
        }
        Op::LessEq => match c.patch {
            Some(patch) => Ranges::lower_than(exact(minor, patch)),
            None => Ranges::strictly_lower_than({
                let (a, b, p) = bump();
                floor(a, b, p)
            }),
        },
        Op::Tilde => {
            let next =
                if c.minor.is_some() { (major, minor.saturating_add(1), 0) } else { (major.saturating_add(1), 0, 0) };
            half_open(exact(minor, patch), next)
        }
        Op::Caret => {
            let next = match (major, c.minor, c.patch) {
                (0, Some(0), Some(patch)) => (0, 0, patch.saturating_add(1)),
                (0, Some(minor), _) => (0, minor.saturating_add(1), 0),
                (major, _, _) => (major.saturating_add(1), 0, 0),
            };
            half_open(exact(minor, patch), next)
        }
        // `semver` may grow operators; an unknown one admits nothing rather than everything.
        _ => Ranges::empty(),
    }
}

/// A version, printed without the `-0` floor this module puts on exclusive upper bounds.
struct Shown<'a>(&'a Version);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.pre.as_str() == "0" && v.build.is_empty() {
            write!(f, "{}.{}.{}", v.major, v.minor, v.patch)
        } else {
            write!(f, "{v}")
        }
    }
}

/// A version set as a person writes it: `1.2.0`, `>=1.2.0, <2.0.0`, `<1.0.0 or >=1.1.0`,
/// `any version`, `no version`.
pub(crate) fn display_ranges(set: &Ranges<Version>) -> String {
    let mut out = String::new();
    for (i, (low, high)) in set.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        let _ = match (low, high) {
            (Bound::Unbounded, Bound::Unbounded) => write!(out, "any version"),
            (Bound::Included(a), Bound::Included(b)) if a == b => write!(out, "{a}"),
            (low, high) => {
                let low = match low {
                    Bound::Included(v) => Some(format!(">={}", Shown(v))),
                    Bound::Excluded(v) => Some(format!(">{}", Shown(v))),
                    Bound::Unbounded => None,
                };
                let high = match high {
                    Bound::Included(v) => Some(format!("<={}", Shown(v))),
                    Bound::Excluded(v) => Some(format!("<{}", Shown(v))),
                    Bound::Unbounded => None,
                };
                let parts: Vec<String> = low.into_iter().chain(high).collect();
                write!(out, "{}", parts.join(", "))
            }
        };
    }
    if out.is_empty() {
        out.push_str("no version");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(req: &str) -> Ranges<Version> {
        requirement_ranges(&req.parse().unwrap())
    }

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn caret_tilde_and_wildcards_cover_what_semver_says() {
        assert_eq!(display_ranges(&set("^1.2")), ">=1.2.0, <2.0.0");
        assert_eq!(display_ranges(&set("^0.2.3")), ">=0.2.3, <0.3.0");
        assert_eq!(display_ranges(&set("^0.0.3")), ">=0.0.3, <0.0.4");
        assert_eq!(display_ranges(&set("~1.2.3")), ">=1.2.3, <1.3.0");
        assert_eq!(display_ranges(&set("1.*")), ">=1.0.0, <2.0.0");
        assert_eq!(display_ranges(&set("=1.2.3")), "1.2.3");
        assert_eq!(display_ranges(&set("*")), "any version");
        assert_eq!(display_ranges(&set(">=1, <1")), "no version");
        assert_eq!(display_ranges(&set(">1.2, <=2")), ">=1.3.0, <3.0.0");
    }

    #[test]
    fn upper_bounds_exclude_the_next_versions_prereleases() {
        let caret = set("^1.2");
        assert!(!caret.contains(&v("2.0.0-beta.1")));
        assert!(caret.contains(&v("1.9.9")));
        assert!(!set("<2.0.0").contains(&v("2.0.0-rc.1")));
        assert!(set("<2.0.0-rc.2").contains(&v("2.0.0-rc.1")));
    }

    #[test]
    fn prereleases_inside_an_interval_are_admitted_channels_filter_them() {
        assert!(set("^1.2").contains(&v("1.5.0-beta.1")));
        assert!(!set("^1.2").contains(&v("1.2.0-beta.1")));
        assert!(set(">=1.2.0-beta.1").contains(&v("1.2.0-beta.2")));
    }

    proptest! {
        #[test]
        fn agrees_with_semver_on_release_versions(
            op in prop::sample::select(vec!["", "=", ">", ">=", "<", "<=", "~", "^"]),
            major in 0u64..4, minor in prop::option::of(0u64..4), patch in prop::option::of(0u64..4),
            wildcard in any::<bool>(),
            (a, b, c) in (0u64..5, 0u64..5, 0u64..5),
        ) {
            let req = match (minor, patch) {
                (Some(minor), Some(patch)) => format!("{op}{major}.{minor}.{patch}"),
                (Some(minor), None) if wildcard && op.is_empty() => format!("{major}.{minor}.*"),
                (Some(minor), None) => format!("{op}{major}.{minor}"),
                (None, _) if wildcard && op.is_empty() => format!("{major}.*"),
                (None, _) => format!("{op}{major}"),
            };
            let parsed: VersionReq = req.parse().unwrap();
            let version = Version::new(a, b, c);
            prop_assert_eq!(requirement_ranges(&parsed).contains(&version), parsed.matches(&version), "{} vs {}", req, version);
        }
    }
}
