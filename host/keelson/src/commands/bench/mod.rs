//! `keelson bench`: benchmarks that print results against a baseline measured in the same run.

use clap::Args;

/// Flags of `keelson bench`.
#[derive(Args, Debug)]
pub(crate) struct BenchCommand {}

impl BenchCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        anyhow::bail!("no benchmarks yet")
    }
}
