//! Licenses and trials through the store: adding and removing tokens, starting trials,
//! and the license state of a plugin, verified offline.
//!
//! A token is verified under the vendor's publisher record as this client pinned it
//! ([`super::publishers`]): the record of the registry the plugin is installed from,
//! else the registry its vendor is bound to, else the first configured registry that
//! has a pin for the vendor. Only [`Store::add_license`] goes online, and only when no
//! registry has a pin for the vendor yet (it then verifies and pins the record chain
//! like an install would). A refused token leaves the licenses as they were (the
//! vendor's record may have been pinned on the way, as an install would). The types and rules are
//! [`crate::license`]'s; the host is told through [`crate::hooks::HostHooks::license`].

use std::path::Path;

use semver::Version;
use serde::Serialize;
use trellis_schema::PluginId;
use trellis_schema::license::{LicenseError, LicenseToken};
use trellis_schema::plugin::{Pricing, PricingModel};
use trellis_schema::publisher::PublisherRecord;

use super::{Session, Store, StoreError};
use crate::hooks::HookContext;
use crate::license::{LicenseState, Licenses, evaluate};
use crate::state::{RegistryName, Trial};

/// One line of [`Store::license_list`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LicenseEntry {
    /// The plugin.
    pub plugin: PluginId,
    /// The installed release, if any.
    pub installed: Option<Version>,
    /// What it may do now.
    #[serde(flatten)]
    pub state: LicenseState,
}

/// The pricing an installed release's `plugin.json` declares (the file is covered by
/// the developer's signed manifest). `None` when it cannot be read.
pub(crate) fn installed_pricing(release_dir: &Path) -> Option<Pricing> {
    let bytes = std::fs::read(release_dir.join("plugin.json")).ok()?;
    let metadata: serde_json::Value = trellis_schema::json::from_slice(&bytes).ok()?;
    match metadata.get("pricing") {
        None => Some(Pricing::default()),
        Some(pricing) => serde_json::from_value(pricing.clone()).ok(),
    }
}

impl Store {
    /// The time licenses and trials are judged at: the options' reference time (tests)
    /// or the clock.
    pub fn now(&self) -> jiff::Timestamp {
        self.options.reference_time.unwrap_or_else(jiff::Timestamp::now)
    }

    /// The tokens added so far.
    pub fn licenses(&self) -> Result<Licenses, StoreError> {
        Ok(Licenses::load(self.data_dir())?)
    }

    /// Registries to look for `plugin`'s vendor record in, in order.
    fn license_registries(&self, plugin: &PluginId) -> Vec<RegistryName> {
        let state = self.state();
        let mut order: Vec<RegistryName> = state.plugin(plugin).map(|p| p.registry.clone()).into_iter().collect();
        order.extend(state.vendor_registry(&plugin.vendor_id()).cloned());
        order.extend(self.registries().registries.iter().map(|r| r.name.clone()));
        let mut seen = std::collections::BTreeSet::new();
        order.retain(|r| seen.insert(r.clone()));
        order
    }

    /// The vendor record of `plugin` as pinned here (offline).
    fn pinned_vendor_record(&self, plugin: &PluginId) -> Option<PublisherRecord> {
        let vendor = plugin.vendor_id();
        self.license_registries(plugin)
            .iter()
            .find_map(|registry| super::publishers::pinned_record(self.data_dir(), registry, &vendor))
    }

    /// The pricing of `plugin`'s installed release, if installed.
    /// The price model and trial of the installed release of `plugin` (from its signed
    /// `plugin.json`); `None` when it is not installed.
    pub fn pricing_of(&self, plugin: &PluginId) -> Option<Pricing> {
        let installed = self.state().plugin(plugin)?;
        installed_pricing(&self.data_dir().release_dir(plugin, &installed.active.version))
    }

    /// What `plugin` may do now: its token verified under the pinned vendor record, its
    /// trial, its installed pricing. Offline.
    pub fn license_state(&self, plugin: &PluginId) -> Result<LicenseState, StoreError> {
        let licenses = self.licenses()?;
        Ok(self.state_with(plugin, &licenses))
    }

    fn state_with(&self, plugin: &PluginId, licenses: &Licenses) -> LicenseState {
        let now = self.now();
        let pricing = self.pricing_of(plugin);
        let trial = self.state().trials.get(plugin);
        let Some(token) = licenses.get(plugin) else { return evaluate(pricing.as_ref(), None, trial, now) };
        let Some(record) = self.pinned_vendor_record(plugin) else {
            return LicenseState::Invalid {
                reason: format!(
                    "no registry configured here has a record of publisher {}; add the registry that publishes {plugin}",
                    plugin.vendor_id()
                ),
            };
        };
        // The signature is checked here, expiry by `evaluate` (an expired license
        // yields to a running trial).
        let verified = token.verify_signature(&record);
        evaluate(pricing.as_ref(), Some(verified.as_ref().map(|p| *p)), trial, now)
    }

    /// Every plugin with a token, a trial, or an installed release that is not free,
    /// with what it may do now. Offline.
    pub fn license_list(&self) -> Result<Vec<LicenseEntry>, StoreError> {
        let licenses = self.licenses()?;
        let mut plugins: std::collections::BTreeSet<PluginId> = licenses.iter().map(|(id, _)| id.clone()).collect();
        plugins.extend(self.state().trials.keys().cloned());
        for id in self.state().plugins().keys() {
            if self.pricing_of(id).is_some_and(|p| p.model != PricingModel::Free) {
                plugins.insert(id.clone());
            }
        }
        Ok(plugins
            .into_iter()
            .map(|plugin| LicenseEntry {
                installed: self.state().plugin(&plugin).map(|p| p.active.version.clone()),
                state: self.state_with(&plugin, &licenses),
                plugin,
            })
            .collect())
    }

    /// Verifies a pasted token under its vendor's pinned record (fetching and pinning
    /// the record first when no registry has a pin yet) and keeps it, replacing an
    /// earlier token of the same plugin. A token that is malformed, forged, edited,
    /// signed by a key the vendor revoked or does not list, or expired is refused and
    /// nothing changes; so is a token for another plugin than `expected` (a host app
    /// adding a license from one plugin's page). Tells the host when the plugin is
    /// installed.
    pub fn add_license(
        &mut self,
        text: &str,
        expected: Option<&PluginId>,
        session: &Session<'_>,
    ) -> Result<LicenseEntry, StoreError> {
        let refused = |e| StoreError::License { source: Box::new(e) };
        let token = LicenseToken::parse(text).map_err(refused)?;
        let plugin = token.payload().plugin.clone();
        if let Some(expected) = expected
            && expected != &plugin
        {
            return Err(refused(LicenseError::WrongPlugin { token_plugin: plugin, plugin: expected.clone() }));
        }
        let record = match self.pinned_vendor_record(&plugin) {
            Some(record) => record,
            None => self.fetch_vendor_record(&plugin)?,
        };
        token.verify(&record, self.now()).map_err(refused)?;
        let mut licenses = self.licenses()?;
        licenses.insert(token);
        licenses.save(self.data_dir())?;
        let state = self.state_with(&plugin, &licenses);
        self.tell_host(&plugin, &state, session);
        Ok(LicenseEntry { installed: self.state().plugin(&plugin).map(|p| p.active.version.clone()), state, plugin })
    }

    /// Forgets the token of `plugin` (its trial, if any, is kept). Tells the host when
    /// the plugin is installed.
    pub fn remove_license(&mut self, plugin: &PluginId, session: &Session<'_>) -> Result<LicenseState, StoreError> {
        let mut licenses = self.licenses()?;
        if licenses.remove(plugin).is_none() {
            return Err(StoreError::NoLicense { plugin: plugin.clone() });
        }
        licenses.save(self.data_dir())?;
        let state = self.state_with(plugin, &licenses);
        self.tell_host(plugin, &state, session);
        Ok(state)
    }

    /// The vendor record of `plugin` from the first registry that serves one, verified
    /// from its pin (none yet) and pinned.
    fn fetch_vendor_record(&mut self, plugin: &PluginId) -> Result<PublisherRecord, StoreError> {
        let vendor = plugin.vendor_id();
        let order = self.license_registries(plugin);
        let remotes = self.fresh_remotes()?;
        let mut last = None;
        for registry in order {
            match super::publishers::current_record(&remotes, &registry, &vendor) {
                Ok((record, _)) => return Ok((*record).clone()),
                Err(error) => last = Some(error),
            }
        }
        Err(match last {
            Some(StoreError::MissingTarget { .. }) | None => StoreError::NoPublisherRecord { plugin: plugin.clone() },
            Some(error) => error,
        })
    }

    /// Tells the host `state` of `plugin`, when it is installed.
    fn tell_host(&self, plugin: &PluginId, state: &LicenseState, session: &Session<'_>) {
        if let Some(installed) = self.state().plugin(plugin) {
            let version = installed.active.version.clone();
            let path = self.data_dir().release_dir(plugin, &version);
            session.hooks.license(HookContext { plugin, version: &version, path: &path }, state);
        }
    }

    /// At an install or update: starts the trial the new release's pricing offers
    /// unless one was ever started (a removal keeps it; a plugin that becomes paid gets
    /// its trial at the update), and tells the host the license state of a plugin that
    /// is not free or has a token.
    pub(crate) fn settle_license(&mut self, ctx: HookContext<'_>, session: &Session<'_>) -> Result<(), StoreError> {
        let pricing = installed_pricing(ctx.path);
        let now = self.now();
        if let Some(pricing) = &pricing
            && pricing.model != PricingModel::Free
            && pricing.trial_days > 0
            && !self.state().trials.contains_key(ctx.plugin)
        {
            let trial = Trial { started: now, days: pricing.trial_days };
            let plugin = ctx.plugin.clone();
            self.update_state(|state| state.trials.insert(plugin, trial))?;
        }
        let licenses = self.licenses()?;
        let paid = pricing.is_some_and(|p| p.model != PricingModel::Free);
        if paid || licenses.get(ctx.plugin).is_some() {
            let state = self.state_with(ctx.plugin, &licenses);
            session.hooks.license(ctx, &state);
        }
        Ok(())
    }
}
