//! A pseudo-terminal for CLI tests: runs a command with stdin, stdout and stderr on the
//! terminal side of a pty, as a person at a terminal would, so `isatty` checks see a
//! terminal (prompts, colour, progress bars). Unix only.
//!
//! Reading is blocking and ends when the program's side is closed (Linux reports that
//! as `EIO`, which is end of file here): no timers.

use std::fs::File;
use std::io::{self, Read, Write};
use std::process::{Child, Command, Stdio};

use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};

/// A program running on a pseudo-terminal.
#[derive(Debug)]
pub struct PtyChild {
    child: Child,
    master: File,
    seen: Vec<u8>,
}

impl PtyChild {
    /// Spawns `command` with its standard streams on a new pseudo-terminal.
    pub fn spawn(mut command: Command) -> io::Result<Self> {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY)?;
        grantpt(&master)?;
        unlockpt(&master)?;
        let name = ptsname(&master, Vec::new())?;
        let path = std::path::PathBuf::from(name.to_string_lossy().into_owned());
        let terminal = File::options().read(true).write(true).open(path)?;
        command
            .stdin(Stdio::from(terminal.try_clone()?))
            .stdout(Stdio::from(terminal.try_clone()?))
            .stderr(Stdio::from(terminal));
        let child = command.spawn()?;
        // The command (and its copies of the terminal side) is dropped by the caller's
        // move into this function: only the child holds the terminal side now.
        drop(command);
        Ok(Self { child, master: File::from(master), seen: Vec::new() })
    }

    /// Reads until the output contains `text`; returns everything read so far.
    /// Fails if the program closes the terminal first.
    pub fn expect(&mut self, text: &str) -> io::Result<String> {
        while !String::from_utf8_lossy(&self.seen).contains(text) {
            if self.read_some()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the program ended without printing {text:?}; it printed: {}", self.output()),
                ));
            }
        }
        Ok(self.output())
    }

    /// Types `text` on the terminal.
    pub fn send(&mut self, text: &str) -> io::Result<()> {
        self.master.write_all(text.as_bytes())
    }

    /// Reads everything until the program ends; returns its exit code and all output.
    pub fn finish(mut self) -> io::Result<(Option<i32>, String)> {
        while self.read_some()? > 0 {}
        let status = self.child.wait()?;
        Ok((status.code(), self.output()))
    }

    /// Everything the program wrote so far (`\r\n` as `\n`).
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.seen).replace("\r\n", "\n")
    }

    fn read_some(&mut self) -> io::Result<usize> {
        let mut buffer = [0; 4096];
        match self.master.read(&mut buffer) {
            Ok(n) => {
                self.seen.extend_from_slice(&buffer[..n]);
                Ok(n)
            }
            // Linux: the terminal side was closed by the last process holding it.
            Err(e) if e.raw_os_error() == Some(5) => Ok(0),
            Err(e) => Err(e),
        }
    }
}
