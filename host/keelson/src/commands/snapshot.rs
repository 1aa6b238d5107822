//! `keelson snapshot save|list|delete|prune|restore`, and the server's scheduled snapshots
//! (`keelson server --snapshot-schedule CRON --snapshot-retention K`).
//!
//! `save` asks the running server (`POST /keelson/v1/snapshots`, system:masters only) to take
//! the snapshot, so it is consistent while the server keeps writing; `list`, `delete`, `prune`
//! and `restore` work on files in a data dir and need no server.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

/// `keelson snapshot`.
#[derive(Args, Debug)]
pub(crate) struct SnapshotCommand {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Take a snapshot of the running server's store into <data-dir>/snapshots/.
    Save(SaveArgs),
    /// List the snapshots in <data-dir>/snapshots/.
    List(DirArgs),
    /// Delete one snapshot by name.
    Delete {
        /// Snapshot name (as `list` shows it).
        name: String,
        #[command(flatten)]
        dir: DirArgs,
    },
    /// Keep the newest K snapshots, delete the rest.
    Prune {
        /// How many to keep.
        #[arg(long)]
        keep: usize,
        #[command(flatten)]
        dir: DirArgs,
    },
    /// Write a new data dir from a snapshot (the checksum is verified first).
    Restore(RestoreArgs),
}

#[derive(Args, Debug)]
struct SaveArgs {
    /// Snapshot name [default: snapshot-<UTC time>-r<revision>].
    #[arg(long)]
    name: Option<String>,
    /// kubeconfig of the server [default: $KUBECONFIG, else the data dir's kubeconfig.yaml].
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Print the snapshot's record as JSON.
    #[arg(short = 'o', long = "output", value_parser = ["text", "json"], default_value = "text")]
    output: String,
    /// Snapshot the embedded store of this data dir directly, without asking a server (for a
    /// stopped server; SQLite's online backup keeps it consistent even if one runs).
    #[arg(long)]
    offline_data_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct DirArgs {
    /// The server's data dir [default: /var/lib/keelson as root, else $XDG_DATA_HOME/keelson].
    #[arg(long, env = "KEELSON_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_parser = ["text", "json"], default_value = "text")]
    output: String,
}

impl DirArgs {
    fn snapshots(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(super::server::default_data_dir)
            .join("snapshots")
    }
}

#[derive(Args, Debug)]
struct RestoreArgs {
    /// The snapshot file.
    file: PathBuf,
    /// The new data dir to write (must not hold a store yet).
    #[arg(long)]
    data_dir: PathBuf,
    /// Raise the restored store's revision by this much (embedded snapshots), so clients that
    /// watched the old server get 410 Expired and re-list instead of missing events.
    #[arg(long, default_value_t = 1_000_000)]
    bump_revision: i64,
}

fn age(created: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let s = now.saturating_sub(created);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn print_list(list: &[keelson_store::SnapshotInfo]) {
    println!(
        "{:<48} {:<9} {:>10} {:>12} {:>6}  SHA256",
        "NAME", "BACKEND", "REVISION", "BYTES", "AGE"
    );
    for s in list {
        println!(
            "{:<48} {:<9} {:>10} {:>12} {:>6}  {}",
            s.name,
            s.backend,
            s.revision,
            s.size,
            age(s.created_unix),
            &s.sha256[..12.min(s.sha256.len())]
        );
    }
}

fn with_path(s: &keelson_store::SnapshotInfo) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    v["path"] = serde_json::json!(s.path.display().to_string());
    v
}

impl SnapshotCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        match self.action {
            Action::Save(a) => save(a).await,
            Action::List(d) => {
                let list = keelson_store::snapshot::list(&d.snapshots())?;
                if d.output == "json" {
                    let items: Vec<_> = list.iter().map(with_path).collect();
                    println!("{}", serde_json::to_string_pretty(&items)?);
                } else {
                    print_list(&list);
                }
                Ok(())
            }
            Action::Delete { name, dir } => {
                let path = keelson_store::snapshot::delete(&dir.snapshots(), &name)?;
                println!("deleted {}", path.display());
                Ok(())
            }
            Action::Prune { keep, dir } => {
                for s in keelson_store::snapshot::prune(&dir.snapshots(), keep, None)? {
                    println!("deleted {}", s.path.display());
                }
                Ok(())
            }
            Action::Restore(a) => restore(a).await,
        }
    }
}

async fn save(a: SaveArgs) -> anyhow::Result<()> {
    if let Some(dir) = a.offline_data_dir {
        let name = a.name.clone();
        let info = tokio::task::spawn_blocking(move || {
            keelson_store::snapshot::save_embedded(&dir, name.as_deref())
        })
        .await??;
        if a.output == "json" {
            println!("{}", serde_json::to_string_pretty(&with_path(&info))?);
        } else {
            println!(
                "snapshot {} at revision {} ({} bytes, sha256 {}) in {}",
                info.name,
                info.revision,
                info.size,
                info.sha256,
                info.path.display()
            );
        }
        return Ok(());
    }
    let path = super::kube_client::kubeconfig_path(a.kubeconfig);
    let client = super::kube_client::from_kubeconfig(&path).await?;
    let mut uri = "/keelson/v1/snapshots".to_string();
    if let Some(n) = &a.name {
        keelson_store::snapshot::check_name(n)?;
        uri.push_str(&format!("?name={n}"));
    }
    let spinner = indicatif::ProgressBar::new_spinner().with_message("taking snapshot");
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let request = http::Request::post(uri).body(Vec::new())?;
    let answer = client.request_text(request).await;
    spinner.finish_and_clear();
    let text = answer.context("the server refused the snapshot")?;
    let info: serde_json::Value = serde_json::from_str(&text)?;
    if a.output == "json" {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        println!(
            "snapshot {} at revision {} ({} bytes, sha256 {}) in {}",
            info["name"].as_str().unwrap_or_default(),
            info["revision"],
            info["size"],
            info["sha256"].as_str().unwrap_or_default(),
            info["path"].as_str().unwrap_or_default(),
        );
    }
    Ok(())
}

async fn restore(a: RestoreArgs) -> anyhow::Result<()> {
    let spinner = indicatif::ProgressBar::new_spinner()
        .with_message(format!("verifying and restoring {}", a.file.display()));
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let (file, dir, bump) = (a.file.clone(), a.data_dir.clone(), a.bump_revision);
    let done =
        tokio::task::spawn_blocking(move || keelson_store::snapshot::restore(&file, &dir, bump))
            .await?;
    spinner.finish_and_clear();
    let restored = done?;
    match restored.etcd_data_dir {
        None => println!(
            "restored {} (revision {}) into {}; the store continues at revision {}: start it with `keelson server --data-dir {}`",
            restored.info.name,
            restored.info.revision,
            a.data_dir.display(),
            restored.revision,
            a.data_dir.display()
        ),
        Some(etcd) => println!(
            "restored etcd snapshot {} (revision ≥ {}) into {}: start etcd with `--data-dir {}`, then `keelson server --data-dir {} --store etcd://HOST:PORT`",
            restored.info.name,
            restored.info.revision,
            etcd.display(),
            etcd.display(),
            a.data_dir.display()
        ),
    }
    Ok(())
}

/// Takes a snapshot of `store` into `<data_dir>/snapshots` at every time `schedule` (cron,
/// five or six fields) names, keeping the newest `retention` scheduled ones (manual snapshots are left alone).
pub(crate) fn spawn_schedule(
    store: keelson_store::Store,
    data_dir: PathBuf,
    schedule: &str,
    retention: usize,
) -> anyhow::Result<()> {
    let mut cron = croner::Cron::new(schedule);
    let cron = cron
        .with_seconds_optional()
        .parse()
        .with_context(|| format!("--snapshot-schedule {schedule:?}"))?;
    let dir = data_dir.join("snapshots");
    tokio::spawn(async move {
        loop {
            let now = chrono::Utc::now();
            let Ok(next) = cron.find_next_occurrence(&now, false) else {
                tracing::warn!("snapshot schedule has no next time; scheduled snapshots stop");
                return;
            };
            let wait = (next - now).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
            let name = format!(
                "scheduled-{}",
                keelson_store::snapshot::default_name(store.cached_revision())
            );
            match store.snapshot(&dir, Some(&name)).await {
                Ok(s) => tracing::info!(
                    snapshot = %s.path.display(),
                    revision = s.revision,
                    bytes = s.size,
                    "scheduled snapshot taken"
                ),
                Err(e) => tracing::warn!(error = %e, "scheduled snapshot failed"),
            }
            let d = dir.clone();
            match tokio::task::spawn_blocking(move || {
                keelson_store::snapshot::prune(&d, retention, Some("scheduled-"))
            })
            .await
            {
                Ok(Ok(gone)) => {
                    for s in gone {
                        tracing::info!(snapshot = %s.path.display(), "old snapshot pruned");
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "pruning snapshots failed"),
                Err(e) => tracing::warn!(error = %e, "pruning snapshots failed"),
            }
        }
    });
    Ok(())
}
