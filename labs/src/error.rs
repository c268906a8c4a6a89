//! Errors of the toolkit. Each names the command (as one would type it) or
//! the condition involved, so a failed test reads as a diagnosis.

use std::fmt;
use std::io;
use std::time::Duration;

/// What went wrong while driving a lab.
///
/// `Debug` prints the same text as `Display`: `unwrap()` and a test that
/// returns `Err` show `Debug`, and there the message is what a reader needs.
#[derive(thiserror::Error)]
pub enum Error {
    /// The command could not be started at all (not installed, not executable).
    #[error("`{command}` could not be started: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    /// The command ran and exited unsuccessfully.
    #[error(
        "`{command}` failed ({status}){}{}",
        section("stderr", stderr),
        section("stdout", stdout)
    )]
    Failed {
        command: String,
        /// `exit code N` or `killed by signal N`.
        status: String,
        stdout: String,
        stderr: String,
    },
    /// The command did not exit in time and was killed.
    #[error("`{command}` did not exit within {after:?} and was killed")]
    Hung { command: String, after: Duration },
    /// [`wait_for`](crate::wait_for) ran out of time.
    #[error("timed out after {deadline:?} waiting for {what}")]
    Timeout { what: String, deadline: Duration },
    /// Local file handling around a command (its log or captured output).
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `"\n<label>: <text>"` for non-empty output, nothing otherwise.
fn section(label: &str, text: &str) -> String {
    let text = text.trim_end();
    if text.is_empty() {
        String::new()
    } else {
        format!("\n{label}:\n{text}")
    }
}
