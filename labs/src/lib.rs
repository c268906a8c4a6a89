//! Network-namespace toolkit shared by the lab runner and the end-to-end tests.
//!
//! A lab is a set of [`Namespace`]s (nodes) joined by veth pairs ([`link`]).
//! Commands flow from the caller into a node through `ip netns exec`
//! ([`Namespace::run`], [`Namespace::check`], [`Namespace::sh`]); their exit
//! status, stdout and stderr flow back as values or as an [`Error`] that names
//! the command. Long-running programs (our daemons under test) start inside a
//! node with [`Namespace::spawn`] and write to a log file that a [`Daemon`]
//! hands back for failure messages. [`wait_for`] turns "eventually true" into a
//! deadline-bounded check.
//!
//! Teardown flows the other way, in `Drop`, so it also runs when a test
//! panics: a [`Daemon`] is stopped (SIGTERM, then SIGKILL), a [`Namespace`]
//! kills whatever still runs in it and is deleted, and with it every
//! interface inside. Names come from [`unique_name`], so parallel tests and
//! parallel test binaries never meet, even where a name is machine-wide
//! (wireguard-go's UAPI socket is `/var/run/wireguard/<interface>.sock` in
//! every namespace).
//!
//! Everything here is synchronous std code driving the `ip` tool; it needs
//! root.

mod command;
mod daemon;
mod error;
pub mod host;
mod link;
mod name;
mod namespace;
mod wait;

pub use daemon::Daemon;
pub use error::Error;
pub use link::link;
pub use name::{MAX_NAME_LEN, unique_name};
pub use namespace::Namespace;
pub use wait::wait_for;

/// Result of the toolkit's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
