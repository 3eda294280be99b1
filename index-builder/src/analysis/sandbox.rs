//! Dynamic analysis: the plugin's Linux entry point run under bubblewrap, traced by
//! strace, for a bounded time.
//!
//! Owns running one entry point in a sandbox and reading what it tried to do. The
//! command line is
//! `time -o RUSAGE prlimit LIMITS strace -f -o TRACE [-u nobody] bwrap SANDBOX ENTRY`:
//! - bubblewrap gives the program no network (`--unshare-all`: only a loopback-less
//!   network namespace), a private view of the file system (system directories
//!   read-only, the plugin folder read-only at `/plugin`, a size-bounded `/tmp` and
//!   `HOME` in memory), its own PID namespace, `--die-with-parent`;
//! - `prlimit` bounds processes (`RLIMIT_NPROC`: a fork bomb fails to fork), file
//!   size (`RLIMIT_FSIZE`: a disk filler gets `SIGXFSZ`) and address space; when this
//!   runs as root (which no limit binds) the program runs as `nobody` (`strace -u`);
//! - the wall-clock limit is ours: past it the whole process group is killed
//!   (bubblewrap's PID namespace ends with it), so a program that never exits costs
//!   exactly the limit;
//! - GNU `time` reports the CPU time and the peak resident memory of the tree.
//!
//! From the trace: network connections attempted, programs executed, files opened
//! outside the plugin folder and the system's read-only directories, and the number
//! of processes. [`run`] compares them with the declared permissions and returns the
//! [`SandboxProfile`] the builder publishes. Linux only; elsewhere it says so.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use trellis_schema::analysis::{SandboxExit, SandboxProfile};
use trellis_schema::plugin::{Platform, PluginMetadata};
use trellis_schema::validate::{Problem, Severity};

/// Limits of a sandboxed run.
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    /// Wall-clock time before the run is stopped (default 10 s).
    pub timeout: Duration,
    /// Most processes at once (default 64).
    pub max_processes: u64,
    /// Largest file it may write, and the size of its `/tmp` (default 64 MiB).
    pub max_file_size: u64,
    /// Address space per process (default 4 GiB).
    pub max_address_space: u64,
    /// Entries kept in each list of the profile (default 32).
    pub max_listed: usize,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_processes: 64,
            max_file_size: 64 << 20,
            max_address_space: 4 << 30,
            max_listed: 32,
        }
    }
}

/// Lines of the trace read at most (a program looping on `open` cannot make the
/// analysis unbounded; the trace file itself is bounded by the file-size limit).
const MAX_TRACE_LINES: usize = 1_000_000;

/// Where the plugin folder appears inside the sandbox.
const PLUGIN_DIR: &str = "/plugin";

/// Read-only system locations whose reads are not worth reporting.
const SYSTEM_PREFIXES: &[&str] = &[
    "/usr/",
    "/lib/",
    "/lib64/",
    "/bin/",
    "/sbin/",
    "/etc/ld.so",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/alternatives/",
    "/etc/ssl/",
    "/etc/locale",
    "/proc/self/",
    "/proc/thread-self/",
    "/dev/null",
    "/dev/urandom",
    "/dev/random",
    "/dev/tty",
    "/dev/zero",
    "/sys/devices/system/cpu",
    "/sys/fs/cgroup",
    "/proc/sys/kernel/",
    "/proc/meminfo",
    "/proc/cpuinfo",
    "/proc/stat",
    "/etc/python",
    "/etc/mime.types",
];

/// Runs the Linux entry point of the release at `root` in the sandbox.
pub fn run(root: &Path, metadata: &PluginMetadata, options: &SandboxOptions) -> (Option<SandboxProfile>, Vec<Problem>) {
    let entry = metadata.entry.get(&Platform::LinuxX86_64).or_else(|| metadata.entry.get(&Platform::Any));
    let Some(entry) = entry else {
        return (None, vec![warning("entry", "no linux-x86_64 or any entry point: the sandboxed run was skipped")]);
    };
    if !cfg!(target_os = "linux") {
        return (None, vec![warning(entry, "the sandboxed run needs Linux (bubblewrap and strace); skipped")]);
    }
    for tool in ["bwrap", "strace", "prlimit", "time"] {
        if which(tool).is_none() {
            return (
                None,
                vec![Problem::error(
                    entry.as_str(),
                    format!(
                        "the sandboxed run needs `{tool}` (Debian: bubblewrap, strace, util-linux, time); install it or run lint without --sandbox"
                    ),
                )],
            );
        }
    }
    match execute(root, entry, options) {
        Ok(outcome) => judge(entry, metadata, options, outcome),
        Err(e) => (None, vec![Problem::error(entry.as_str(), format!("the sandboxed run failed to start: {e}"))]),
    }
}

fn warning(path: &str, message: &str) -> Problem {
    Problem { path: path.to_owned(), message: message.to_owned(), severity: Severity::Warning }
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

struct Outcome {
    profile: SandboxProfile,
    /// Files opened for writing outside the plugin folder and `/tmp`.
    writes_outside: Vec<String>,
}

fn execute(root: &Path, entry: &str, options: &SandboxOptions) -> std::io::Result<Outcome> {
    let work = tempfile::Builder::new().prefix("trellis-sandbox-").tempdir()?;
    let trace = work.path().join("trace");
    let rusage = work.path().join("rusage");
    let root = root.canonicalize()?;
    let as_root = is_root();
    let mut command = Command::new("time");
    command.arg("-f").arg("%e %U %S %M").arg("-o").arg(&rusage);
    command.arg("prlimit");
    // RLIMIT_NPROC counts every process of the user: the program's share is on top of
    // what that user (nobody when this runs as root) runs already.
    let runs_as = if as_root { NOBODY } else { current_uid() };
    command.arg(format!("--nproc={}", options.max_processes + processes_of(runs_as)));
    command.arg(format!("--fsize={}", options.max_file_size));
    command.arg(format!("--as={}", options.max_address_space));
    command.arg("--");
    command.args(["strace", "-f", "-qq", "-s", "256", "-e", "signal=none"]);
    command.args(["-e", "trace=execve,execveat,connect,open,openat,openat2,creat,fork,vfork,clone,clone3"]);
    command.arg("-o").arg(&trace);
    if as_root {
        command.args(["-u", "nobody"]);
    }
    command.args(["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--clearenv"]);
    command.args(["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]);
    for link in ["/bin", "/sbin", "/lib", "/lib64", "/lib32"] {
        command.args(["--ro-bind-try", link, link]);
    }
    command.args(["--proc", "/proc", "--dev", "/dev"]);
    command.args(["--size", &options.max_file_size.to_string(), "--tmpfs", "/tmp"]);
    command.arg("--ro-bind").arg(&root).arg(PLUGIN_DIR);
    command.args(["--chdir", PLUGIN_DIR]);
    command.args(["--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/tmp"]);
    command.args(["--setenv", "TRELLIS_PLUGIN_DIR", PLUGIN_DIR]);
    command.arg("--").arg(format!("{PLUGIN_DIR}/{entry}"));
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let started = Instant::now();
    let mut child = command.spawn()?;
    let deadline = started + options.timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            kill_group(child.id());
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let _ = status;
    let (cpu_ms, peak_memory_bytes, exit) = read_rusage(&rusage);
    // Bubblewrap reports a program killed by signal N as exit status 128 + N.
    let exit = match exit {
        SandboxExit::Exited { code: code @ 129..=192 } => SandboxExit::Signaled { signal: code - 128 },
        exit => exit,
    };
    let mut profile = SandboxProfile {
        platform: Platform::LinuxX86_64.as_str().to_owned(),
        exit: if timed_out { SandboxExit::TimedOut } else { exit },
        wall_ms,
        cpu_ms,
        peak_memory_bytes,
        processes: 0,
        connections: Vec::new(),
        executed: Vec::new(),
        files_outside: Vec::new(),
    };
    let writes_outside = read_trace(&trace, &format!("{PLUGIN_DIR}/{entry}"), options, &mut profile);
    Ok(Outcome { profile, writes_outside })
}

#[cfg(target_os = "linux")]
fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[cfg(not(target_os = "linux"))]
fn is_root() -> bool {
    false
}

/// Kills every process of the group `leader` leads except the leader (GNU `time`,
/// which then reports the resources of what ran). Bubblewrap is among them, and its
/// PID namespace, with everything the plugin started, ends with it.
#[cfg(target_os = "linux")]
fn kill_group(leader: u32) {
    let members = std::fs::read_dir("/proc").into_iter().flatten().filter_map(Result::ok).filter_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
        let group: u32 = stat.rsplit_once(')')?.1.split_whitespace().nth(2)?.parse().ok()?;
        (group == leader && pid != leader).then_some(pid)
    });
    for pid in members.collect::<Vec<_>>() {
        if let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn kill_group(_pid: u32) {}

/// The uid of `nobody`, which the program runs as when this runs as root.
const NOBODY: u32 = 65534;

fn current_uid() -> u32 {
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap_or(NOBODY)
}

/// Processes `uid` runs now.
fn processes_of(uid: u32) -> u64 {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
                .filter(|e| e.metadata().is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == uid))
                .count() as u64
        })
        .unwrap_or(0)
}

/// `(cpu ms, peak RSS bytes, exit)` from GNU time's `-o` file (`%e %U %S %M`, after a
/// `Command exited with non-zero status N` or `Command terminated by signal N` line).
fn read_rusage(path: &Path) -> (u64, u64, SandboxExit) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut exit = SandboxExit::Exited { code: 0 };
    let mut cpu_ms = 0;
    let mut peak = 0;
    for line in text.lines() {
        if let Some(code) = line.strip_prefix("Command exited with non-zero status ") {
            exit = SandboxExit::Exited { code: code.trim().parse().unwrap_or(-1) };
        } else if let Some(signal) = line.strip_prefix("Command terminated by signal ") {
            exit = SandboxExit::Signaled { signal: signal.trim().parse().unwrap_or(-1) };
        } else {
            let fields: Vec<f64> = line.split_whitespace().filter_map(|f| f.parse().ok()).collect();
            if let [_, user, system, kib] = fields[..] {
                cpu_ms = ((user + system) * 1000.0).round() as u64;
                peak = (kib as u64) * 1024;
            }
        }
    }
    (cpu_ms, peak, exit)
}

/// Fills the behaviour lists of `profile` from the strace log; returns the files opened
/// for writing outside the plugin folder and `/tmp`.
fn read_trace(path: &Path, entry: &str, options: &SandboxOptions, profile: &mut SandboxProfile) -> Vec<String> {
    use std::io::BufRead as _;
    let Ok(file) = std::fs::File::open(path) else { return Vec::new() };
    let mut started = false;
    // Processes that ran before the entry point (bubblewrap's, and the entry's own
    // process while bubblewrap set it up): their later lines (a `clone` resuming, an
    // `openat` of bubblewrap's init) are not the plugin's.
    let mut setup = BTreeSet::new();
    let mut pids = BTreeSet::new();
    let mut connections = BTreeSet::new();
    let mut executed = BTreeSet::new();
    let mut files = BTreeSet::new();
    let mut writes = BTreeSet::new();
    let mut limit_hit = false;
    for line in std::io::BufReader::new(file).split(b'\n').take(MAX_TRACE_LINES) {
        let Ok(line) = line else { break };
        let line = String::from_utf8_lossy(&line);
        let Some((pid, call)) = line.split_once(' ') else { continue };
        let call = call.trim_start();
        if !started {
            // Everything before the entry point's execve is bubblewrap setting up.
            if call.starts_with("execve(") && first_string(call).as_deref() == Some(entry) && !failed(call) {
                started = true;
                pids.insert(pid.to_owned());
            } else {
                setup.insert(pid.to_owned());
            }
            continue;
        }
        if setup.contains(pid) && !pids.contains(pid) {
            continue;
        }
        pids.insert(pid.to_owned());
        // A call another process interrupted ends `<unfinished ...>` and its result
        // comes on a later `<... NAME resumed>` line.
        if let Some(resumed) = call.strip_prefix("<... ") {
            let creates = ["clone ", "clone3 ", "fork ", "vfork "].iter().any(|c| resumed.starts_with(c));
            limit_hit |= creates && resumed.contains("= -1 EAGAIN");
            continue;
        }
        if call.starts_with("execve(") || call.starts_with("execveat(") {
            // An unfinished call counts unless this line shows it failed.
            if let Some(program) = first_string(call).filter(|p| p != entry)
                && !failed(call)
            {
                executed.insert(program);
            }
        } else if ["clone(", "clone3(", "fork(", "vfork("].iter().any(|c| call.starts_with(c)) {
            limit_hit |= call.contains("= -1 EAGAIN");
        } else if call.starts_with("connect(") {
            if let Some(address) = inet_address(call) {
                connections.insert(address);
            }
        } else if call.starts_with("open") || call.starts_with("creat(") {
            let Some(file) = first_string(call) else { continue };
            if !file.starts_with('/') || file == PLUGIN_DIR || file.starts_with(&format!("{PLUGIN_DIR}/")) {
                continue;
            }
            let writing =
                call.starts_with("creat(") || ["O_WRONLY", "O_RDWR", "O_CREAT"].iter().any(|f| call.contains(f));
            if writing {
                if !(file == "/tmp" || file.starts_with("/tmp/") || file.starts_with("/dev/")) {
                    writes.insert(file.clone());
                }
                files.insert(format!("{file} (write)"));
            } else if !SYSTEM_PREFIXES.iter().any(|p| file.starts_with(p) || file == p.trim_end_matches('/')) {
                files.insert(file);
            }
        }
    }
    profile.processes = pids.len() as u64;
    if limit_hit {
        // A fork refused for the process limit: say so even when fewer were traced
        // (the limit counts the sandbox's own processes too).
        profile.processes = profile.processes.max(options.max_processes);
    }
    let bounded = |set: BTreeSet<String>| set.into_iter().take(options.max_listed).collect::<Vec<_>>();
    profile.connections = bounded(connections);
    profile.executed = bounded(executed);
    profile.files_outside = bounded(files);
    writes.into_iter().take(options.max_listed).collect()
}

/// Whether a traced call's line shows it failed.
fn failed(call: &str) -> bool {
    call.contains(") = -1 ") || call.ends_with("= -1")
}

/// The first `"..."` argument of a traced call (strace escapes quotes inside).
fn first_string(call: &str) -> Option<String> {
    let start = call.find('"')? + 1;
    let rest = &call[start..];
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return Some(out),
            c => out.push(c),
        }
    }
    None
}

/// `inet 1.2.3.4:443` / `inet6 [::1]:80` from a traced `connect`.
fn inet_address(call: &str) -> Option<String> {
    let port = call.split("htons(").nth(1)?.split(')').next()?;
    if call.contains("AF_INET6") {
        let address = call.split("inet_pton(AF_INET6, \"").nth(1)?.split('"').next()?;
        Some(format!("inet6 [{address}]:{port}"))
    } else if call.contains("AF_INET") {
        let address = call.split("inet_addr(\"").nth(1)?.split('"').next()?;
        Some(format!("inet {address}:{port}"))
    } else {
        None
    }
}

fn judge(
    entry: &str,
    metadata: &PluginMetadata,
    options: &SandboxOptions,
    outcome: Outcome,
) -> (Option<SandboxProfile>, Vec<Problem>) {
    let declared: BTreeSet<String> = metadata.permissions.iter().map(|p| p.key()).collect();
    let has = |kind: &str| declared.iter().any(|k| k.starts_with(&format!("{kind}:")));
    let mut problems = Vec::new();
    let p = &outcome.profile;
    let mut error = |message: String| problems.push(Problem::error(entry, format!("in the sandbox, {message}")));
    if let Some(first) = p.connections.first().filter(|_| !has("network")) {
        error(format!(
            "tried to connect to {first}{} without a network permission; declare network:internet (or lan, localhost)",
            more(p.connections.len())
        ));
    }
    let may_spawn =
        declared.iter().any(|k| matches!(k.as_str(), "process:own_binaries" | "process:any" | "shell:execute"));
    if let Some(first) = p.executed.first().filter(|_| !may_spawn) {
        error(format!(
            "started {first}{} without a permission to start programs; declare process:own_binaries, process:any or shell:execute",
            more(p.executed.len())
        ));
    }
    let writes_anywhere = declared.iter().any(|k| k == "filesystem:full");
    if let Some(first) = outcome.writes_outside.first().filter(|_| !writes_anywhere) {
        error(format!(
            "opened {first}{} for writing outside its folder; declare the filesystem permission it needs",
            more(outcome.writes_outside.len())
        ));
    }
    if p.processes >= options.max_processes {
        error(format!("started {} processes, the sandbox's limit: a fork bomb or runaway spawning", p.processes));
    }
    match p.exit {
        SandboxExit::Signaled { signal: 25 } => {
            error(format!("exceeded the file size limit of {} bytes (SIGXFSZ): a disk filler", options.max_file_size))
        }
        SandboxExit::TimedOut => problems.push(warning(
            entry,
            &format!(
                "still running after {} s in the sandbox; stopped (fine for a long-running plugin)",
                options.timeout.as_secs()
            ),
        )),
        _ => {}
    }
    (Some(outcome.profile), problems)
}

fn more(n: usize) -> String {
    if n > 1 { format!(" (and {} more)", n - 1) } else { String::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_strace_lines() {
        assert_eq!(first_string(r#"openat(AT_FDCWD, "/etc/a\"b", O_RDONLY) = 3"#).as_deref(), Some("/etc/a\"b"));
        let call = r#"connect(3, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("93.184.216.34")}, 16) = -1 ENETUNREACH"#;
        assert_eq!(inet_address(call).as_deref(), Some("inet 93.184.216.34:443"));
        let call = r#"connect(3, {sa_family=AF_INET6, sin6_port=htons(80), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = -1"#;
        assert_eq!(inet_address(call).as_deref(), Some("inet6 [::1]:80"));
        assert_eq!(inet_address(r#"connect(3, {sa_family=AF_UNIX, sun_path="/x"}, 110) = -1"#), None);
    }

    fn profile_of(trace: &str) -> (SandboxProfile, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace");
        std::fs::write(&path, trace).unwrap();
        let mut profile = SandboxProfile {
            platform: "linux-x86_64".into(),
            exit: SandboxExit::Exited { code: 0 },
            wall_ms: 0,
            cpu_ms: 0,
            peak_memory_bytes: 0,
            processes: 0,
            connections: Vec::new(),
            executed: Vec::new(),
            files_outside: Vec::new(),
        };
        let writes = read_trace(&path, "/plugin/bin/p", &SandboxOptions::default(), &mut profile);
        (profile, writes)
    }

    /// Bubblewrap's processes keep running beside the plugin: a call of theirs that
    /// resumes (or a file they open) after the entry point started is not the plugin's.
    #[test]
    fn lines_of_bubblewraps_processes_after_the_entry_started_are_not_the_plugins() {
        let trace = r#"100 execve("/usr/bin/bwrap", ["bwrap"], 0x1 /* 3 vars */) = 0
100 clone(child_stack=NULL, flags=CLONE_NEWPID|SIGCHLD) = 101
101 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>
102 openat(AT_FDCWD, "/proc/self/ns/user", O_RDONLY) = 5
102 execve("/plugin/bin/p", ["/plugin/bin/p"], 0x2 /* 4 vars */) = 0
101 <... clone resumed>, child_tidptr=0x7f) = 2
101 openat(AT_FDCWD, "/home/bwrap-init-file", O_RDONLY) = 6
102 openat(AT_FDCWD, "/home/victim/.ssh/id_rsa", O_RDONLY) = 3
102 clone(child_stack=NULL, flags=SIGCHLD) = 103
103 execve("/bin/true", ["/bin/true"], NULL) = 0
"#;
        let (profile, writes) = profile_of(trace);
        assert_eq!(profile.processes, 2, "{profile:?}");
        assert_eq!(profile.files_outside, ["/home/victim/.ssh/id_rsa"]);
        assert_eq!(profile.executed, ["/bin/true"]);
        assert!(writes.is_empty());
    }

    /// A fork refused for the process limit counts as reaching it, also when strace
    /// prints the refusal on a resumed line.
    #[test]
    fn a_refused_fork_reaches_the_process_limit_even_when_resumed() {
        let trace = r#"100 execve("/plugin/bin/p", ["/plugin/bin/p"], 0x2 /* 4 vars */) = 0
100 clone(child_stack=NULL, flags=SIGCHLD) = 101
101 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>
100 clone(child_stack=NULL, flags=SIGCHLD) = 102
101 <... clone resumed>, child_tidptr=0x7f) = -1 EAGAIN (Resource temporarily unavailable)
"#;
        assert_eq!(profile_of(trace).0.processes, SandboxOptions::default().max_processes);
        let unrefused = trace.replace("= -1 EAGAIN (Resource temporarily unavailable)", "= 103");
        // Processes are the ones that made a traced call: 102 made none.
        assert_eq!(profile_of(&unrefused).0.processes, 2);
    }

    #[test]
    fn reads_gnu_time_output() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        std::fs::write(&path, "Command terminated by signal 25\n1.50 0.25 0.50 2048\n").unwrap();
        assert_eq!(read_rusage(&path), (750, 2 << 20, SandboxExit::Signaled { signal: 25 }));
    }
}
