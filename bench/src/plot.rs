//! Plot placeholder.
pub fn draw(_: &crate::report::Report, _: &std::path::Path) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
