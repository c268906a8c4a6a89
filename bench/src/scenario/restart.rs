//! `restart`: placeholder.
use crate::Common;
use crate::lab::Wgd;
use crate::report::Report;
pub fn run(
    _: &tokio::runtime::Runtime,
    _: &Wgd,
    _: &Common,
    _: &[usize],
    _: &mut Report,
) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
