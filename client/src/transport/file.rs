//! `file://` mirrors: a registry copied to a local disk or a USB stick.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use super::{Fetched, Request, Transport, TransportError, Validators, read_capped};

/// Reads `file://` URLs from the local file system. Conditional requests are answered
/// with the full file (there is nothing to save on a local read).
#[derive(Debug, Default, Clone, Copy)]
pub struct FileTransport;

impl FileTransport {
    fn path_of(url: &str) -> Option<PathBuf> {
        let rest = url.strip_prefix("file://")?;
        // `file:///abs/path` (empty host) or `file://localhost/abs/path`.
        let rest = rest.strip_prefix("localhost").unwrap_or(rest);
        if !rest.starts_with('/') {
            return None;
        }
        Some(PathBuf::from(percent_decode(rest)?))
    }
}

/// Decodes `%XX` escapes (role names and target paths are quoted in URLs).
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Transport for FileTransport {
    fn fetch(&self, request: &Request<'_>) -> Result<Fetched, TransportError> {
        let url = request.url;
        let path = Self::path_of(url).ok_or_else(|| TransportError::UnsupportedUrl { url: url.to_owned() })?;
        let io_error = |e: io::Error| match e.kind() {
            io::ErrorKind::NotFound => TransportError::NotFound { url: url.to_owned(), status: 404 },
            io::ErrorKind::PermissionDenied => TransportError::NotFound { url: url.to_owned(), status: 403 },
            io::ErrorKind::FileTooLarge => TransportError::TooLarge { url: url.to_owned(), limit: request.max_length },
            _ => {
                TransportError::Connection { url: url.to_owned(), message: format!("reading {}: {e}", path.display()) }
            }
        };
        let file = File::open(&path).map_err(io_error)?;
        let declared = file.metadata().map_err(io_error)?.len();
        if declared > request.max_length {
            return Err(TransportError::TooLarge { url: url.to_owned(), limit: request.max_length });
        }
        let bytes = read_capped(file, request, Some(declared), super::Pace::default()).map_err(io_error)?;
        Ok(Fetched::Body { bytes, validators: Validators::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_decodes_quoting_and_enforces_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a b?.json"), b"0123456789").unwrap();
        let url = format!("file://{}/a%20b%3F.json", dir.path().display());
        let got = FileTransport.fetch(&Request::new(&url, 10)).unwrap();
        assert_eq!(got.into_bytes().unwrap(), b"0123456789");
        let err = FileTransport.fetch(&Request::new(&url, 9)).unwrap_err();
        assert!(matches!(err, TransportError::TooLarge { limit: 9, .. }), "{err}");
        let missing = format!("file://{}/nope.json", dir.path().display());
        assert!(FileTransport.fetch(&Request::new(&missing, 9)).unwrap_err().is_not_found());
        assert!(matches!(
            FileTransport.fetch(&Request::new("file://relative/x", 9)),
            Err(TransportError::UnsupportedUrl { .. })
        ));
    }
}
