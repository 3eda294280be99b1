//! What a plugin page shows that the catalog record does not: read from the plugin's
//! newest listed release and its package at build time.
//!
//! Owns extracting the icon and screenshots into content-addressed image blobs
//! (every image fully decoded first: a "PNG" that is not one is refused, naming the
//! release and the file), rendering the long description and `docs/README.md` as
//! Markdown with raw HTML shown as text and links limited to `http(s)`/`mailto`,
//! and the plain-words permissions with their risk. [`super`] renders and writes.

use std::io::Read;
use std::sync::Arc;

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};
use serde::{Deserialize, Serialize};
use trellis_schema::plugin::{METADATA_PATH, PluginMetadata};
use trellis_schema::{PluginId, Sha256};

use super::StorefrontError;
use crate::release::{BlobSource, PluginInput, ReleaseInput};

/// Bounds on what a package may hand the storefront.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageLimits {
    /// Bytes of one image (default 4 MiB).
    pub image_bytes: u64,
    /// Pixels of one image side (default 8192).
    pub image_side: u32,
    /// Bytes of `docs/README.md` (default 256 KiB).
    pub readme_bytes: u64,
    /// Screenshots shown (default 8).
    pub screenshots: usize,
}

impl Default for PageLimits {
    fn default() -> Self {
        Self { image_bytes: 4 << 20, image_side: 8192, readme_bytes: 256 << 10, screenshots: 8 }
    }
}

/// A content-addressed image of the storefront: `images/<sha256>.<png|jpg>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Path in the site.
    pub path: String,
    /// The bytes.
    pub bytes: Arc<[u8]>,
}

/// One screenshot as a page shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shot {
    /// Image path in the site.
    pub src: String,
    /// Caption (alt text when set).
    pub caption: String,
    /// Alt text.
    pub alt: String,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
}

/// A permission in plain words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionLine {
    /// "read and write files in your Pictures folder".
    pub plain: String,
    /// `low`, `medium` or `high`.
    pub risk: String,
    /// The developer's reason.
    pub reason: String,
}

/// A release in the versions table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionLine {
    /// Version.
    pub version: String,
    /// Channel.
    pub channel: String,
    /// Withdrawn by the publisher or operator.
    pub yanked: bool,
}

/// A dependency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyLine {
    /// Plugin id.
    pub id: String,
    /// Version requirement.
    pub requirement: String,
}

/// Everything of a plugin page beyond its catalog record, kept in the site
/// (in its group, `_storefront/pages/<xxx>.json`) so a page can be redone when only its record
/// changes (rating, downloads) without opening the package again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageData {
    /// Plugin id.
    pub id: PluginId,
    /// The version this data was read from.
    pub version: String,
    /// Publisher id.
    pub vendor_id: String,
    /// Publisher web site.
    pub vendor_website: Option<String>,
    /// Icon path in the site (the generic icon when the package has none).
    pub icon: Option<String>,
    /// Screenshots.
    pub screenshots: Vec<Shot>,
    /// Long description, safe HTML.
    pub description_html: String,
    /// `docs/README.md`, safe HTML.
    pub readme_html: Option<String>,
    /// Release notes of the version.
    pub release_notes: Option<String>,
    /// Permissions in plain words.
    pub permissions: Vec<PermissionLine>,
    /// Dependencies.
    pub dependencies: Vec<DependencyLine>,
    /// Every release, newest first.
    pub versions: Vec<VersionLine>,
    /// Trial days of a paid plugin.
    pub trial_days: u32,
    /// SPDX license.
    pub license: String,
    /// Source repository.
    pub repository: Option<String>,
}

/// A plugin's page data and the images it names.
pub type Prepared = (PageData, Vec<Image>);

/// The release a plugin page shows: the one the catalog lists (newest stable that is
/// not yanked, else newest not yanked).
pub fn listed_release(plugin: &PluginInput) -> Option<&ReleaseInput> {
    let live = plugin.releases.iter().filter(|r| !r.yanked);
    live.clone()
        .filter(|r| r.manifest.version.pre.is_empty())
        .max_by(|a, b| a.manifest.version.cmp(&b.manifest.version))
        .or_else(|| live.max_by(|a, b| a.manifest.version.cmp(&b.manifest.version)))
}

/// The page data of `plugin` and the images it needs; `None` when every release is
/// yanked. A package the registry does not hold bytes of (a synthetic registry) gives
/// a page from the signed manifest and `plugin.json`'s display fields only.
pub fn prepare(plugin: &PluginInput, limits: &PageLimits) -> Result<Option<Prepared>, StorefrontError> {
    let Some(release) = listed_release(plugin) else { return Ok(None) };
    let release_name = release.manifest.release_name();
    let mut package = match &release.package.source {
        BlobSource::File(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| StorefrontError::Package { release: release_name.clone(), reason: e.to_string() })?;
            Some(open_zip(Box::new(file), &release_name)?)
        }
        BlobSource::Bytes(bytes) => Some(open_zip(Box::new(std::io::Cursor::new(bytes.clone())), &release_name)?),
        BlobSource::InSite => None,
    };
    let metadata: Option<PluginMetadata> = match &mut package {
        Some(zip) => {
            let bytes = read_entry(zip, METADATA_PATH, 1 << 20, &release_name)?.ok_or_else(|| {
                StorefrontError::Package { release: release_name.clone(), reason: "no plugin.json".into() }
            })?;
            Some(serde_json::from_slice(&bytes).map_err(|e| StorefrontError::Package {
                release: release_name.clone(),
                reason: format!("plugin.json: {e}"),
            })?)
        }
        None => None,
    };
    let mut images = Vec::new();
    let mut icon = None;
    let mut screenshots = Vec::new();
    let mut readme_html = None;
    if let (Some(zip), Some(meta)) = (&mut package, &metadata) {
        if let Some(icons) = &meta.icons {
            let image = read_image(zip, &icons.large, limits, &release_name)?;
            icon = Some(image.0.path.clone());
            images.push(image.0);
        }
        for shot in meta.screenshots.iter().take(limits.screenshots) {
            let (image, width, height) = read_image(zip, &shot.url, limits, &release_name)?;
            let alt =
                if shot.caption.is_empty() { format!("Screenshot of {}", meta.name) } else { shot.caption.clone() };
            screenshots.push(Shot { src: image.path.clone(), caption: shot.caption.clone(), alt, width, height });
            images.push(image);
        }
        if let Some(bytes) = read_entry(zip, "docs/README.md", limits.readme_bytes, &release_name)? {
            readme_html = Some(markdown(&String::from_utf8_lossy(&bytes)));
        }
    }
    let mut permissions: Vec<PermissionLine> = release
        .manifest
        .permissions
        .iter()
        .map(|p| {
            let (plain, risk) = match p.info() {
                Some(info) => (info.plain.to_owned(), format!("{:?}", info.risk).to_lowercase()),
                None => (format!("use {} ({})", p.kind, p.scope), "high".to_owned()),
            };
            PermissionLine { plain, risk, reason: p.reason.clone() }
        })
        .collect();
    permissions.sort_by(|a, b| risk_order(&b.risk).cmp(&risk_order(&a.risk)).then_with(|| a.plain.cmp(&b.plain)));
    let mut versions: Vec<VersionLine> = plugin
        .releases
        .iter()
        .map(|r| VersionLine {
            version: r.manifest.version.to_string(),
            channel: r.manifest.channel.as_str().to_owned(),
            yanked: r.yanked,
        })
        .collect();
    versions.reverse();
    let description = metadata.as_ref().map_or(release.display.description.as_str(), |m| m.description.full.as_str());
    Ok(Some((
        PageData {
            id: plugin.id.clone(),
            version: release.manifest.version.to_string(),
            vendor_id: plugin.id.vendor().to_owned(),
            vendor_website: metadata.as_ref().and_then(|m| m.vendor.website.clone()).filter(|w| safe_url(w)),
            icon,
            screenshots,
            description_html: markdown(description),
            readme_html,
            release_notes: metadata.as_ref().and_then(|m| m.release_notes.clone()),
            permissions,
            dependencies: release
                .manifest
                .dependencies
                .iter()
                .map(|d| DependencyLine { id: d.id.to_string(), requirement: d.version_requirement.to_string() })
                .collect(),
            versions,
            trial_days: release.display.pricing.trial_days,
            license: metadata.as_ref().map(|m| m.license.clone()).unwrap_or_default(),
            repository: metadata.as_ref().and_then(|m| m.repository.clone()).filter(|w| safe_url(w)),
        },
        images,
    )))
}

fn risk_order(risk: &str) -> u8 {
    match risk {
        "high" => 2,
        "medium" => 1,
        _ => 0,
    }
}

trait ReadSeek: Read + std::io::Seek {}
impl<T: Read + std::io::Seek> ReadSeek for T {}

type Zip = zip::ZipArchive<Box<dyn ReadSeek>>;

fn open_zip(reader: Box<dyn ReadSeek>, release: &str) -> Result<Zip, StorefrontError> {
    zip::ZipArchive::new(reader)
        .map_err(|e| StorefrontError::Package { release: release.to_owned(), reason: format!("not a ZIP: {e}") })
}

/// The bytes of `name` in the package, at most `limit`; `None` when absent.
fn read_entry(zip: &mut Zip, name: &str, limit: u64, release: &str) -> Result<Option<Vec<u8>>, StorefrontError> {
    let entry = match zip.by_name(name) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(StorefrontError::Package { release: release.to_owned(), reason: format!("{name}: {e}") }),
    };
    let mut bytes = Vec::new();
    entry
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| StorefrontError::Package { release: release.to_owned(), reason: format!("{name}: {e}") })?;
    if bytes.len() as u64 > limit {
        return Err(StorefrontError::Image {
            release: release.to_owned(),
            path: name.to_owned(),
            reason: format!("over the storefront's limit of {limit} bytes"),
        });
    }
    Ok(Some(bytes))
}

fn read_image(
    zip: &mut Zip,
    name: &str,
    limits: &PageLimits,
    release: &str,
) -> Result<(Image, u32, u32), StorefrontError> {
    let bytes = read_entry(zip, name, limits.image_bytes, release)?.ok_or_else(|| StorefrontError::Image {
        release: release.to_owned(),
        path: name.to_owned(),
        reason: "not in the package".into(),
    })?;
    let (kind, width, height) = check_image(&bytes, limits).map_err(|reason| StorefrontError::Image {
        release: release.to_owned(),
        path: name.to_owned(),
        reason,
    })?;
    let path = format!("images/{}.{kind}", Sha256::of(&bytes));
    Ok((Image { path, bytes: bytes.into() }, width, height))
}

/// The kind (`png`, `jpg`) and size of an image, after decoding every PNG frame (a
/// file that only starts like a PNG is refused) or checking a JPEG's markers.
pub fn check_image(bytes: &[u8], limits: &PageLimits) -> Result<(&'static str, u32, u32), String> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        decoder.set_limits(png::Limits { bytes: 64 << 20 });
        let mut reader = decoder.read_info().map_err(|e| format!("not a valid PNG image: {e}"))?;
        let (width, height) = (reader.info().width, reader.info().height);
        if width > limits.image_side || height > limits.image_side {
            return Err(format!("{width}x{height} pixels, over the storefront's {0}x{0}", limits.image_side));
        }
        let mut buffer = vec![0; reader.output_buffer_size().ok_or("PNG image too large to decode")?];
        reader.next_frame(&mut buffer).map_err(|e| format!("not a valid PNG image: {e}"))?;
        return Ok(("png", width, height));
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) && bytes.ends_with(&[0xFF, 0xD9]) {
        let (width, height) = jpeg_size(bytes).ok_or("a JPEG without a frame header")?;
        return Ok(("jpg", width, height));
    }
    Err("neither a PNG nor a JPEG image".into())
}

/// Width and height from a JPEG's first start-of-frame marker.
fn jpeg_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    while at + 9 < bytes.len() {
        if bytes[at] != 0xFF {
            return None;
        }
        let marker = bytes[at + 1];
        let length = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            let height = u32::from(u16::from_be_bytes([bytes[at + 5], bytes[at + 6]]));
            let width = u32::from(u16::from_be_bytes([bytes[at + 7], bytes[at + 8]]));
            return Some((width, height));
        }
        at += 2 + length;
    }
    None
}

/// Whether a link may appear in a page: `http(s)` and `mailto` only (no `javascript:`,
/// `data:` or relative paths into the site).
fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://") || lower.starts_with("mailto:")
}

/// Markdown → HTML a page can include: raw HTML becomes text (so `<script>` shows as
/// written), images become their alt text (a page makes no request outside the site),
/// links other than `http(s)`/`mailto` become their text. Headings start at level 3.
pub fn markdown(text: &str) -> String {
    render_markdown(text, Flavor::Document)
}

/// A review's Markdown (the subset `trellis-index reviews check` allows, but held to
/// the same rules whatever the document says): as [`markdown`], except that no link
/// is made (a page should not vouch for a reviewer's links: an `http(s)` link shows
/// its text and its address as text) and headings are bold paragraphs (a review
/// must not outline the page).
pub fn review_markdown(text: &str) -> String {
    render_markdown(text, Flavor::Review)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Document,
    Review,
}

fn render_markdown(text: &str, flavor: Flavor) -> String {
    let review = flavor == Flavor::Review;
    let mut dropped_links: Vec<Option<String>> = Vec::new();
    let mut in_image = 0usize;
    let events =
        Parser::new_ext(text, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH).filter_map(|event| match event {
            Event::Html(html) | Event::InlineHtml(html) => Some(Event::Text(html)),
            Event::Start(Tag::Image { .. }) => {
                in_image += 1;
                None
            }
            Event::End(TagEnd::Image) => {
                in_image = in_image.saturating_sub(1);
                None
            }
            Event::Start(Tag::Link { link_type, dest_url, title, id }) => {
                let keep = safe_url(&dest_url) && !review;
                // A dropped link leaves its text; a review's safe address follows as text.
                let trailer = (review && safe_url(&dest_url)).then(|| format!(" ({dest_url})"));
                dropped_links.push((!keep).then(|| trailer.unwrap_or_default()));
                keep.then_some(Event::Start(Tag::Link { link_type, dest_url, title, id }))
            }
            Event::End(TagEnd::Link) => match dropped_links.pop().flatten() {
                None => Some(Event::End(TagEnd::Link)),
                Some(trailer) if trailer.is_empty() => None,
                Some(trailer) => Some(Event::Text(CowStr::from(trailer))),
            },
            Event::Start(Tag::Heading { .. }) if review => Some(Event::Html(CowStr::from("<p><strong>"))),
            Event::End(TagEnd::Heading(_)) if review => Some(Event::Html(CowStr::from("</strong></p>\n"))),
            Event::Start(Tag::Heading { level, id, classes, attrs }) => {
                Some(Event::Start(Tag::Heading { level: demote(level), id, classes, attrs }))
            }
            Event::End(TagEnd::Heading(level)) => Some(Event::End(TagEnd::Heading(demote(level)))),
            Event::Text(text) if in_image > 0 => Some(Event::Text(CowStr::from(text.into_string()))),
            other => Some(other),
        });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

fn demote(level: pulldown_cmark::HeadingLevel) -> pulldown_cmark::HeadingLevel {
    use pulldown_cmark::HeadingLevel::{H1, H2, H3, H4, H5, H6};
    match level {
        H1 => H3,
        H2 => H4,
        H3 => H5,
        _ => H6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_shows_raw_html_as_text_and_drops_unsafe_links_and_images() {
        let html = markdown(
            "# Title\n\n<script>alert(1)</script>\n\nHi <b onclick=x>there</b> [ok](https://a.example) \
             [bad](javascript:alert(1)) ![pic](https://tracker.example/p.png)",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(html.contains("&lt;b onclick=x&gt;"), "{html}");
        assert!(html.contains("<a href=\"https://a.example\">ok</a>"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(html.contains("bad"), "{html}");
        assert!(!html.contains("<img") && !html.contains("tracker.example"), "{html}");
        assert!(html.contains("<h3>Title</h3>"), "{html}");
    }

    #[test]
    fn a_review_makes_no_link_no_heading_and_shows_any_html_as_text() {
        let html = review_markdown(
            "# Great\n\n<script>alert(1)</script>\n\nSee &lt;script&gt;alert(2)&lt;/script&gt;\n\n\
             [site](https://spam.example) [x](javascript:alert(3)) ![p](https://t.example/p.png) *fine*",
        );
        assert!(!html.contains("<script") && !html.contains("<a ") && !html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(2)&lt;/script&gt;"), "{html}");
        assert!(html.contains("site (https://spam.example)"), "{html}");
        assert!(!html.contains("javascript:") && html.contains("x"), "{html}");
        assert!(html.contains("<p><strong>Great</strong></p>") && !html.contains("<h"), "{html}");
        assert!(html.contains("<em>fine</em>"), "{html}");
    }

    #[test]
    fn check_image_refuses_a_png_that_is_only_a_header() {
        let limits = PageLimits::default();
        let mut fake = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0".to_vec();
        fake.extend_from_slice(&[0; 64]);
        let error = check_image(&fake, &limits).unwrap_err();
        assert!(error.contains("not a valid PNG"), "{error}");
        assert!(check_image(b"GIF89a", &limits).unwrap_err().contains("neither a PNG nor a JPEG"));
        let good = trellis_tests::trees::png(3, 2);
        assert_eq!(check_image(&good, &limits).unwrap(), ("png", 3, 2));
    }
}
