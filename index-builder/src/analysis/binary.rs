//! Reading the imports of a binary (ELF, PE, Mach-O and universal Mach-O) with the
//! `object` crate, without trusting a single size it states.
//!
//! Owns telling binaries apart by their magic bytes and listing what each imports
//! (libraries and symbols). The file is read through a [`ReadCache`], so only the
//! headers and import tables are in memory, never the whole binary; `object` checks
//! every offset and size against the file's real length, so a truncated binary or one
//! whose headers lie is an [`BinaryError`], never a panic or a read past the end.
//! What the imports mean is [`super::map`].

use std::fs::File;
use std::path::Path;

use object::read::ReadCache;
use object::read::macho::{FatArch, MachOFatFile32, MachOFatFile64};
use object::{FileKind, Object, ReadRef};

/// At most this many imports are read from one binary: more is a finding, not work.
pub const MAX_IMPORTS: usize = 100_000;

/// A binary format the analysis reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `\x7fELF`.
    Elf,
    /// `MZ` (a PE file, or a DOS program).
    Pe,
    /// A Mach-O image or a universal (fat) Mach-O.
    MachO,
}

impl Format {
    /// Name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Elf => "ELF",
            Self::Pe => "PE",
            Self::MachO => "Mach-O",
        }
    }
}

/// The format whose magic `head` starts with.
pub fn sniff(head: &[u8]) -> Option<Format> {
    match head {
        [0x7f, b'E', b'L', b'F', ..] => Some(Format::Elf),
        [b'M', b'Z', ..] => Some(Format::Pe),
        [0xfe, 0xed, 0xfa, 0xce | 0xcf, ..]
        | [0xce | 0xcf, 0xfa, 0xed, 0xfe, ..]
        | [0xca, 0xfe, 0xba, 0xbe | 0xbf, ..] => Some(Format::MachO),
        _ => None,
    }
}

/// What a binary imports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Imports {
    /// `(library, symbol)`; the library is empty for ELF symbols (ELF binds names, not
    /// libraries).
    pub symbols: Vec<(String, String)>,
    /// Libraries it needs (PE DLLs and Mach-O dylibs named by its imports).
    pub libraries: Vec<String>,
}

/// A binary that cannot be read as what its magic says.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    /// The file could not be opened or read.
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    /// The headers or import tables are malformed (truncated, sizes past the end).
    #[error("starts like a {format} binary but cannot be parsed ({reason}); it may be truncated or damaged")]
    Malformed {
        /// The format its magic claims.
        format: &'static str,
        /// `object`'s message.
        reason: String,
    },
    /// More than [`MAX_IMPORTS`] imports.
    #[error("imports more than {MAX_IMPORTS} symbols")]
    TooManyImports,
}

/// The imports of the binary at `path`, whose magic said `format`.
pub fn imports(path: &Path, format: Format) -> Result<Imports, BinaryError> {
    let cache = ReadCache::new(File::open(path)?);
    let malformed = |e: object::Error| BinaryError::Malformed { format: format.as_str(), reason: e.to_string() };
    let kind = FileKind::parse(&cache).map_err(malformed)?;
    let mut out = Imports::default();
    match kind {
        FileKind::MachOFat32 => {
            let fat = MachOFatFile32::parse(&cache).map_err(malformed)?;
            for arch in fat.arches() {
                let (offset, size) = arch.file_range();
                image_imports(&cache, offset, size, format, &mut out)?;
            }
        }
        FileKind::MachOFat64 => {
            let fat = MachOFatFile64::parse(&cache).map_err(malformed)?;
            for arch in fat.arches() {
                let (offset, size) = arch.file_range();
                image_imports(&cache, offset, size, format, &mut out)?;
            }
        }
        _ => {
            let len = cache.len().map_err(|()| BinaryError::Malformed {
                format: format.as_str(),
                reason: "cannot read its length".into(),
            })?;
            image_imports(&cache, 0, len, format, &mut out)?;
        }
    }
    out.libraries.sort();
    out.libraries.dedup();
    Ok(out)
}

fn image_imports<'a, R: ReadRef<'a>>(
    data: R,
    offset: u64,
    size: u64,
    format: Format,
    out: &mut Imports,
) -> Result<(), BinaryError> {
    let malformed = |e: object::Error| BinaryError::Malformed { format: format.as_str(), reason: e.to_string() };
    let file = if offset == 0 {
        object::File::parse(data).map_err(malformed)?
    } else {
        let bytes = data.read_bytes_at(offset, size).map_err(|()| BinaryError::Malformed {
            format: format.as_str(),
            reason: format!("an architecture at {offset} of {size} bytes lies past the end"),
        })?;
        return image_imports_slice(bytes, format, out);
    };
    collect(&file, format, out)
}

fn image_imports_slice(bytes: &[u8], format: Format, out: &mut Imports) -> Result<(), BinaryError> {
    let file = object::File::parse(bytes)
        .map_err(|e| BinaryError::Malformed { format: format.as_str(), reason: e.to_string() })?;
    collect(&file, format, out)
}

fn collect<'data, R: ReadRef<'data>>(
    file: &object::File<'data, R>,
    format: Format,
    out: &mut Imports,
) -> Result<(), BinaryError> {
    let imports =
        file.imports().map_err(|e| BinaryError::Malformed { format: format.as_str(), reason: e.to_string() })?;
    let macho = matches!(file, object::File::MachO32(_) | object::File::MachO64(_));
    for import in imports {
        if out.symbols.len() >= MAX_IMPORTS {
            return Err(BinaryError::TooManyImports);
        }
        let import = import.map_err(|e| BinaryError::Malformed { format: format.as_str(), reason: e.to_string() })?;
        let library = String::from_utf8_lossy(import.library()).into_owned();
        let name = match import.name() {
            object::read::NameOrOrdinal::Name(name) => String::from_utf8_lossy(name),
            object::read::NameOrOrdinal::Ordinal(ordinal) => format!("#{ordinal}").into(),
        };
        // Mach-O binds C names with a leading underscore.
        let name = if macho { name.strip_prefix('_').unwrap_or(&name).to_owned() } else { name.into_owned() };
        if !library.is_empty() {
            out.libraries.push(library.clone());
        }
        out.symbols.push((library, name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_the_three_formats_and_nothing_else() {
        assert_eq!(sniff(b"\x7fELF\x02\x01"), Some(Format::Elf));
        assert_eq!(sniff(b"MZ\x90\x00"), Some(Format::Pe));
        assert_eq!(sniff(&[0xcf, 0xfa, 0xed, 0xfe]), Some(Format::MachO));
        assert_eq!(sniff(&[0xca, 0xfe, 0xba, 0xbe]), Some(Format::MachO));
        assert_eq!(sniff(b"#!/bin/sh"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn garbage_after_a_magic_is_malformed_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes, format) in [
            ("elf", b"\x7fELF\x02\x01\x01\x00garbage".to_vec(), Format::Elf),
            ("pe", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff".to_vec(), Format::Pe),
            ("macho", vec![0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1], Format::MachO),
            (
                "fat",
                vec![
                    0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0x00, 0x7f, 0xff,
                    0xff, 0xff, 0, 0, 0, 0,
                ],
                Format::MachO,
            ),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, &bytes).unwrap();
            let err = imports(&path, format).unwrap_err();
            assert!(matches!(err, BinaryError::Malformed { .. }), "{name}: {err}");
        }
    }
}
