//! Update policies: whether an available update is applied now, announced, or left alone.
//!
//! The user chooses a mode ([`UpdateMode`]: auto, notify, manual) globally and per
//! plugin, how often to check, and optionally an update window in local time
//! (`02:00-05:00`, may wrap past midnight) for automatic updates, and the channel
//! followed. Pins hold a plugin at one release (the resolver honours them too).
//!
//! The registry operator may stage a rollout (`trellis-index rollout`): a release offered
//! as an update to a percentage of installs (the index doc's `rollout`), chosen by a
//! stable bucket per install id and release, so an install stays in or out across
//! checks and raising the share only adds installs. Like Firefox's background update
//! throttling, it holds back updates the client applies or offers on its own and a
//! plain "update everything"; it never holds back a new install (which gets the newest
//! release), and a user who names the plugin (`trellis update ID`) gets the release at
//! once, as a deliberate choice.
//!
//! This module owns those settings (stored in the state file) and [`decide`], a pure
//! function from settings, the clock and one available update to a [`Decision`] with
//! its reason. It does not find updates (the resolver does), fetch anything, or apply
//! them (the lifecycle does); the clock is passed in.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use jiff::civil::Time;
use jiff::{SignedDuration, Timestamp, ZonedDateTime};
use semver::Version;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
pub use trellis_schema::index::Percent;
use trellis_schema::plugin::Channel;
use trellis_schema::{PluginId, Sha256};

use crate::state::InstallId;

/// How updates of a plugin reach it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateMode {
    /// Applied without asking, inside the update window, unless they need new consent.
    Auto,
    /// The user is told and decides. The default: nothing changes behind the user's back.
    #[default]
    Notify,
    /// Never checked on a schedule; only `trellis update` (or the host's button) updates.
    Manual,
}

impl UpdateMode {
    /// The mode's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Notify => "notify",
            Self::Manual => "manual",
        }
    }
}

impl fmt::Display for UpdateMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UpdateMode {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "notify" => Ok(Self::Notify),
            "manual" => Ok(Self::Manual),
            other => Err(PolicyError::UnknownMode(other.to_owned())),
        }
    }
}

/// A policy setting that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not `auto`, `notify` or `manual`.
    #[error("unknown update mode {0:?}; use auto, notify or manual")]
    UnknownMode(String),
    /// An update window that is not `HH:MM-HH:MM`.
    #[error("update window {input:?}: {problem}; write it as HH:MM-HH:MM in local time, e.g. 02:00-05:00")]
    BadWindow {
        /// What was given.
        input: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// A daily time range in local time in which automatic updates may be applied. The
/// start is included, the end is not; a range whose end is before its start wraps past
/// midnight (`22:00-02:00`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UpdateWindow {
    start: Time,
    end: Time,
}

impl UpdateWindow {
    /// A window from `start` to `end`; they must differ.
    pub fn new(start: Time, end: Time) -> Result<Self, PolicyError> {
        if start == end {
            return Err(PolicyError::BadWindow {
                input: format!("{}-{}", hhmm(start), hhmm(end)),
                problem: "start and end are equal, so the window is empty".into(),
            });
        }
        Ok(Self { start, end })
    }

    /// Whether the local time of day `time` falls inside the window.
    pub fn contains(&self, time: Time) -> bool {
        if self.start < self.end {
            self.start <= time && time < self.end
        } else {
            time >= self.start || time < self.end
        }
    }

    /// The window's first minute.
    pub fn start(&self) -> Time {
        self.start
    }

    /// The first minute after the window.
    pub fn end(&self) -> Time {
        self.end
    }
}

fn hhmm(time: Time) -> String {
    time.strftime("%H:%M").to_string()
}

impl fmt::Display for UpdateWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", hhmm(self.start), hhmm(self.end))
    }
}

impl FromStr for UpdateWindow {
    type Err = PolicyError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let bad = |problem: String| PolicyError::BadWindow { input: input.to_owned(), problem };
        let (start, end) =
            input.split_once(['-', '–']).ok_or_else(|| bad("there is no '-' between start and end".into()))?;
        let parse = |part: &str| -> Result<Time, PolicyError> {
            let part = part.trim();
            let (h, m) = part.split_once(':').ok_or_else(|| bad(format!("{part:?} is not HH:MM")))?;
            let h: i8 = h.parse().map_err(|_| bad(format!("{part:?} has no valid hour")))?;
            let m: i8 = m.parse().map_err(|_| bad(format!("{part:?} has no valid minute")))?;
            Time::new(h, m, 0, 0).map_err(|e| bad(format!("{part:?}: {e}")))
        };
        Self::new(parse(start)?, parse(end)?)
    }
}

impl Serialize for UpdateWindow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UpdateWindow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How often updates are checked for on a schedule, by default.
pub const DEFAULT_CHECK_INTERVAL: SignedDuration = SignedDuration::from_hours(24);

/// The update settings that apply to a plugin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// How updates reach the plugin.
    #[serde(default)]
    pub mode: UpdateMode,
    /// How often to check on a schedule.
    #[serde(default = "default_interval")]
    pub check_interval: SignedDuration,
    /// When automatic updates may be applied; `None` means any time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<UpdateWindow>,
    /// The release channel followed (`stable ⊂ beta ⊂ experimental`), for the resolver.
    #[serde(default)]
    pub channel: Channel,
}

fn default_interval() -> SignedDuration {
    DEFAULT_CHECK_INTERVAL
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            mode: UpdateMode::default(),
            check_interval: DEFAULT_CHECK_INTERVAL,
            window: None,
            channel: Channel::Stable,
        }
    }
}

/// Per-plugin settings that replace the global ones where given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyOverride {
    /// Replaces the global mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<UpdateMode>,
    /// Replaces the global window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<UpdateWindow>,
    /// Replaces the global channel (follow `beta` for one plugin only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
}

/// The global policy and the per-plugin overrides, as stored in the state file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policies {
    /// Applies to every plugin without an override.
    #[serde(default)]
    pub global: Policy,
    /// Per-plugin overrides.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plugins: BTreeMap<PluginId, PolicyOverride>,
}

impl Policies {
    /// The effective policy of `plugin`: the global one with its override applied.
    pub fn for_plugin(&self, plugin: &PluginId) -> Policy {
        let mut policy = self.global.clone();
        if let Some(o) = self.plugins.get(plugin) {
            if let Some(mode) = o.mode {
                policy.mode = mode;
            }
            if let Some(window) = o.window {
                policy.window = Some(window);
            }
            if let Some(channel) = o.channel {
                policy.channel = channel;
            }
        }
        policy
    }

    /// The per-plugin channel overrides, as the resolver's request takes them.
    pub fn channels(&self) -> BTreeMap<PluginId, Channel> {
        self.plugins.iter().filter_map(|(id, o)| Some((id.clone(), o.channel?))).collect()
    }

    /// Whether a scheduled check is due: never checked, the interval has passed, or the
    /// clock went backwards past the last check.
    pub fn check_due(&self, last_check: Option<Timestamp>, now: Timestamp) -> bool {
        match last_check {
            None => true,
            Some(last) if last > now => true,
            Some(last) => now.duration_since(last) >= self.global.check_interval,
        }
    }
}

/// The rollout bucket (0 to 99) of this install for one release: the first 8 bytes of
/// `sha256(install_id ‖ 0 ‖ plugin ‖ 0 ‖ version)` modulo 100. The same install gets
/// the same bucket for a release every time, and independent buckets across releases,
/// so the same installs are not always first.
pub fn rollout_bucket(install_id: &InstallId, plugin: &PluginId, version: &Version) -> u8 {
    let input = format!("{}\0{}\0{}", install_id.as_str(), plugin, version);
    let digest = Sha256::of(input.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    (u64::from_be_bytes(first) % 100) as u8
}

/// An update the resolver found for an installed plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvailableUpdate {
    /// The plugin.
    pub plugin: PluginId,
    /// The active release.
    pub from: Version,
    /// The release offered.
    pub to: Version,
    /// The operator's staged rollout of `to` (from its index doc); `None` means every
    /// install.
    pub rollout: Option<Percent>,
    /// Permission keys of `to` the user has not agreed to (see [`crate::consent`]).
    pub needs_consent: Vec<String>,
}

/// Who asked for the update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The periodic check: mode, window and the staged rollout apply.
    Scheduled,
    /// The user asked to update everything (`trellis update`, an "update all" button):
    /// pins and the staged rollout apply, mode and window do not.
    User,
    /// The user named the plugin (`trellis update ID`): only pins apply, so a release
    /// still in a staged rollout is installed at once.
    Named,
}

/// What to do with an available update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Apply it now.
    Apply,
    /// Tell the user; they decide.
    Notify,
    /// Leave it alone for now.
    Skip,
}

/// Why [`decide`] chose its action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// The user asked for the update.
    Requested,
    /// The policy is auto, the window is open and no new consent is needed.
    Auto,
    /// The policy is notify.
    NotifyPolicy,
    /// The policy is manual.
    ManualPolicy,
    /// The plugin is pinned to another release.
    Pinned {
        /// The release it is held at.
        version: Version,
    },
    /// The release is rolled out to a share of installs that does not include this one yet.
    NotInRollout {
        /// This install's bucket for the release.
        bucket: u8,
        /// The share rolled out to (buckets below it get the release).
        percent: u8,
    },
    /// The policy is auto but the release asks for permissions not agreed to.
    NeedsConsent {
        /// The permission keys.
        permissions: Vec<String>,
    },
    /// The policy is auto and the update waits for the window.
    OutsideWindow {
        /// The window, `HH:MM-HH:MM`.
        window: String,
    },
    /// The administrator policy holds it back ([`crate::admin`]).
    AdminPolicy {
        /// The refusal, naming the policy file and the rule.
        rule: String,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Requested => f.write_str("requested"),
            Self::Auto => f.write_str("automatic updates are on"),
            Self::NotifyPolicy => f.write_str("the update policy is notify"),
            Self::ManualPolicy => f.write_str("the update policy is manual; run `trellis update` to apply it"),
            Self::Pinned { version } => write!(f, "pinned to {version}; `trellis unpin` to allow updates"),
            Self::NotInRollout { bucket, percent } => write!(
                f,
                "staged rollout: offered to {percent}% of installs so far (this one is in bucket {bucket}); name the plugin (`trellis update ID`) to get it now"
            ),
            Self::NeedsConsent { permissions } => {
                write!(f, "it asks for new permissions ({}); review and agree to update", permissions.join(", "))
            }
            Self::OutsideWindow { window } => write!(f, "waits for the update window {window}"),
            Self::AdminPolicy { rule } => f.write_str(rule),
        }
    }
}

/// The decision about one available update.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The plugin.
    pub plugin: PluginId,
    /// The release offered.
    pub to: Version,
    /// What to do.
    pub action: Action,
    /// Why.
    pub reason: Reason,
}

/// What [`decide`] needs to know besides the update itself.
#[derive(Clone, Copy, Debug)]
pub struct PolicyContext<'a> {
    /// The local time now (the update window is in local time).
    pub now: &'a ZonedDateTime,
    /// This install's id, for rollout buckets.
    pub install_id: &'a InstallId,
    /// Policies from the state file.
    pub policies: &'a Policies,
    /// Pins from the state file: the release each pinned plugin is held at.
    pub pins: &'a BTreeMap<PluginId, Version>,
    /// Who asked.
    pub trigger: Trigger,
}

/// Decides what to do with `update`. Order: pins always apply; an update the user
/// named is then applied; an install outside the staged rollout skips; a user's
/// "update everything" is then applied; on a schedule the mode decides, and auto
/// updates needing consent become notifications and wait for the window.
pub fn decide(ctx: PolicyContext<'_>, update: &AvailableUpdate) -> Decision {
    let (action, reason) = decide_action(ctx, update);
    Decision { plugin: update.plugin.clone(), to: update.to.clone(), action, reason }
}

fn decide_action(ctx: PolicyContext<'_>, update: &AvailableUpdate) -> (Action, Reason) {
    if let Some(pinned) = ctx.pins.get(&update.plugin).filter(|pinned| **pinned != update.to) {
        return (Action::Skip, Reason::Pinned { version: pinned.clone() });
    }
    if ctx.trigger == Trigger::Named {
        return (Action::Apply, Reason::Requested);
    }
    let percent = update.rollout.unwrap_or(Percent::ALL).get();
    let bucket = rollout_bucket(ctx.install_id, &update.plugin, &update.to);
    if bucket >= percent {
        return (Action::Skip, Reason::NotInRollout { bucket, percent });
    }
    if ctx.trigger == Trigger::User {
        return (Action::Apply, Reason::Requested);
    }
    let policy = ctx.policies.for_plugin(&update.plugin);
    match policy.mode {
        UpdateMode::Manual => (Action::Skip, Reason::ManualPolicy),
        UpdateMode::Notify => (Action::Notify, Reason::NotifyPolicy),
        UpdateMode::Auto if !update.needs_consent.is_empty() => {
            (Action::Notify, Reason::NeedsConsent { permissions: update.needs_consent.clone() })
        }
        UpdateMode::Auto => match policy.window {
            Some(window) if !window.contains(ctx.now.time()) => {
                (Action::Skip, Reason::OutsideWindow { window: window.to_string() })
            }
            _ => (Action::Apply, Reason::Auto),
        },
    }
}

#[cfg(test)]
mod tests {
    use jiff::civil::{date, time};
    use jiff::tz::TimeZone;
    use proptest::prelude::*;

    use super::*;

    fn clock() -> PluginId {
        "acme.clock".parse().unwrap()
    }

    fn at(hour: i8, minute: i8) -> ZonedDateTime {
        date(2026, 11, 25).at(hour, minute, 0, 0).to_zoned_datetime(TimeZone::fixed(jiff::tz::offset(1))).unwrap()
    }

    fn update(to: Version) -> AvailableUpdate {
        AvailableUpdate { plugin: clock(), from: Version::new(1, 0, 0), to, rollout: None, needs_consent: vec![] }
    }

    fn install_id() -> InstallId {
        InstallId::from_hex("00112233445566778899aabbccddeeff").unwrap()
    }

    fn auto() -> Policies {
        Policies { global: Policy { mode: UpdateMode::Auto, ..Policy::default() }, plugins: BTreeMap::new() }
    }

    fn decide_at(
        now: &ZonedDateTime,
        policies: &Policies,
        pins: &BTreeMap<PluginId, Version>,
        u: &AvailableUpdate,
    ) -> Decision {
        let id = install_id();
        decide(PolicyContext { now, install_id: &id, policies, pins, trigger: Trigger::Scheduled }, u)
    }

    #[test]
    fn window_contains_its_start_but_not_its_end_and_may_wrap_midnight() {
        let night: UpdateWindow = "02:00-05:00".parse().unwrap();
        assert!(night.contains(time(2, 0, 0, 0)));
        assert!(night.contains(time(4, 59, 59, 0)));
        assert!(!night.contains(time(5, 0, 0, 0)));
        assert!(!night.contains(time(1, 59, 0, 0)));
        let late: UpdateWindow = "22:30–01:00".parse().unwrap();
        assert!(late.contains(time(23, 0, 0, 0)));
        assert!(late.contains(time(0, 30, 0, 0)));
        assert!(!late.contains(time(12, 0, 0, 0)));
        assert_eq!(late.to_string(), "22:30-01:00");
    }

    #[test]
    fn malformed_windows_are_refused_with_the_problem() {
        for (input, problem) in [
            ("02:00", "no '-'"),
            ("2-5", "not HH:MM"),
            ("25:00-03:00", "25:00"),
            ("03:00-03:00", "empty"),
            ("ab:00-03:00", "no valid hour"),
        ] {
            let err = input.parse::<UpdateWindow>().unwrap_err().to_string();
            assert!(err.contains(problem), "{input}: {err}");
            assert!(err.contains("HH:MM-HH:MM"), "{err}");
        }
    }

    #[test]
    fn auto_update_applies_inside_the_window_and_waits_outside_it() {
        let mut policies = auto();
        policies.global.window = Some("02:00-05:00".parse().unwrap());
        let u = update(Version::new(1, 1, 0));
        let inside = decide_at(&at(3, 0), &policies, &BTreeMap::new(), &u);
        assert_eq!((inside.action, inside.reason), (Action::Apply, Reason::Auto));
        let outside = decide_at(&at(14, 0), &policies, &BTreeMap::new(), &u);
        assert_eq!(outside.action, Action::Skip);
        assert_eq!(outside.reason.to_string(), "waits for the update window 02:00-05:00");
    }

    #[test]
    fn per_plugin_override_beats_the_global_mode() {
        let mut policies = auto();
        policies
            .plugins
            .insert(clock(), PolicyOverride { mode: Some(UpdateMode::Manual), ..PolicyOverride::default() });
        let u = update(Version::new(1, 1, 0));
        assert_eq!(decide_at(&at(3, 0), &policies, &BTreeMap::new(), &u).reason, Reason::ManualPolicy);
        let other = AvailableUpdate { plugin: "acme.other".parse().unwrap(), ..u };
        assert_eq!(decide_at(&at(3, 0), &policies, &BTreeMap::new(), &other).action, Action::Apply);
        let notify = Policies::default();
        assert_eq!(decide_at(&at(3, 0), &notify, &BTreeMap::new(), &other).action, Action::Notify);
    }

    #[test]
    fn auto_update_that_needs_consent_only_notifies() {
        let u = AvailableUpdate { needs_consent: vec!["shell:execute".into()], ..update(Version::new(2, 0, 0)) };
        let d = decide_at(&at(3, 0), &auto(), &BTreeMap::new(), &u);
        assert_eq!(d.action, Action::Notify);
        assert!(d.reason.to_string().contains("shell:execute"), "{}", d.reason);
    }

    #[test]
    fn pins_hold_even_user_requested_updates() {
        let pins = BTreeMap::from([(clock(), Version::new(1, 0, 0))]);
        let id = install_id();
        let now = at(3, 0);
        let policies = auto();
        let ctx =
            PolicyContext { now: &now, install_id: &id, policies: &policies, pins: &pins, trigger: Trigger::User };
        let d = decide(ctx, &update(Version::new(1, 1, 0)));
        assert_eq!(d.action, Action::Skip);
        assert_eq!(d.reason, Reason::Pinned { version: Version::new(1, 0, 0) });
        assert_eq!(d.reason.to_string(), "pinned to 1.0.0; `trellis unpin` to allow updates");
        let unpinned = BTreeMap::new();
        let ctx = PolicyContext { pins: &unpinned, ..ctx };
        assert_eq!(decide(ctx, &update(Version::new(1, 1, 0))).action, Action::Apply);
    }

    #[test]
    fn naming_the_plugin_ignores_mode_window_and_rollout() {
        let policies =
            Policies { global: Policy { mode: UpdateMode::Manual, ..Policy::default() }, ..Policies::default() };
        let id = install_id();
        let now = at(14, 0);
        let pins = BTreeMap::new();
        let u = AvailableUpdate { rollout: Some(Percent::new(0).unwrap()), ..update(Version::new(1, 1, 0)) };
        let ctx =
            PolicyContext { now: &now, install_id: &id, policies: &policies, pins: &pins, trigger: Trigger::Named };
        assert_eq!(decide(ctx, &u).reason, Reason::Requested);
    }

    #[test]
    fn updating_everything_ignores_mode_and_window_but_not_the_rollout() {
        let policies =
            Policies { global: Policy { mode: UpdateMode::Manual, ..Policy::default() }, ..Policies::default() };
        let id = install_id();
        let now = at(14, 0);
        let pins = BTreeMap::new();
        let ctx =
            PolicyContext { now: &now, install_id: &id, policies: &policies, pins: &pins, trigger: Trigger::User };
        let everyone = update(Version::new(1, 1, 0));
        assert_eq!(decide(ctx, &everyone).reason, Reason::Requested);
        let nobody = AvailableUpdate { rollout: Some(Percent::new(0).unwrap()), ..everyone };
        let d = decide(ctx, &nobody);
        assert_eq!(d.action, Action::Skip);
        assert!(matches!(d.reason, Reason::NotInRollout { percent: 0, .. }), "{d:?}");
    }

    #[test]
    fn zero_percent_rollout_skips_and_full_rollout_applies() {
        let zero = AvailableUpdate { rollout: Some(Percent::new(0).unwrap()), ..update(Version::new(1, 1, 0)) };
        let d = decide_at(&at(3, 0), &auto(), &BTreeMap::new(), &zero);
        assert!(matches!(d.reason, Reason::NotInRollout { percent: 0, .. }), "{d:?}");
        let full = AvailableUpdate { rollout: Some(Percent::ALL), ..zero };
        assert_eq!(decide_at(&at(3, 0), &auto(), &BTreeMap::new(), &full).action, Action::Apply);
    }

    #[test]
    fn rollout_reaches_about_the_stated_share_of_installs() {
        let version = Version::new(2, 0, 0);
        let inside = (0..10_000u32)
            .filter(|n| {
                let id = InstallId::from_hex(&format!("{n:032x}")).unwrap();
                rollout_bucket(&id, &clock(), &version) < 25
            })
            .count();
        assert!((2_200..2_800).contains(&inside), "{inside} of 10000 installs in a 25% rollout");
    }

    #[test]
    fn reasons_read_as_sentences() {
        let reasons = [
            Reason::Requested,
            Reason::Auto,
            Reason::NotifyPolicy,
            Reason::ManualPolicy,
            Reason::Pinned { version: Version::new(1, 2, 0) },
            Reason::NotInRollout { bucket: 71, percent: 20 },
            Reason::NeedsConsent { permissions: vec!["shell:execute".into(), "network:lan".into()] },
            Reason::OutsideWindow { window: "02:00-05:00".into() },
        ];
        let text: Vec<String> = reasons.iter().map(ToString::to_string).collect();
        insta::assert_snapshot!(text.join("\n"));
    }

    #[test]
    fn check_is_due_after_the_interval_or_when_the_clock_went_back() {
        let policies = Policies::default();
        let now: Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
        assert!(policies.check_due(None, now));
        assert!(!policies.check_due(Some(now - SignedDuration::from_hours(23)), now));
        assert!(policies.check_due(Some(now - SignedDuration::from_hours(24)), now));
        assert!(policies.check_due(Some(now + SignedDuration::from_hours(1)), now));
    }

    #[test]
    fn policies_round_trip_through_json() {
        let mut policies = auto();
        policies.global.window = Some("02:00-05:00".parse().unwrap());
        policies.plugins.insert(
            clock(),
            PolicyOverride {
                mode: Some(UpdateMode::Notify),
                channel: Some(Channel::Beta),
                ..PolicyOverride::default()
            },
        );
        let json = serde_json::to_string(&policies).unwrap();
        assert!(json.contains(r#""window":"02:00-05:00""#), "{json}");
        assert_eq!(serde_json::from_str::<Policies>(&json).unwrap(), policies);
        assert_eq!(policies.for_plugin(&clock()).channel, Channel::Beta);
        assert_eq!(policies.for_plugin(&"acme.other".parse().unwrap()).channel, Channel::Stable);
        assert_eq!(policies.channels(), BTreeMap::from([(clock(), Channel::Beta)]));
        assert_eq!(serde_json::from_str::<Policies>("{}").unwrap(), Policies::default());
    }

    proptest! {
        #[test]
        fn window_round_trips_and_splits_the_day(
            start in 0i32..1440, end in 0i32..1440, probe in 0i32..1440
        ) {
            prop_assume!(start != end);
            let t = |m: i32| time((m / 60) as i8, (m % 60) as i8, 0, 0);
            let window = UpdateWindow::new(t(start), t(end)).unwrap();
            prop_assert_eq!(window.to_string().parse::<UpdateWindow>().unwrap(), window);
            // The window and its complement (end to start) cover every minute exactly once.
            let complement = UpdateWindow::new(t(end), t(start)).unwrap();
            prop_assert!(window.contains(t(probe)) != complement.contains(t(probe)));
        }

        #[test]
        fn rollout_bucket_is_stable_and_monotonic_in_percent(seed in any::<u128>(), minor in 0u64..50, pct in 0u32..=100) {
            let id = InstallId::from_hex(&format!("{seed:032x}")).unwrap();
            let v = Version::new(1, minor, 0);
            let bucket = rollout_bucket(&id, &clock(), &v);
            prop_assert!(bucket < 100);
            prop_assert_eq!(bucket, rollout_bucket(&id, &clock(), &v));
            // An install inside a rollout stays inside when the share grows.
            let p = Percent::new(pct).unwrap();
            let u = AvailableUpdate { rollout: Some(p), ..update(v.clone()) };
            let wider = AvailableUpdate { rollout: Some(Percent::new((pct + 10).min(100)).unwrap()), ..update(v) };
            let now = at(3, 0);
            let applied = decide_at(&now, &auto(), &BTreeMap::new(), &u).action == Action::Apply;
            let applied_wider = decide_at(&now, &auto(), &BTreeMap::new(), &wider).action == Action::Apply;
            prop_assert!(!applied || applied_wider);
        }
    }
}
