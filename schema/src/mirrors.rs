//! The mirror list a registry publishes: where else its site is served.
//!
//! The builder writes it as the target [`crate::target::MIRRORS_TARGET`] of the
//! top-level `targets` role (signed by the offline targets keys, like the delegations:
//! a compromised online key cannot point clients at a server of its choosing). A mirror
//! is only a *location*: every file a client gets from one is verified under the
//! registry's TUF metadata exactly as from the primary URL, so the list can add
//! availability, never trust.

use serde::{Deserialize, Serialize};

/// `mirrors.json`: the registry's mirrors in its order of preference.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorList {
    /// The mirrors, most preferred first.
    pub mirrors: Vec<PublishedMirror>,
}

/// One mirror of a registry's site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedMirror {
    /// Base URL of the copy of the site (`<url>/metadata/`, `<url>/targets/`);
    /// `https://` or `http://`.
    pub url: String,
}

/// Why a mirror URL is not acceptable in a published list.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MirrorUrlError {
    /// Not an absolute `https://` or `http://` URL with a host.
    #[error("mirror URL `{url}` must be an absolute https:// or http:// URL")]
    Scheme {
        /// The URL.
        url: String,
    },
    /// The same mirror twice.
    #[error("mirror URL `{url}` is listed twice")]
    Duplicate {
        /// The URL.
        url: String,
    },
}

impl MirrorList {
    /// A list of `urls` (trailing `/` removed), refusing a URL that is not
    /// `https://`/`http://` with a host, or that is listed twice.
    pub fn from_urls<'a>(urls: impl IntoIterator<Item = &'a str>) -> Result<Self, MirrorUrlError> {
        let mut mirrors: Vec<PublishedMirror> = Vec::new();
        for url in urls {
            let url = normalize(url)?;
            if mirrors.iter().any(|m| m.url == url) {
                return Err(MirrorUrlError::Duplicate { url });
            }
            mirrors.push(PublishedMirror { url });
        }
        Ok(Self { mirrors })
    }
}

/// `url` without trailing `/`, when it is an `https://` or `http://` URL with a host and
/// no whitespace.
pub fn normalize(url: &str) -> Result<String, MirrorUrlError> {
    let bad = || MirrorUrlError::Scheme { url: url.to_owned() };
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).ok_or_else(bad)?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    Ok(url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalized_and_checked() {
        let list = MirrorList::from_urls(["https://eu.example.org/store/", "http://10.0.0.1:8080"]).unwrap();
        let urls: Vec<&str> = list.mirrors.iter().map(|m| m.url.as_str()).collect();
        assert_eq!(urls, ["https://eu.example.org/store", "http://10.0.0.1:8080"]);
        for bad in ["file:///srv/site", "ftp://x", "https://", "https:///path", "https://a b", "eu.example.org"] {
            assert!(matches!(MirrorList::from_urls([bad]), Err(MirrorUrlError::Scheme { .. })), "{bad}");
        }
        assert_eq!(
            MirrorList::from_urls(["https://a.example", "https://a.example/"]),
            Err(MirrorUrlError::Duplicate { url: "https://a.example".into() })
        );
    }

    #[test]
    fn the_document_is_strict() {
        let list: MirrorList = crate::json::from_slice(br#"{"mirrors":[{"url":"https://eu.example.org"}]}"#).unwrap();
        assert_eq!(list.mirrors[0].url, "https://eu.example.org");
        assert!(crate::json::from_slice::<MirrorList>(br#"{"mirrors":[],"extra":1}"#).is_err());
    }
}
