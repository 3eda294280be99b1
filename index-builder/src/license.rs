//! Minting license tokens for a vendor: `trellis-index license keygen | issue`.
//!
//! Owns turning what a sale says into a signed [`LicenseToken`]: a
//! [`LicenseRequest`] either from command-line values or from a payment processor's
//! checkout-completed webhook event ([`LicenseRequest::from_checkout_event`], the shape
//! documented there, modelled on Stripe's `checkout.session.completed`), then
//! [`issue`] with a license key. A vendor's serverless function verifies the
//! processor's webhook signature itself (that is the processor's protocol, with a
//! secret this tool never sees), then pipes the event into `trellis-index license
//! issue --key KEY` and mails the token it prints. The token format and its checks are
//! [`trellis_schema::license`]'s; clients verify tokens under the vendor's publisher
//! record, where the license key is listed with `publisher update --add-license-key`.

use std::path::Path;

use serde_json::Value;
use trellis_schema::license::{LicenseError, LicensePayload, LicenseToken};
use trellis_schema::{PluginId, PublicKey, SigningKey};

/// The event type a checkout webhook must have.
pub const CHECKOUT_COMPLETED: &str = "checkout.session.completed";

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The webhook event is not JSON, or not a completed checkout.
    #[error("webhook event: {0}")]
    Event(String),
    /// A value the token needs is missing.
    #[error("no {what} given: pass {flag} or put `{metadata}` in the checkout's metadata")]
    Missing {
        /// What is missing.
        what: &'static str,
        /// The command-line flag that gives it.
        flag: &'static str,
        /// The metadata key that gives it.
        metadata: &'static str,
    },
    /// A value is malformed.
    #[error("{field}: {problem}")]
    Invalid {
        /// Which value.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The token itself is refused (bounds).
    #[error(transparent)]
    License(#[from] LicenseError),
}

/// What a sale grants, before it is signed. `None` fields are taken from the webhook
/// event, then defaults (1 seat, no expiry).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LicenseRequest {
    /// The plugin sold.
    pub plugin: Option<String>,
    /// The buyer.
    pub licensee: Option<String>,
    /// Seats bought.
    pub seats: Option<u32>,
    /// Days until it expires (none: perpetual).
    pub days: Option<u32>,
    /// Features unlocked.
    pub features: Vec<String>,
    /// The processor's reference.
    pub order: Option<String>,
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(field: &'static str, value: Option<String>) -> Result<Option<u32>, IssueError> {
    value
        .map(|v| {
            v.parse::<u32>().map_err(|_| IssueError::Invalid { field, problem: format!("{v:?} is not a whole number") })
        })
        .transpose()
}

impl LicenseRequest {
    /// Reads a checkout-completed event (Stripe's shape; other processors' functions
    /// map their event to it):
    ///
    /// ```json
    /// {"type": "checkout.session.completed",
    ///  "data": {"object": {
    ///     "id": "cs_live_a1B2",
    ///     "customer_details": {"name": "Ada Lovelace", "email": "ada@example.com"},
    ///     "metadata": {"plugin": "acme.clock", "seats": "3", "days": "365", "features": "pro,export"}}}}
    /// ```
    ///
    /// The licensee is `Name <email>` (or either alone); `metadata` values are strings
    /// (Stripe's rule), `features` comma-separated; the order is the session id. Other
    /// members are ignored; an object naming a member twice is refused.
    pub fn from_checkout_event(bytes: &[u8]) -> Result<Self, IssueError> {
        let event: Value = trellis_schema::json::from_slice(bytes).map_err(|e| IssueError::Event(e.to_string()))?;
        let kind = event.get("type").and_then(Value::as_str).unwrap_or("(none)");
        if kind != CHECKOUT_COMPLETED {
            return Err(IssueError::Event(format!(
                "type is {kind:?}, expected {CHECKOUT_COMPLETED:?}; no token is issued for other events"
            )));
        }
        let object = event
            .pointer("/data/object")
            .filter(|o| o.is_object())
            .ok_or_else(|| IssueError::Event("it has no data.object".into()))?;
        if let Some(status) = object.get("payment_status").and_then(Value::as_str)
            && status != "paid"
            && status != "no_payment_required"
        {
            return Err(IssueError::Event(format!("payment_status is {status:?}; no token is issued before payment")));
        }
        let metadata = object.get("metadata");
        let meta = |key: &str| text(metadata.and_then(|m| m.get(key)));
        let name = text(object.pointer("/customer_details/name"));
        let email = text(object.pointer("/customer_details/email")).or_else(|| text(object.get("customer_email")));
        let licensee = match (name, email) {
            (Some(name), Some(email)) => Some(format!("{name} <{email}>")),
            (name, email) => name.or(email),
        };
        Ok(Self {
            plugin: meta("plugin"),
            licensee,
            seats: number("metadata.seats", meta("seats"))?,
            days: number("metadata.days", meta("days"))?,
            features: meta("features")
                .map(|f| f.split(',').map(str::trim).filter(|f| !f.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default(),
            order: text(object.get("id")),
        })
    }

    /// `self` with every value `other` sets replaced (command-line flags over the event).
    #[must_use]
    pub fn overridden_by(self, other: Self) -> Self {
        Self {
            plugin: other.plugin.or(self.plugin),
            licensee: other.licensee.or(self.licensee),
            seats: other.seats.or(self.seats),
            days: other.days.or(self.days),
            features: if other.features.is_empty() { self.features } else { other.features },
            order: other.order.or(self.order),
        }
    }
}

/// Signs a token for `request` with `key`, issued at `now` (to the second).
pub fn issue(request: LicenseRequest, key: &SigningKey, now: jiff::Timestamp) -> Result<LicenseToken, IssueError> {
    let plugin = request.plugin.ok_or(IssueError::Missing { what: "plugin", flag: "--plugin", metadata: "plugin" })?;
    let plugin: PluginId =
        plugin.parse().map_err(|e| IssueError::Invalid { field: "plugin", problem: format!("{plugin:?}: {e}") })?;
    let licensee = request.licensee.ok_or(IssueError::Missing {
        what: "licensee",
        flag: "--licensee",
        metadata: "customer_details.email",
    })?;
    let issued = jiff::Timestamp::from_second(now.as_second())
        .map_err(|e| IssueError::Invalid { field: "time", problem: e.to_string() })?;
    let expires = match request.days {
        Some(0) => {
            return Err(IssueError::Invalid {
                field: "days",
                problem: "0 days; omit it for a perpetual license".into(),
            });
        }
        Some(days) => Some(
            issued
                .checked_add(jiff::SignedDuration::from_hours(i64::from(days) * 24))
                .map_err(|e| IssueError::Invalid { field: "days", problem: e.to_string() })?,
        ),
        None => None,
    };
    let payload = LicensePayload {
        plugin,
        licensee,
        issued,
        expires,
        seats: request.seats.unwrap_or(1),
        features: request.features,
        keyid: key.key_id().clone(),
        order: request.order,
    };
    Ok(LicenseToken::issue(payload, key)?)
}

/// Reads a public key to list as a license key: a public key file (what `license
/// keygen` writes beside the key) or a private key file.
///
/// A private key file is read as one first, so its secret never lands in a record.
pub fn read_public_key(path: &Path) -> Result<PublicKey, crate::keyfile::KeyFileIoError> {
    let private = crate::keyfile::read(path);
    if let Ok(key) = &private {
        return Ok(key.public().clone());
    }
    if let Ok(text) = std::fs::read_to_string(path)
        && let Ok(key) = trellis_schema::json::from_slice::<PublicKey>(text.as_bytes())
        && key.keyval.len() == 1
        && key.public_str().is_some()
        && key.extra.is_empty()
    {
        return Ok(key);
    }
    private.map(|key| key.public().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, status: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "id": "evt_1", "type": kind,
            "data": {"object": {
                "id": "cs_test_42", "payment_status": status,
                "customer_details": {"name": "Ada Lovelace", "email": "ada@example.com"},
                "metadata": {"plugin": "acme.clock", "seats": "3", "days": "365", "features": "pro, export"}
            }}
        }))
        .unwrap()
    }

    #[test]
    fn a_license_key_is_read_from_its_public_or_private_file_never_with_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("license.key");
        let key = crate::keyfile::generate(&private).unwrap();
        let public = dir.path().join("license.key.pub");
        std::fs::write(&public, serde_json::to_vec(key.public()).unwrap()).unwrap();
        assert_eq!(read_public_key(&private).unwrap(), *key.public());
        assert_eq!(read_public_key(&public).unwrap(), *key.public());
        std::fs::write(&public, b"{}").unwrap();
        assert!(read_public_key(&public).is_err());
    }

    #[test]
    fn a_checkout_event_becomes_a_token() {
        let request = LicenseRequest::from_checkout_event(&event(CHECKOUT_COMPLETED, "paid")).unwrap();
        assert_eq!(request.licensee.as_deref(), Some("Ada Lovelace <ada@example.com>"));
        assert_eq!(request.features, ["pro", "export"]);
        let key = SigningKey::from_seed([4; 32]);
        let now: jiff::Timestamp = "2026-12-01T10:00:00.123Z".parse().unwrap();
        let token = issue(request, &key, now).unwrap();
        let payload = token.payload();
        assert_eq!((payload.seats, payload.order.as_deref()), (3, Some("cs_test_42")));
        assert_eq!(payload.issued.to_string(), "2026-12-01T10:00:00Z");
        assert_eq!(payload.expires.map(|e| e.to_string()).as_deref(), Some("2027-12-01T10:00:00Z"));
    }

    #[test]
    fn other_events_unpaid_sessions_and_missing_values_are_refused() {
        let err = LicenseRequest::from_checkout_event(&event("charge.refunded", "paid")).unwrap_err();
        assert!(err.to_string().contains("type is \"charge.refunded\""), "{err}");
        let err = LicenseRequest::from_checkout_event(&event(CHECKOUT_COMPLETED, "unpaid")).unwrap_err();
        assert!(err.to_string().contains("no token is issued before payment"), "{err}");
        let err = LicenseRequest::from_checkout_event(b"{\"type\": 1, \"type\": 2}").unwrap_err();
        assert!(err.to_string().contains("duplicate member"), "{err}");
        let key = SigningKey::from_seed([4; 32]);
        let err = issue(LicenseRequest::default(), &key, jiff::Timestamp::now()).unwrap_err();
        assert!(err.to_string().contains("no plugin given: pass --plugin"), "{err}");
        let request = LicenseRequest { plugin: Some("Not An Id".into()), ..LicenseRequest::default() };
        assert!(issue(request, &key, jiff::Timestamp::now()).unwrap_err().to_string().starts_with("plugin: "));
    }
}
