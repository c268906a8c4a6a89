//! Wires between nodes: veth pairs.
//!
//! The pair is created inside the first namespace with its peer placed
//! directly in the second, so neither name ever exists in the root namespace
//! (where it could clash with the host's or another test's interfaces).

use crate::{Namespace, Result};

/// A veth pair: `a_if` in `a`, `b_if` in `b`, both up.
pub fn link(a: &Namespace, a_if: &str, b: &Namespace, b_if: &str) -> Result<()> {
    a.check(&[
        "ip",
        "link",
        "add",
        a_if,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ])?;
    a.check(&["ip", "link", "set", a_if, "up"])?;
    b.check(&["ip", "link", "set", b_if, "up"])?;
    Ok(())
}
