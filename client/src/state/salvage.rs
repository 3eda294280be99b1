//! What [`super::StateStore::repair`] can keep of a damaged state file.
//!
//! Reads the file's top-level members one by one and keeps every member read before
//! the damage (a file cut short by a full disk keeps what precedes the cut), then takes
//! each setting it knows from them: the install id, vendor bindings, consents, pins,
//! policies, trials and the time of the last scheduled check. A map member is kept entry by
//! entry, so one bad pin loses that pin, not all of them. Everything that could not be
//! kept is listed by name. The installed set itself is not taken from the file: the
//! plugins' `current` pointers on disk are the authority for it.

use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde_json::{Map, Value};

use super::file::State;
use super::layout::InstallId;

/// The settings recovered from a damaged file, and the names of those lost.
#[derive(Debug, Default)]
pub(super) struct Salvaged {
    /// The install id, when readable.
    pub(super) install_id: Option<InstallId>,
    /// What was kept, for people (`"2 pins"`, `"the global policy"`).
    pub(super) kept: Vec<String>,
    /// What could not be kept, for people (`"pin of acme.clock"`, `"consents"`).
    pub(super) lost: Vec<String>,
    members: Map<String, Value>,
}

/// The settings a state file holds besides the installed set, as stored.
const SETTINGS: [&str; 6] = ["vendors", "consents", "pins", "policies", "trials", "last_update_check"];

impl Salvaged {
    /// Reads what it can of `bytes`.
    pub(super) fn read(bytes: &[u8]) -> Self {
        let mut members = Map::new();
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let complete = serde::Deserializer::deserialize_map(&mut deserializer, Members(&mut members)).is_ok();
        let mut salvaged = Self { members, ..Self::default() };
        salvaged.install_id =
            salvaged.members.get("install_id").and_then(Value::as_str).and_then(|s| InstallId::from_hex(s).ok());
        if salvaged.install_id.is_some() {
            salvaged.kept.push("the install id".into());
        } else {
            salvaged
                .lost
                .push("the install id (a new one was made; staged rollouts may place this install elsewhere)".into());
        }
        if !complete {
            for name in SETTINGS {
                if !salvaged.members.contains_key(name) {
                    salvaged.lost.push(format!("{} (after the damage in the file)", describe(name)));
                }
            }
        }
        salvaged
    }

    /// Puts the kept settings into `state`.
    pub(super) fn apply(&mut self, state: &mut State) {
        if let Some(value) = self.members.get("vendors").cloned() {
            state.vendors = self.map("vendors", "vendor binding of", &value);
        }
        if let Some(value) = self.members.get("pins").cloned() {
            state.pins = self.map("pins", "pin of", &value);
        }
        if let Some(value) = self.members.get("consents").cloned() {
            state.consents = self.map("consents", "consents for", &value);
        }
        if let Some(value) = self.members.get("policies").cloned() {
            state.policies = self.policies(&value);
        }
        // Trials: a repair must not restart one (nor end one early).
        if let Some(value) = self.members.get("trials").cloned() {
            state.trials = self.map("trials", "trial of", &value);
        }
        if let Some(value) = self.members.get("last_update_check").cloned() {
            match serde_json::from_value(value) {
                Ok(time) => {
                    state.last_update_check = time;
                    self.kept.push(describe("last_update_check"));
                }
                Err(_) => self.lost.push(describe("last_update_check")),
            }
        }
    }

    /// A map setting, entry by entry.
    fn map<T: DeserializeOwned + Default>(&mut self, name: &str, entry: &str, value: &Value) -> T {
        if let Ok(all) = serde_json::from_value::<T>(value.clone()) {
            let count = value.as_object().map_or(0, Map::len);
            if count > 0 {
                self.kept.push(format!("{} ({count})", describe(name)));
            }
            return all;
        }
        let Value::Object(entries) = value else {
            self.lost.push(describe(name));
            return T::default();
        };
        let mut good = Map::new();
        for (key, item) in entries {
            let one = Map::from_iter([(key.clone(), item.clone())]);
            if serde_json::from_value::<T>(Value::Object(one)).is_ok() {
                good.insert(key.clone(), item.clone());
            } else {
                self.lost.push(format!("{entry} `{key}`"));
            }
        }
        if !good.is_empty() {
            self.kept.push(format!("{} ({})", describe(name), good.len()));
        }
        serde_json::from_value(Value::Object(good)).unwrap_or_default()
    }

    /// The policies: the global one whole, the per-plugin overrides one by one.
    fn policies(&mut self, value: &Value) -> crate::policy::Policies {
        if let Ok(all) = serde_json::from_value(value.clone()) {
            self.kept.push(describe("policies"));
            return all;
        }
        let mut policies = crate::policy::Policies::default();
        let Value::Object(members) = value else {
            self.lost.push(describe("policies"));
            return policies;
        };
        match members.get("global").map(|g| serde_json::from_value(g.clone())) {
            Some(Ok(global)) => {
                policies.global = global;
                self.kept.push("the global update policy".into());
            }
            Some(Err(_)) => self.lost.push("the global update policy".into()),
            None => {}
        }
        if let Some(plugins) = members.get("plugins") {
            policies.plugins = self.map("policy_overrides", "update policy of", plugins);
        }
        policies
    }
}

fn describe(name: &str) -> String {
    match name {
        "vendors" => "vendor bindings",
        "consents" => "consents",
        "pins" => "pins",
        "policies" => "update policies",
        "policy_overrides" => "per-plugin update policies",
        "trials" => "trials",
        "last_update_check" => "the time of the last scheduled check",
        other => other,
    }
    .into()
}

/// Collects the members of a JSON object into a map as they are read, so those before
/// a parse error survive it.
struct Members<'a>(&'a mut Map<String, Value>);

impl<'de> Visitor<'de> for Members<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            self.0.insert(key, value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn state() -> State {
        State::new(InstallId::from_hex("00112233445566778899aabbccddeeff").unwrap())
    }

    #[test]
    fn keeps_every_member_before_a_truncation() {
        let text = r#"{"schema_version": 1, "install_id": "ffeeddccbbaa99887766554433221100",
            "pins": {"acme.clock": "1.0.0"}, "vendors": {"acme": "main"}, "policies": {"global": {"mo"#;
        let mut salvaged = Salvaged::read(text.as_bytes());
        let mut state = state();
        salvaged.apply(&mut state);
        assert_eq!(salvaged.install_id.unwrap().as_str(), "ffeeddccbbaa99887766554433221100");
        assert_eq!(state.pins.len(), 1);
        assert_eq!(state.vendors.len(), 1);
        assert!(salvaged.lost.iter().any(|l| l.starts_with("update policies")), "{:?}", salvaged.lost);
        assert!(salvaged.lost.iter().any(|l| l.starts_with("consents")), "{:?}", salvaged.lost);
    }

    #[test]
    fn keeps_trials_so_a_repair_never_restarts_one() {
        let mut original = state();
        let trial: super::super::file::Trial =
            serde_json::from_value(serde_json::json!({"started": "2026-01-01T00:00:00Z", "days": 14})).unwrap();
        original.trials.insert("acme.pro".parse().unwrap(), trial);
        let mut bytes = serde_json::to_vec(&original).unwrap();
        // Damage after the trials member: everything before it is kept.
        bytes.truncate(bytes.len() - 1);
        let mut salvaged = Salvaged::read(&bytes);
        let mut repaired = state();
        salvaged.apply(&mut repaired);
        assert_eq!(repaired.trials.get(&"acme.pro".parse().unwrap()), Some(&trial));
        assert!(salvaged.kept.iter().any(|k| k == "trials (1)"), "{:?}", salvaged.kept);

        let text = r#"{"install_id": "ffeeddccbbaa99887766554433221100",
            "trials": {"acme.pro": {"started": "2026-01-01T00:00:00Z", "days": 14}, "acme.bad": {"started": 3}}}"#;
        let mut salvaged = Salvaged::read(text.as_bytes());
        let mut repaired = state();
        salvaged.apply(&mut repaired);
        assert_eq!(repaired.trials.len(), 1);
        assert!(salvaged.lost.iter().any(|l| l == "trial of `acme.bad`"), "{:?}", salvaged.lost);
    }

    #[test]
    fn loses_only_the_bad_entries_of_a_map() {
        let text = r#"{"schema_version": 1, "install_id": 7,
            "pins": {"acme.clock": "1.0.0", "acme.bad": "one", "not an id": "1.0.0"},
            "policies": {"global": {"mode": "sometimes"}, "plugins": {"acme.clock": {"mode": "manual"}}}}"#;
        let mut salvaged = Salvaged::read(text.as_bytes());
        let mut state = state();
        salvaged.apply(&mut state);
        assert!(salvaged.install_id.is_none());
        assert_eq!(state.pins.keys().map(ToString::to_string).collect::<Vec<_>>(), ["acme.clock"]);
        assert!(salvaged.lost.contains(&"pin of `acme.bad`".to_owned()), "{:?}", salvaged.lost);
        assert!(salvaged.lost.contains(&"pin of `not an id`".to_owned()), "{:?}", salvaged.lost);
        assert!(salvaged.lost.contains(&"the global update policy".to_owned()), "{:?}", salvaged.lost);
        assert_eq!(state.policies.plugins.len(), 1);
        assert!(salvaged.kept.contains(&"per-plugin update policies (1)".to_owned()), "{:?}", salvaged.kept);
    }
}
