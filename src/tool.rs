//! Running an external tool (iptables-restore, nft, keepalived, ifquery, git, dot): one place
//! that feeds its input, collects its output and turns a failure into an error that names the
//! tool and says what it printed.

use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Write};
use std::process::{Command, Stdio};

/// A tool to run once: `Tool::new("nft").args(["-f", "-"]).input(script).run()`.
pub struct Tool {
    name: String,
    command: Command,
    input: Option<Vec<u8>>,
}

/// Why a tool did not succeed.
#[derive(Debug)]
pub enum ToolError {
    /// It is not installed (not on PATH).
    Missing { tool: String },
    /// It ran and failed: its exit status (None: killed by a signal) and its stderr.
    Failed {
        tool: String,
        status: Option<i32>,
        stderr: String,
    },
    /// It could not be started or talked to.
    Io { tool: String, error: io::Error },
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolError::Missing { tool } => write!(f, "{tool} is not installed"),
            ToolError::Failed {
                tool,
                status,
                stderr,
            } => {
                let status = status.map_or("a signal".to_string(), |s| format!("exit {s}"));
                write!(f, "{tool} failed ({status}): {}", stderr.trim())
            }
            ToolError::Io { tool, error } => write!(f, "cannot run {tool}: {error}"),
        }
    }
}

impl std::error::Error for ToolError {}

impl From<ToolError> for io::Error {
    fn from(e: ToolError) -> io::Error {
        match e {
            ToolError::Missing { .. } => io::Error::new(io::ErrorKind::NotFound, e.to_string()),
            ToolError::Io { ref error, .. } => io::Error::new(error.kind(), e.to_string()),
            ToolError::Failed { .. } => io::Error::other(e.to_string()),
        }
    }
}

impl Tool {
    pub fn new(program: &str) -> Tool {
        Tool {
            name: program.to_string(),
            command: Command::new(program),
            input: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Tool {
        self.command.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Tool
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    /// Runs the tool in a process group of its own, so that a Ctrl-C at the terminal reaches
    /// netc (which decides what to stop) and not the tool in the middle of its work.
    pub fn own_group(mut self) -> Tool {
        std::os::unix::process::CommandExt::process_group(&mut self.command, 0);
        self
    }

    /// What the tool reads on its stdin (otherwise stdin is empty).
    pub fn input(mut self, bytes: impl Into<Vec<u8>>) -> Tool {
        self.input = Some(bytes.into());
        self
    }

    /// Runs the tool to its end; its stdout if it succeeded.
    pub fn run(mut self) -> Result<Vec<u8>, ToolError> {
        let tool = self.name.clone();
        let io = |error: io::Error| match error.kind() {
            io::ErrorKind::NotFound => ToolError::Missing { tool: tool.clone() },
            _ => ToolError::Io {
                tool: tool.clone(),
                error,
            },
        };
        let stdin = if self.input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        let mut child = self
            .command
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io)?;
        if let Some(bytes) = self.input.take() {
            let mut pipe = child.stdin.take().expect("piped");
            // A tool that stops reading early (and fails) is reported by its status below.
            let writer = std::thread::spawn(move || pipe.write_all(&bytes));
            let out = child.wait_with_output().map_err(io)?;
            let _ = writer.join();
            return finish(&self.name, out);
        }
        let out = child.wait_with_output().map_err(io)?;
        finish(&self.name, out)
    }

    /// Runs the tool; its stdout as text if it succeeded.
    pub fn text(self) -> Result<String, ToolError> {
        self.run()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    }
}

fn finish(tool: &str, out: std::process::Output) -> Result<Vec<u8>, ToolError> {
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(ToolError::Failed {
            tool: tool.to_string(),
            status: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_input_failure_and_absence() {
        let out = Tool::new("cat").input("hello").text().unwrap();
        assert_eq!(out, "hello");
        match Tool::new("sh").args(["-c", "echo oops >&2; exit 3"]).run() {
            Err(ToolError::Failed { status, stderr, .. }) => {
                assert_eq!((status, stderr.as_str()), (Some(3), "oops\n"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Tool::new("netc-no-such-tool").run(),
            Err(ToolError::Missing { .. })
        ));
    }
}
