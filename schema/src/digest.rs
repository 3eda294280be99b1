//! SHA-256 digests: the content address of every blob, file and document.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

/// A SHA-256 digest, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256([u8; 32]);

/// A string that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a sha256 digest (expected 64 hex digits): {0:?}")]
pub struct ParseDigestError(String);

impl Sha256 {
    /// Hashes `bytes` in one go.
    pub fn of(bytes: &[u8]) -> Self {
        Self(sha2::Sha256::digest(bytes).into())
    }

    /// Wraps raw digest bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.hex().as_str().to_owned()
    }

    /// The 64 lowercase hex digits, on the stack: by hand, as a signed role writes
    /// thousands (`hex::encode` goes char by char through an iterator, ~4 ms for the
    /// 18k digests of a 300k-plugin catalog role).
    fn hex(&self) -> HexDigits {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (pair, byte) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0xf)];
        }
        HexDigits(out)
    }
}

/// A digest's hex digits.
struct HexDigits([u8; 64]);

impl HexDigits {
    fn as_str(&self) -> &str {
        // Hex digits only: ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// An incremental SHA-256 hasher that also counts the bytes it saw.
#[derive(Clone, Default)]
pub struct Hasher {
    inner: sha2::Sha256,
    len: u64,
}

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Number of bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no byte was fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Hashes everything `reader` yields (a file, streamed through a small buffer);
    /// [`Hasher::len`] is then its length.
    pub fn read_all(mut reader: impl std::io::Read) -> std::io::Result<Self> {
        let mut hasher = Self::new();
        std::io::copy(&mut reader, &mut hasher)?;
        Ok(hasher)
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Sha256 {
        Sha256(self.inner.finalize().into())
    }
}

impl std::io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hex().as_str())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

impl FromStr for Sha256 {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Lowercase hex only, decoded in one pass without a branch per character (a
        // signed role lists thousands: 18k in the catalog role at 300k plugins): each
        // character's value from a table, where a character that is not lowercase hex
        // has its high bit set, checked once at the end.
        const INVALID: u8 = 0x80;
        const NIBBLES: [u8; 256] = {
            let mut table = [INVALID; 256];
            let mut c = 0;
            while c < 10 {
                table[b'0' as usize + c] = c as u8;
                c += 1;
            }
            let mut c = 0;
            while c < 6 {
                table[b'a' as usize + c] = 10 + c as u8;
                c += 1;
            }
            table
        };
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(ParseDigestError(s.to_owned()));
        }
        let (mut out, mut seen) = ([0u8; 32], 0u8);
        for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let (high, low) = (NIBBLES[usize::from(pair[0])], NIBBLES[usize::from(pair[1])]);
            seen |= high | low;
            *byte = (high << 4) | (low & 0x0f);
        }
        if seen & INVALID != 0 {
            return Err(ParseDigestError(s.to_owned()));
        }
        Ok(Self(out))
    }
}

impl Serialize for Sha256 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.hex().as_str())
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "json-schema")]
impl schemars::JsonSchema for Sha256 {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Sha256".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9a-f]{64}$",
            "description": "SHA-256 digest as 64 lowercase hex digits"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_known_vector() {
        assert_eq!(Sha256::of(b"abc").to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn incremental_hasher_matches_one_shot_and_counts_bytes() {
        let mut h = Hasher::new();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(h.len(), 3);
        assert_eq!(h.finish(), Sha256::of(b"abc"));
    }

    #[test]
    fn parse_rejects_wrong_length_uppercase_and_non_hex() {
        let good = Sha256::of(b"x").to_hex();
        assert_eq!(good.parse::<Sha256>().map(|d| d.to_hex()), Ok(good.clone()));
        assert!(good[..63].parse::<Sha256>().is_err());
        assert!(good.to_uppercase().parse::<Sha256>().is_err());
        assert!(format!("{}g", &good[..63]).parse::<Sha256>().is_err());
        // Every byte value round-trips; any one character out of [0-9a-f] anywhere is
        // refused (uppercase, the characters beside the ranges, non-ASCII).
        for start in (0..=255u8).step_by(32) {
            let digest = Sha256::from_bytes(std::array::from_fn(|i| start + i as u8));
            assert_eq!(digest.to_hex(), hex::encode(digest.as_bytes()));
            assert_eq!(digest.to_string(), digest.to_hex());
            assert_eq!(serde_json::to_string(&digest).unwrap(), format!("\"{}\"", digest.to_hex()));
            assert_eq!(digest.to_hex().parse::<Sha256>(), Ok(digest));
        }
        let zeros = "0".repeat(64);
        for at in 0..64 {
            for bad in ["A", "F", "g", "/", ":", "`", " "] {
                let text = format!("{}{bad}{}", &zeros[..at], &zeros[at + 1..]);
                assert!(text.parse::<Sha256>().is_err(), "{text}");
            }
            // Every ASCII character at every position: taken exactly when lowercase hex,
            // as the value `hex` decodes (the table's nibbles, the high and low halves).
            for c in 0..128u8 {
                let text = format!("{}{}{}", &zeros[..at], char::from(c), &zeros[at + 1..]);
                let parsed = text.parse::<Sha256>();
                match c {
                    b'0'..=b'9' | b'a'..=b'f' => {
                        assert_eq!(parsed.unwrap().as_bytes()[..], hex::decode(&text).unwrap()[..])
                    }
                    _ => assert!(parsed.is_err(), "{text}"),
                }
            }
        }
        assert!(format!("é{}", &zeros[2..]).parse::<Sha256>().is_err());
    }
}
