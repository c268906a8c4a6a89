//! Running one command to completion: argv in, [`Output`] or [`Error`] out.
//!
//! Output is captured in anonymous temporary files rather than pipes: a
//! command that leaves a daemon behind (`wg-quick up` starting wireguard-go,
//! `wgd up`) would otherwise hold the pipe open and make us wait forever for
//! an end of file. We wait for the command itself only, and never longer than
//! [`COMMAND_TIMEOUT`].

use std::fs::File;
use std::io::{Read, Seek};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// Longest a single command may run before it is killed. Generous: it exists
/// so that a hung command fails a test instead of hanging it.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `argv` (in the caller's namespace) and returns its output, whatever
/// its exit status.
pub(crate) fn output(argv: &[&str]) -> Result<Output> {
    let (program, args) = argv.split_first().expect("a command has a program");
    let command_line = display(argv);
    let io_error = |context: &str| {
        let context = format!("`{command_line}`: {context}");
        move |source| Error::Io { context, source }
    };
    let mut stdout = tempfile::tempfile().map_err(io_error("capturing stdout"))?;
    let mut stderr = tempfile::tempfile().map_err(io_error("capturing stderr"))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout.try_clone().map_err(io_error("capturing stdout"))?)
        .stderr(stderr.try_clone().map_err(io_error("capturing stderr"))?)
        .spawn()
        .map_err(|source| Error::Spawn {
            command: command_line.clone(),
            source,
        })?;

    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io_error("waiting"))? {
            break status;
        }
        if started.elapsed() >= COMMAND_TIMEOUT {
            // Already exited or killed: either way it is not running now.
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Hung {
                command: command_line,
                after: COMMAND_TIMEOUT,
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };

    Ok(Output {
        status,
        stdout: read_all(&mut stdout).map_err(io_error("reading stdout"))?,
        stderr: read_all(&mut stderr).map_err(io_error("reading stderr"))?,
    })
}

/// Runs `argv` and returns its stdout if it exits with 0, an [`Error::Failed`]
/// with its exit status, stdout and stderr otherwise.
pub(crate) fn check(argv: &[&str]) -> Result<String> {
    let output = output(argv)?;
    checked(&display(argv), output)
}

/// Turns a finished command's output into its stdout or an error naming it.
pub(crate) fn checked(command_line: &str, output: Output) -> Result<String> {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    Err(Error::Failed {
        command: command_line.to_owned(),
        status: describe_status(output.status),
        stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// The command as one would type it in a shell (quoting only what needs it).
pub(crate) fn display(argv: &[&str]) -> String {
    argv.iter()
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+%".contains(&b));
            if plain {
                (*arg).to_owned()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

fn read_all(file: &mut File) -> std::io::Result<Vec<u8>> {
    file.rewind()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_a_shell_would_need() {
        assert_eq!(
            display(&["ip", "-n", "x-1", "addr", "add", "10.0.0.1/24"]),
            "ip -n x-1 addr add 10.0.0.1/24"
        );
        assert_eq!(display(&["sh", "-c", "echo it's"]), r"sh -c 'echo it'\''s'");
    }

    #[test]
    fn check_returns_stdout_or_names_the_failure() {
        assert_eq!(check(&["sh", "-c", "echo out"]).unwrap(), "out\n");
        let error = check(&["sh", "-c", "echo out; echo bad >&2; exit 3"]).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("`sh -c 'echo out; echo bad >&2; exit 3'`"),
            "{message}"
        );
        assert!(message.contains("exit code 3"), "{message}");
        assert!(message.contains("stderr:\nbad"), "{message}");
        assert!(message.contains("stdout:\nout"), "{message}");
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let error = check(&["/nonexistent/wgd-labs-probe"]).unwrap_err();
        assert!(matches!(error, Error::Spawn { .. }), "{error}");
    }

    #[test]
    fn a_background_child_does_not_hold_us() {
        // The leftover `sleep` keeps stdout open; with pipes we would wait for it.
        let started = Instant::now();
        let pid = check(&["sh", "-c", "sleep 60 & echo $!"]).unwrap();
        let waited = started.elapsed();
        check(&["kill", pid.trim()]).unwrap();
        assert!(waited < Duration::from_secs(30), "waited {waited:?}");
    }
}
