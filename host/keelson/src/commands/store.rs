//! `keelson store migrate --from <data-dir> --to etcd://a,b,c`: copies every object of the
//! embedded store into an etcd cluster in revision order, with a progress bar, and reports
//! the counts by resource.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `keelson store`.
#[derive(Args, Debug)]
pub(crate) struct StoreCommand {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Copy the embedded store of a data dir into etcd (stop the server first).
    Migrate(MigrateArgs),
}

#[derive(Args, Debug)]
struct MigrateArgs {
    /// Data dir of the embedded store to copy.
    #[arg(long)]
    from: PathBuf,
    /// Target: etcd://host:port[,host:port…].
    #[arg(long)]
    to: String,
    /// Write even if the target already holds Kubernetes keys (they are overwritten).
    #[arg(long)]
    force: bool,
    /// Output format of the report.
    #[arg(short = 'o', long = "output", value_parser = ["text", "json"], default_value = "text")]
    output: String,
}

impl StoreCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let Action::Migrate(a) = self.action;
        let rest =
            a.to.strip_prefix("etcd://")
                .ok_or_else(|| anyhow::anyhow!("--to must be etcd://host:port[,host:port…]"))?;
        let endpoints: Vec<String> = rest
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|e| format!("http://{e}"))
            .collect();
        let bar = indicatif::ProgressBar::new(0).with_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} copying {pos}/{len} keys [{bar:40}] {per_sec} eta {eta}",
            )?
            .progress_chars("=> "),
        );
        let started = std::time::Instant::now();
        let report = keelson_store::migrate::embedded_to_etcd(
            &a.from,
            &endpoints,
            a.force,
            |done, total| {
                if bar.length() != Some(total) {
                    bar.set_length(total);
                }
                bar.set_position(done);
            },
        )
        .await;
        bar.finish_and_clear();
        let report = report?;
        let took = started.elapsed();
        if a.output == "json" {
            println!(
                "{}",
                serde_json::json!({
                    "total": report.total,
                    "byResource": report.by_resource,
                    "sourceRevision": report.source_revision,
                    "targetRevision": report.target_revision,
                    "seconds": took.as_secs_f64(),
                })
            );
            return Ok(());
        }
        println!(
            "copied {} keys from {} (revision {}) to {} (now at revision {}) in {:.1}s",
            report.total,
            a.from.display(),
            report.source_revision,
            a.to,
            report.target_revision,
            took.as_secs_f64()
        );
        for (resource, n) in &report.by_resource {
            println!("  {resource:<48} {n:>8}");
        }
        println!(
            "start the server with `keelson server --data-dir {} --store {}`",
            a.from.display(),
            a.to
        );
        Ok(())
    }
}
