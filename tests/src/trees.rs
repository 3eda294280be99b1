//! Generated plugin source trees for tests and benchmarks.
//!
//! A tree holds a valid `plugin.json`, a license, icons with their declared sizes and
//! a mix of content that stresses packaging and extraction differently: compressible
//! text, incompressible binaries and many small files.

use std::fs;
use std::io;
use std::path::Path;

/// A small deterministic pseudo-random generator (xorshift64*), so generated trees are
/// the same on every run without a dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (0 is replaced by a fixed constant).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// A PNG image of `width`×`height` pixels in one colour.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    // Uncompressed (stored) deflate blocks inside a zlib stream: valid and dependency-free.
    let row = 1 + 3 * width as usize;
    let raw: Vec<u8> = (0..height).flat_map(|_| std::iter::once(0).chain(std::iter::repeat_n(0x7f, row - 1))).collect();
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    zlib.extend_from_slice(&adler32(&raw).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in bytes {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

/// `plugin.json` text for a plugin `id` (in vendor `acme`) at `version`, platform `any`.
pub fn plugin_json(id: &str, version: &str) -> String {
    serde_json::json!({
        "id": id, "name": "Generated", "version": version,
        "vendor": {"name": "Acme", "id": id.split('.').next().unwrap_or("acme")},
        "description": {"short": "A generated plugin", "full": ""},
        "categories": ["utility"], "tags": [],
        "icons": {"small": "resources/icon-16.png", "medium": "resources/icon-32.png", "large": "resources/icon-128.png"},
        "permissions": [{"type": "filesystem", "scope": "plugin_directory", "reason": "Keep its data"}],
        "pricing": {"model": "free", "trial_days": 0},
        "host": {"id": "trellis-demo-host", "api_version_requirement": "^1"},
        "platforms": ["any"], "entry": {"any": "bin/any/main.sh"},
        "license": "MIT"
    })
    .to_string()
}

/// Writes the skeleton every valid tree needs: plugin.json, LICENSE, icons, an entry point.
pub fn write_skeleton(root: &Path, id: &str, version: &str) -> io::Result<()> {
    fs::create_dir_all(root.join("resources"))?;
    fs::create_dir_all(root.join("bin/any"))?;
    fs::write(root.join("plugin.json"), plugin_json(id, version))?;
    fs::write(root.join("LICENSE"), "MIT License\n")?;
    fs::write(root.join("bin/any/main.sh"), "#!/bin/sh\necho hello\n")?;
    for size in [16, 32, 128] {
        fs::write(root.join(format!("resources/icon-{size}.png")), png(size, size))?;
    }
    Ok(())
}

/// Writes a valid tree of about `total_bytes`: 40% compressible text in 1 MiB files, 50%
/// random binaries in 8 MiB files, 10% small files of 4 KiB.
pub fn write_mixed_tree(root: &Path, total_bytes: u64, seed: u64) -> io::Result<()> {
    write_skeleton(root, "acme.generated", "1.0.0")?;
    let mut rng = Rng::new(seed);
    let text_dir = root.join("resources/text");
    let bin_dir = root.join("bin/any/lib");
    let small_dir = root.join("resources/small");
    for dir in [&text_dir, &bin_dir, &small_dir] {
        fs::create_dir_all(dir)?;
    }
    let words = ["plugin", "store", "trellis", "signed", "registry", "static", "update", "verify", "index", "mirror"];
    let fill_text = |len: usize, rng: &mut Rng| {
        let mut text = String::with_capacity(len + 16);
        while text.len() < len {
            text.push_str(words[(rng.next_u64() % words.len() as u64) as usize]);
            text.push(if rng.next_u64().is_multiple_of(12) { '\n' } else { ' ' });
        }
        text.truncate(len);
        text
    };
    let text_total = total_bytes * 4 / 10;
    for i in 0..text_total.div_ceil(1 << 20) {
        fs::write(text_dir.join(format!("doc-{i:04}.txt")), fill_text(1 << 20, &mut rng))?;
    }
    let bin_total = total_bytes / 2;
    let mut buf = vec![0u8; 8 << 20];
    for i in 0..bin_total.div_ceil(8 << 20) {
        rng.fill(&mut buf);
        fs::write(bin_dir.join(format!("blob-{i:03}.bin")), &buf)?;
    }
    let small_total = total_bytes / 10;
    for i in 0..small_total.div_ceil(4096) {
        let dir = small_dir.join(format!("{:02}", i % 64));
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(format!("f-{i:05}.json")), fill_text(4096, &mut rng))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_has_the_requested_dimensions_and_valid_checksums() {
        let image = png(32, 16);
        assert_eq!(trellis_schema::validate::png_dimensions(&image), Some((32, 16)));
        // CRC of the IEND chunk is a well-known constant.
        assert_eq!(&image[image.len() - 4..], &[0xAE, 0x42, 0x60, 0x82]);
    }

    #[test]
    fn rng_is_deterministic() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        assert_eq!(a.next_u64(), b.next_u64());
        assert_ne!(Rng::new(8).next_u64(), Rng::new(7).next_u64());
    }
}
