//! Licenses and trials on the client: the tokens a user added, and what they (or a
//! trial) allow a plugin now.
//!
//! Owns the licenses file (`licenses.json` in the data dir: one token per plugin,
//! written with [`crate::fs::write_atomic`] under the data-dir lock the store holds)
//! and [`LicenseState`], the one answer a host app gates paid features on, computed by
//! [`evaluate`] from the plugin's pricing (its installed `plugin.json`, which the
//! developer's signed manifest covers), its verified token and its trial. Tokens are
//! verified offline by [`trellis_schema::license`] under the vendor's publisher record
//! as this client last pinned it (`store::publishers`), so a key the vendor revoked
//! invalidates its tokens as soon as a refresh pins the new record. Trials are recorded
//! in the state ([`crate::state::Trial`]) at the first install and kept across
//! removals. The store's `license` methods tie these together and tell the host
//! through [`crate::hooks::HostHooks::license`].
//!
//! What this cannot do, without a server: stop a token from being copied to another
//! machine, count seats, or stop a user from editing their own state file to restart a
//! trial. A vendor that needs those needs an activation server; the token format leaves
//! room for one (the `order` reference).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use trellis_schema::PluginId;
use trellis_schema::license::{LicenseError, LicensePayload, LicenseToken};
use trellis_schema::plugin::{Pricing, PricingModel};

use crate::fs::FsError;
use crate::state::{DataDir, Trial};

/// Name of the licenses file in the data dir.
pub const LICENSES_FILE: &str = "licenses.json";

/// What a plugin may do now, as far as its license goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LicenseState {
    /// A free plugin: nothing to license.
    Free,
    /// A valid token.
    Licensed {
        /// Who it is licensed to.
        licensee: String,
        /// When it expires (none: perpetual).
        expires: Option<jiff::Timestamp>,
        /// Seats the vendor signed (not counted without a server).
        seats: u32,
        /// Features it unlocks (empty: the whole plugin).
        features: Vec<String>,
    },
    /// No valid token, and the trial runs.
    Trial {
        /// When the trial ends.
        ends: jiff::Timestamp,
        /// Days left, counting a started day as one (1 on the last day).
        days_left: i64,
    },
    /// No valid token, and the trial is over.
    TrialEnded {
        /// When it ended.
        ended: jiff::Timestamp,
    },
    /// The token expired (and no trial runs).
    Expired {
        /// Who it was licensed to.
        licensee: String,
        /// When it expired.
        expired: jiff::Timestamp,
    },
    /// The token is refused now (its key was revoked, the record no longer lists it).
    Invalid {
        /// Why, in a sentence.
        reason: String,
    },
    /// A paid plugin without token or trial.
    Unlicensed {
        /// Its price model.
        model: PricingModel,
    },
}

impl LicenseState {
    /// Whether the plugin's paid features may run: free, licensed, or in its trial.
    /// A freemium plugin's free part runs whatever this says; the host decides.
    pub fn allows_use(&self) -> bool {
        matches!(self, Self::Free | Self::Licensed { .. } | Self::Trial { .. })
    }

    /// Whether a feature named by the vendor is unlocked (a token with no features
    /// unlocks them all; a trial unlocks them all).
    pub fn allows_feature(&self, feature: &str) -> bool {
        match self {
            Self::Licensed { features, .. } => features.is_empty() || features.iter().any(|f| f == feature),
            other => other.allows_use(),
        }
    }
}

impl std::fmt::Display for LicenseState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Free => write!(f, "free"),
            Self::Licensed { licensee, expires, seats, features } => {
                write!(f, "licensed to {licensee} ({seats} seat{})", if *seats == 1 { "" } else { "s" })?;
                match expires {
                    Some(expires) => write!(f, ", until {}", expires.strftime("%Y-%m-%d"))?,
                    None => write!(f, ", perpetual")?,
                }
                if !features.is_empty() {
                    write!(f, ", features: {}", features.join(", "))?;
                }
                Ok(())
            }
            Self::Trial { ends, days_left } => {
                write!(f, "trial, {days_left} day(s) left (ends {})", ends.strftime("%Y-%m-%d"))
            }
            Self::TrialEnded { ended } => {
                write!(
                    f,
                    "trial ended on {}; add a license with `trellis license add TOKEN`",
                    ended.strftime("%Y-%m-%d")
                )
            }
            Self::Expired { licensee, expired } => {
                write!(f, "license of {licensee} expired on {}; renew it with the vendor", expired.strftime("%Y-%m-%d"))
            }
            Self::Invalid { reason } => write!(f, "license refused: {reason}"),
            Self::Unlicensed { model } => {
                write!(f, "{} plugin, not licensed; add a license with `trellis license add TOKEN`", model_word(*model))
            }
        }
    }
}

/// The price model in one word, as shown to users.
pub fn model_word(model: PricingModel) -> &'static str {
    match model {
        PricingModel::Free => "free",
        PricingModel::Paid => "paid",
        PricingModel::Freemium => "freemium",
        PricingModel::Subscription => "subscription",
    }
}

/// "paid, 14-day trial", "free": a pricing as shown by `info` and `install`.
pub fn describe_pricing(pricing: &Pricing) -> String {
    match (pricing.model, pricing.trial_days) {
        (PricingModel::Free, _) => "free".to_owned(),
        (model, 0) => format!("{}, no trial", model_word(model)),
        (model, days) => format!("{}, {days}-day trial", model_word(model)),
    }
}

/// The state of a plugin priced `pricing` (`None`: not known, e.g. not installed),
/// holding `token` (already verified under the pinned record: its payload, or why it
/// is refused) and `trial`, at `now`.
pub fn evaluate(
    pricing: Option<&Pricing>,
    token: Option<Result<&LicensePayload, &LicenseError>>,
    trial: Option<&Trial>,
    now: jiff::Timestamp,
) -> LicenseState {
    let trial_state = trial.map(|trial| {
        if trial.is_running(now) {
            let left = (trial.ends().duration_since(now).as_secs() + 86_399) / 86_400;
            LicenseState::Trial { ends: trial.ends(), days_left: left }
        } else {
            LicenseState::TrialEnded { ended: trial.ends() }
        }
    });
    let running_trial = trial_state.clone().filter(|t| matches!(t, LicenseState::Trial { .. }));
    match token {
        Some(Ok(payload)) if !payload.is_expired(now) => LicenseState::Licensed {
            licensee: payload.licensee.clone(),
            expires: payload.expires,
            seats: payload.seats,
            features: payload.features.clone(),
        },
        Some(Ok(payload)) => running_trial.unwrap_or_else(|| LicenseState::Expired {
            licensee: payload.licensee.clone(),
            expired: payload.expires.unwrap_or(now),
        }),
        Some(Err(LicenseError::Expired { licensee, expired, .. })) => {
            running_trial.unwrap_or_else(|| LicenseState::Expired { licensee: licensee.clone(), expired: *expired })
        }
        Some(Err(error)) => LicenseState::Invalid { reason: error.to_string() },
        None => match pricing {
            Some(pricing) if pricing.model == PricingModel::Free => LicenseState::Free,
            Some(pricing) => trial_state.unwrap_or(LicenseState::Unlicensed { model: pricing.model }),
            None => trial_state.unwrap_or(LicenseState::Free),
        },
    }
}

/// The tokens a user added, by plugin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Licenses {
    tokens: BTreeMap<PluginId, LicenseToken>,
}

/// The licenses file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LicensesFileError {
    /// Reading or writing it failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// It does not parse.
    #[error("licenses file {} is damaged: {problem}; fix or delete it and add the tokens again", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

impl Licenses {
    fn path(dir: &DataDir) -> PathBuf {
        dir.root().join(LICENSES_FILE)
    }

    /// Reads the licenses file of `dir` (none yet: no tokens).
    pub fn load(dir: &DataDir) -> Result<Self, LicensesFileError> {
        let path = Self::path(dir);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(FsError::new("reading", &path, e).into()),
        };
        let corrupt = |problem: String| LicensesFileError::Corrupt { path: path.clone(), problem };
        let texts: BTreeMap<PluginId, String> =
            trellis_schema::json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let mut tokens = BTreeMap::new();
        for (plugin, text) in texts {
            let token = LicenseToken::parse(&text).map_err(|e| corrupt(format!("the token of {plugin}: {e}")))?;
            if token.payload().plugin != plugin {
                return Err(corrupt(format!("the token listed for {plugin} is for {}", token.payload().plugin)));
            }
            tokens.insert(plugin, token);
        }
        Ok(Self { tokens })
    }

    /// Writes the licenses file of `dir` atomically.
    pub fn save(&self, dir: &DataDir) -> Result<(), LicensesFileError> {
        let texts: BTreeMap<&PluginId, String> = self.tokens.iter().map(|(id, t)| (id, t.to_string())).collect();
        let path = Self::path(dir);
        let mut bytes = serde_json::to_vec_pretty(&texts)
            .map_err(|e| LicensesFileError::Corrupt { path: path.clone(), problem: e.to_string() })?;
        bytes.push(b'\n');
        crate::fs::write_atomic(&path, &bytes)?;
        Ok(())
    }

    /// The token of `plugin`.
    pub fn get(&self, plugin: &PluginId) -> Option<&LicenseToken> {
        self.tokens.get(plugin)
    }

    /// Every token, by plugin.
    pub fn iter(&self) -> impl Iterator<Item = (&PluginId, &LicenseToken)> {
        self.tokens.iter()
    }

    /// Adds `token` for its plugin, returning the one it replaces.
    pub fn insert(&mut self, token: LicenseToken) -> Option<LicenseToken> {
        self.tokens.insert(token.payload().plugin.clone(), token)
    }

    /// Removes the token of `plugin`.
    pub fn remove(&mut self, plugin: &PluginId) -> Option<LicenseToken> {
        self.tokens.remove(plugin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    fn paid(trial_days: u32) -> Pricing {
        Pricing { model: PricingModel::Paid, trial_days }
    }

    #[test]
    fn a_trial_runs_its_days_then_ends() {
        let trial = Trial { started: at("2026-12-01T12:00:00Z"), days: 14 };
        let state = evaluate(Some(&paid(14)), None, Some(&trial), at("2026-12-02T12:00:00Z"));
        assert_eq!(state, LicenseState::Trial { ends: at("2026-12-15T12:00:00Z"), days_left: 13 });
        assert!(state.allows_use() && state.allows_feature("pro"));
        let state = evaluate(Some(&paid(14)), None, Some(&trial), at("2026-12-15T12:00:00Z"));
        assert_eq!(state, LicenseState::TrialEnded { ended: at("2026-12-15T12:00:00Z") });
        assert!(!state.allows_use());
        assert!(state.to_string().contains("trial ended on 2026-12-15; add a license"), "{state}");
    }

    #[test]
    fn free_paid_and_refused_tokens() {
        let now = at("2026-12-01T00:00:00Z");
        assert_eq!(evaluate(Some(&Pricing::default()), None, None, now), LicenseState::Free);
        let unlicensed = evaluate(Some(&paid(0)), None, None, now);
        assert_eq!(unlicensed, LicenseState::Unlicensed { model: PricingModel::Paid });
        assert!(!unlicensed.allows_use());
        let refused = LicenseError::Signature { plugin: "acme.clock".parse().unwrap() };
        let state = evaluate(Some(&paid(0)), Some(Err(&refused)), None, now);
        assert!(matches!(&state, LicenseState::Invalid { reason } if reason.contains("invalid signature")));
        assert!(!state.allows_use());
        assert_eq!(describe_pricing(&paid(14)), "paid, 14-day trial");
        assert_eq!(
            describe_pricing(&Pricing { model: PricingModel::Subscription, trial_days: 0 }),
            "subscription, no trial"
        );
    }

    #[test]
    fn features_are_gated_by_the_token() {
        let licensed =
            LicenseState::Licensed { licensee: "Ada".into(), expires: None, seats: 1, features: vec!["pro".into()] };
        assert!(licensed.allows_feature("pro") && !licensed.allows_feature("export"));
        let all = LicenseState::Licensed { licensee: "Ada".into(), expires: None, seats: 1, features: vec![] };
        assert!(all.allows_feature("export"));
    }
}
