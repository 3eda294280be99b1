//! The security analysis of a release, as the builder publishes it in the index doc.
//!
//! The registry's checks (`trellis-index lint` in the pull-request check, and `build`)
//! look at what a package really does: static analysis of its binaries and scripts
//! (the capabilities their imports and code use), malware scanners (ClamAV, YARA, the
//! registry's list of known-bad hashes) and, on Linux, a sandboxed run of the entry
//! point. [`ReleaseAnalysis`] is the summary of those results that the index doc
//! carries, signed with it, for the security level and the catalog to use. A release
//! only reaches the index when no check refused it, so a published summary lists
//! capabilities its permissions cover and clean scanner verdicts; what it adds is the
//! evidence and the resource profile.
//!
//! This module holds the types only; the analysis itself lives in
//! `trellis-index` (`analysis`). Every member is optional or defaults to empty, and
//! names this version does not know ([`Capability::Other`]) are kept readable, so a
//! newer builder's summary never makes an older client refuse an index doc.

use serde::{Deserialize, Serialize};

/// A class of things a program can do, which the permission catalog decides on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Opens network connections (sockets, HTTP libraries, name resolution).
    Network,
    /// Accepts incoming network connections.
    NetworkListen,
    /// Starts other programs.
    ProcessCreation,
    /// Runs shell command lines.
    ShellCommand,
    /// Lists or inspects other running programs.
    ProcessInspection,
    /// Reads system or user settings (the Windows registry).
    SettingsRead,
    /// Changes system or user settings (the Windows registry).
    SettingsWrite,
    /// Reaches files outside the plugin's own folder (user folders, home, system paths).
    FilesystemOutside,
    /// Loads code at run time (shared libraries by name, `eval`).
    DynamicCode,
    /// Reads the clipboard.
    ClipboardRead,
    /// Writes the clipboard.
    ClipboardWrite,
    /// Uses a camera.
    Camera,
    /// Records from a microphone.
    Microphone,
    /// Reads identifiers of the computer (host name, network adapters, volume serials).
    SystemIdentifiers,
    /// Writes into or hooks other processes (remote threads, process memory, input hooks).
    CodeInjection,
    /// A class this version does not know (from a newer builder).
    #[serde(other)]
    Other,
}

impl Capability {
    /// Every known class.
    pub const ALL: &'static [Capability] = &[
        Self::Network,
        Self::NetworkListen,
        Self::ProcessCreation,
        Self::ShellCommand,
        Self::ProcessInspection,
        Self::SettingsRead,
        Self::SettingsWrite,
        Self::FilesystemOutside,
        Self::DynamicCode,
        Self::ClipboardRead,
        Self::ClipboardWrite,
        Self::Camera,
        Self::Microphone,
        Self::SystemIdentifiers,
        Self::CodeInjection,
    ];

    /// The name used in documents and in the capability map.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Network => "network",
            Self::NetworkListen => "network_listen",
            Self::ProcessCreation => "process_creation",
            Self::ShellCommand => "shell_command",
            Self::ProcessInspection => "process_inspection",
            Self::SettingsRead => "settings_read",
            Self::SettingsWrite => "settings_write",
            Self::FilesystemOutside => "filesystem_outside",
            Self::DynamicCode => "dynamic_code",
            Self::ClipboardRead => "clipboard_read",
            Self::ClipboardWrite => "clipboard_write",
            Self::Camera => "camera",
            Self::Microphone => "microphone",
            Self::SystemIdentifiers => "system_identifiers",
            Self::CodeInjection => "code_injection",
            Self::Other => "other",
        }
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Capability {
    type Err = UnknownCapability;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.iter().copied().find(|c| c.as_str() == s).ok_or_else(|| UnknownCapability(s.to_owned()))
    }
}

/// A capability name that is not a known class.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown capability class {0:?}")]
pub struct UnknownCapability(pub String);

/// Where a capability was seen: a file of the package and what in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct Evidence {
    /// Package path of the binary or script.
    pub file: String,
    /// The imported symbol or library (`ws2_32.dll!connect`, `libc.so.6!execve`) or
    /// the script pattern that matched.
    pub symbol: String,
}

/// One capability a release uses, with what it was seen in and what covers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct CapabilityUse {
    /// The class.
    pub capability: Capability,
    /// The declared permission (`type:scope`) that covers it; absent for a class no
    /// permission decides on (dynamic code loading is reported, not refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    /// The first places it was seen (bounded; `evidence_total` counts them all).
    pub evidence: Vec<Evidence>,
    /// How many places in all.
    pub evidence_total: u64,
}

/// What a malware scanner said about the package.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Nothing found.
    Clean,
    /// A signature or rule matched (publication is refused).
    Found,
}

/// One scanner's verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct ScannerVerdict {
    /// `clamav`, `yara` or `hash_list`.
    pub scanner: String,
    /// The scanner's version line, when it reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// Rule or signature names that matched, with the file (`bin/x: Eicar-Test`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
}

/// How a sandboxed run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum SandboxExit {
    /// The entry point exited by itself.
    Exited {
        /// Exit code.
        code: i32,
    },
    /// Killed by a signal it did not ask for (a limit, a crash).
    Signaled {
        /// Signal number.
        signal: i32,
    },
    /// Still running at the time limit; stopped.
    TimedOut,
}

/// The behaviour and resource profile of one sandboxed run of the entry point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct SandboxProfile {
    /// The platform the entry point ran on (`linux-x86_64`).
    pub platform: String,
    /// How it ended.
    pub exit: SandboxExit,
    /// Wall-clock time, milliseconds.
    pub wall_ms: u64,
    /// CPU time (user + system) of the whole process tree, milliseconds.
    pub cpu_ms: u64,
    /// Peak resident memory of the largest process, bytes.
    pub peak_memory_bytes: u64,
    /// Processes started (the entry point included).
    pub processes: u64,
    /// Network connections attempted (`inet 93.184.216.34:443`), bounded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<String>,
    /// Programs executed besides the entry point, bounded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub executed: Vec<String>,
    /// Files opened for writing, or read, outside the plugin folder and the system
    /// libraries, bounded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files_outside: Vec<String>,
}

/// The analysis summary of one release (the `analysis` member of an index entry).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct ReleaseAnalysis {
    /// Version of the capability map the static analysis used.
    #[serde(default)]
    pub map_version: u32,
    /// Capabilities the static analysis found, by class.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<CapabilityUse>,
    /// Malware scanners that ran, and what they said.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scanners: Vec<ScannerVerdict>,
    /// The sandboxed run, when one was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxProfile>,
}

impl ReleaseAnalysis {
    /// The classes found.
    pub fn capabilities(&self) -> impl Iterator<Item = Capability> + '_ {
        self.capabilities.iter().map(|c| c.capability)
    }

    /// Whether every scanner that ran found nothing (true when none ran).
    pub fn scanners_clean(&self) -> bool {
        self.scanners.iter().all(|s| s.verdict == Verdict::Clean)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_capability_from_a_newer_builder_still_parses() {
        let use_: CapabilityUse = serde_json::from_str(
            r#"{"capability":"teleportation","evidence":[{"file":"bin/x","symbol":"beam"}],"evidence_total":1}"#,
        )
        .unwrap();
        assert_eq!(use_.capability, Capability::Other);
        assert!("teleportation".parse::<Capability>().is_err());
    }

    #[test]
    fn names_round_trip() {
        for c in Capability::ALL {
            assert_eq!(c.as_str().parse::<Capability>(), Ok(*c));
            assert_eq!(serde_json::to_value(c).unwrap(), serde_json::json!(c.as_str()));
        }
    }

    #[test]
    fn empty_summary_is_an_empty_object_and_defaults_back() {
        let a = ReleaseAnalysis::default();
        assert_eq!(serde_json::to_string(&a).unwrap(), r#"{"map_version":0}"#);
        assert_eq!(serde_json::from_str::<ReleaseAnalysis>("{}").unwrap(), a);
        assert!(a.scanners_clean());
    }

    #[test]
    fn sandbox_exit_is_tagged() {
        let exit: SandboxExit = serde_json::from_str(r#"{"status":"exited","code":3}"#).unwrap();
        assert_eq!(exit, SandboxExit::Exited { code: 3 });
        assert_eq!(serde_json::to_string(&SandboxExit::TimedOut).unwrap(), r#"{"status":"timed_out"}"#);
    }
}
