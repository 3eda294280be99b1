//! A raw ZIP writer for building hostile (and well-formed) packages in tests.
//!
//! Real ZIP libraries refuse to write most of what an attacker sends, so the
//! adversarial corpus is built from bytes: every header field can be overridden, a
//! central record can point into another entry's data, junk can be prepended or
//! appended. [`package`] assembles a well-formed package (files + the content
//! manifest) and [`release_for`] the release manifest that vouches for given bytes;
//! each hostile case starts from those and breaks exactly one thing.
//!
//! Nothing here checks anything: the checks under test live in
//! `trellis_client::package`.

use std::io::Write as _;

use flate2::Compression;
use flate2::write::DeflateEncoder;
use trellis_schema::Sha256;
use trellis_schema::manifest::{CONTENT_MANIFEST_PATH, ContentManifest, FileEntry, PackageDigest, ReleaseManifest};

/// How an entry's data is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Method 0.
    Stored,
    /// Method 8, raw deflate.
    Deflated,
}

/// Where an entry's central record says its local header is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalOffset {
    /// Its own local header, written in order.
    Own,
    /// The start of entry `n`'s data: the entry has no local header of its own, and
    /// entry `n` is expected to carry it (see [`local_record`]).
    DataOf(usize),
}

/// One entry, with every field that a hostile archive may falsify.
#[derive(Debug, Clone)]
pub struct RawEntry {
    /// Name in the central directory.
    pub name: Vec<u8>,
    /// Content (before compression).
    pub content: Vec<u8>,
    /// Compression.
    pub method: Method,
    /// Compression method number in both headers, when it should not match `method`.
    pub method_number: Option<u16>,
    /// Name in the local header, when it should differ.
    pub local_name: Option<Vec<u8>>,
    /// Compression method number in the local header, when it should differ.
    pub local_method: Option<u16>,
    /// Uncompressed size written in both headers, when it should lie.
    pub declared_size: Option<u32>,
    /// CRC-32 written in both headers, when it should lie.
    pub crc32: Option<u32>,
    /// Compressed bytes, when they should not be the compression of `content`.
    pub raw_data: Option<Vec<u8>>,
    /// External attributes (Unix mode in the high half).
    pub external_attributes: u32,
    /// Version made by (host system in the high byte).
    pub made_by: u16,
    /// General purpose flags.
    pub flags: u16,
    /// Where the central record points.
    pub local_offset: LocalOffset,
}

/// Unix host, ZIP 2.0.
pub const MADE_BY_UNIX: u16 = (3 << 8) | 20;
/// The language-encoding (UTF-8) flag.
pub const FLAG_UTF8: u16 = 1 << 11;
/// `-rw-r--r--` regular file.
pub const MODE_FILE: u32 = 0o100_644;

impl RawEntry {
    /// A deflated regular file.
    pub fn file(name: impl AsRef<[u8]>, content: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.as_ref().to_vec(),
            content: content.into(),
            method: Method::Deflated,
            method_number: None,
            local_name: None,
            local_method: None,
            declared_size: None,
            crc32: None,
            raw_data: None,
            external_attributes: MODE_FILE << 16,
            made_by: MADE_BY_UNIX,
            flags: FLAG_UTF8,
            local_offset: LocalOffset::Own,
        }
    }

    /// A stored regular file.
    pub fn stored(name: impl AsRef<[u8]>, content: impl Into<Vec<u8>>) -> Self {
        Self { method: Method::Stored, ..Self::file(name, content) }
    }

    /// A directory entry (`name` should end in `/`).
    pub fn dir(name: impl AsRef<[u8]>) -> Self {
        Self { method: Method::Stored, external_attributes: 0o040_755 << 16, ..Self::file(name, Vec::new()) }
    }

    /// A symbolic link to `target`.
    pub fn symlink(name: impl AsRef<[u8]>, target: &str) -> Self {
        Self {
            method: Method::Stored,
            external_attributes: 0o120_777 << 16,
            ..Self::file(name, target.as_bytes().to_vec())
        }
    }

    fn data(&self) -> Vec<u8> {
        if let Some(raw) = &self.raw_data {
            return raw.clone();
        }
        match self.method {
            Method::Stored => self.content.clone(),
            Method::Deflated => deflate(&self.content),
        }
    }

    fn method_number(&self) -> u16 {
        if let Some(number) = self.method_number {
            return number;
        }
        match self.method {
            Method::Stored => 0,
            Method::Deflated => 8,
        }
    }

    fn crc(&self) -> u32 {
        self.crc32.unwrap_or_else(|| crc32fast::hash(&self.content))
    }

    fn size(&self) -> u32 {
        self.declared_size.unwrap_or(self.content.len() as u32)
    }
}

/// Raw deflate at the best compression.
pub fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = DeflateEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(bytes).expect("writing to a Vec");
    encoder.finish().expect("writing to a Vec")
}

/// The local header and data of `entry`, as it would appear in an archive: for
/// hiding one entry inside another's data.
pub fn local_record(entry: &RawEntry) -> Vec<u8> {
    let data = entry.data();
    let mut out = Vec::new();
    write_local_header(&mut out, entry, data.len() as u32);
    out.extend_from_slice(&data);
    out
}

fn write_local_header(out: &mut Vec<u8>, entry: &RawEntry, compressed: u32) {
    let name = entry.local_name.as_ref().unwrap_or(&entry.name);
    out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    out.extend_from_slice(&20u16.to_le_bytes());
    out.extend_from_slice(&entry.flags.to_le_bytes());
    out.extend_from_slice(&entry.local_method.unwrap_or(entry.method_number()).to_le_bytes());
    out.extend_from_slice(&[0, 0, 0x21, 0]); // time, date: 1980-01-01 00:00
    out.extend_from_slice(&entry.crc().to_le_bytes());
    out.extend_from_slice(&compressed.to_le_bytes());
    out.extend_from_slice(&entry.size().to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(name);
}

/// An archive, written byte by byte.
#[derive(Debug, Clone, Default)]
pub struct RawZip {
    /// Entries, in order.
    pub entries: Vec<RawEntry>,
    /// Bytes before the first local header.
    pub prepend: Vec<u8>,
    /// Whether the offsets count the prepended bytes (as `zip -A` does) or not (as
    /// `cat stub package.zip` does).
    pub offsets_include_prepended: bool,
    /// Bytes after the end record.
    pub append: Vec<u8>,
}

impl RawZip {
    /// An archive of `entries`.
    pub fn new(entries: Vec<RawEntry>) -> Self {
        Self { entries, ..Self::default() }
    }

    /// The archive's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let base = if self.offsets_include_prepended { self.prepend.len() } else { 0 };
        let mut body = Vec::new();
        let mut local_offsets = Vec::new();
        let mut data_offsets = Vec::new();
        let mut compressed = Vec::new();
        for entry in &self.entries {
            let data = entry.data();
            compressed.push(data.len() as u32);
            if entry.local_offset == LocalOffset::Own {
                local_offsets.push(body.len());
                write_local_header(&mut body, entry, data.len() as u32);
                data_offsets.push(body.len());
                body.extend_from_slice(&data);
            } else {
                local_offsets.push(usize::MAX);
                data_offsets.push(usize::MAX);
            }
        }
        let directory_start = body.len();
        for (i, entry) in self.entries.iter().enumerate() {
            let offset = match entry.local_offset {
                LocalOffset::Own => local_offsets[i],
                LocalOffset::DataOf(n) => data_offsets[n],
            };
            body.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            body.extend_from_slice(&entry.made_by.to_le_bytes());
            body.extend_from_slice(&20u16.to_le_bytes());
            body.extend_from_slice(&entry.flags.to_le_bytes());
            body.extend_from_slice(&entry.method_number().to_le_bytes());
            body.extend_from_slice(&[0, 0, 0x21, 0]);
            body.extend_from_slice(&entry.crc().to_le_bytes());
            body.extend_from_slice(&compressed[i].to_le_bytes());
            body.extend_from_slice(&entry.size().to_le_bytes());
            body.extend_from_slice(&(entry.name.len() as u16).to_le_bytes());
            body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // extra, comment, disk, internal
            body.extend_from_slice(&entry.external_attributes.to_le_bytes());
            body.extend_from_slice(&((offset + base) as u32).to_le_bytes());
            body.extend_from_slice(&entry.name);
        }
        let directory_size = body.len() - directory_start;
        body.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        body.extend_from_slice(&[0, 0, 0, 0]);
        let count = self.entries.len() as u16;
        body.extend_from_slice(&count.to_le_bytes());
        body.extend_from_slice(&count.to_le_bytes());
        body.extend_from_slice(&(directory_size as u32).to_le_bytes());
        body.extend_from_slice(&((directory_start + base) as u32).to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        let mut out = self.prepend.clone();
        out.extend_from_slice(&body);
        out.extend_from_slice(&self.append);
        out
    }
}

/// The manifest entry of `files`: executable under `bin/`, as `pack` marks them.
pub fn file_entry(path: &str, content: &[u8]) -> FileEntry {
    FileEntry {
        path: path.to_owned(),
        size: content.len() as u64,
        sha256: Sha256::of(content),
        executable: path.starts_with("bin/"),
    }
}

/// The content manifest listing `files`, sorted by path.
pub fn content_manifest(files: &[(&str, &[u8])]) -> ContentManifest {
    let mut entries: Vec<FileEntry> = files.iter().map(|(p, c)| file_entry(p, c)).collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    ContentManifest {
        format: trellis_schema::manifest::ManifestFormat::CURRENT,
        plugin_id: "acme.clock".parse().expect("valid id"),
        version: "1.0.0".parse().expect("valid version"),
        files: entries,
    }
}

/// The standard files of a small, valid package.
pub fn standard_files() -> Vec<(String, Vec<u8>)> {
    vec![
        ("plugin.json".to_owned(), br#"{"id":"acme.clock","version":"1.0.0"}"#.to_vec()),
        ("LICENSE".to_owned(), b"MIT License\n".repeat(20)),
        ("bin/linux-x86_64/clock".to_owned(), (0..4096u32).map(|i| (i * 7 % 251) as u8).collect()),
        ("docs/README.md".to_owned(), b"# Clock\n\nTells the time.\n".to_vec()),
    ]
}

/// A package of `files` plus a content manifest listing `listed` (usually the same
/// files). The manifest entry comes last.
pub fn package(files: &[(&str, &[u8])], listed: &[(&str, &[u8])]) -> RawZip {
    let mut entries: Vec<RawEntry> = files.iter().map(|(p, c)| RawEntry::file(p, c.to_vec())).collect();
    entries.push(RawEntry::file(CONTENT_MANIFEST_PATH, manifest_json(listed)));
    RawZip::new(entries)
}

/// `trellis-manifest.json` for `files`.
pub fn manifest_json(files: &[(&str, &[u8])]) -> Vec<u8> {
    serde_json::to_vec_pretty(&content_manifest(files)).expect("serializable")
}

/// The release manifest a developer would sign for `package_bytes` containing `files`.
pub fn release_for(package_bytes: &[u8], files: &[(&str, &[u8])]) -> ReleaseManifest {
    let content = content_manifest(files);
    let value = serde_json::json!({
        "format": content.format,
        "plugin_id": content.plugin_id,
        "version": content.version.to_string(),
        "package": PackageDigest { sha256: Sha256::of(package_bytes), size: package_bytes.len() as u64 },
        "files": content.files,
        "permissions": [],
        "host": {"id": "tauri-demo", "api_version_requirement": ">=1.0.0"},
        "platforms": ["linux-x86_64"],
        "channel": "stable",
        "dependencies": [],
    });
    serde_json::from_value(value).expect("a valid release manifest")
}
