//! The example components of the `plugins/` workspace that benchmarks load: where they are,
//! and building them when the default directory lacks them.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The plugins directory and how it was found; builds the plugins when the default directory
/// lacks them.
pub(crate) async fn locate(
    flag: Option<PathBuf>,
    files: &[&str],
) -> anyhow::Result<(PathBuf, String)> {
    let missing = |dir: &Path| -> Vec<String> {
        files
            .iter()
            .map(|f| format!("{f}.wasm"))
            .filter(|f| !dir.join(f).is_file())
            .collect()
    };
    if let Some(dir) = flag {
        let absent = missing(&dir);
        anyhow::ensure!(
            absent.is_empty(),
            "{} lacks {} (build them: cd plugins && cargo build --release)",
            dir.display(),
            absent.join(", ")
        );
        return Ok((dir, "--plugins-dir".into()));
    }
    // The repository this binary was built from.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap_or(root);
    let dir = root.join("target/wasm32-wasip2/release");
    let absent = missing(&dir);
    if absent.is_empty() {
        return Ok((dir, "already built".into()));
    }
    let workspace = root.join("plugins");
    println!(
        "   plugins: {} missing in {}; building them with `cargo build --release` in {}",
        absent.join(", "),
        dir.display(),
        workspace.display()
    );
    let status = {
        let cwd = workspace.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("cargo")
                .args(["build", "--release"])
                .current_dir(cwd)
                .status()
        })
        .await?
        .with_context(|| format!("running cargo build --release in {}", workspace.display()))?
    };
    anyhow::ensure!(
        status.success(),
        "cargo build --release in {} failed: {status}",
        workspace.display()
    );
    let absent = missing(&dir);
    anyhow::ensure!(
        absent.is_empty(),
        "after building, {} still lacks {}",
        dir.display(),
        absent.join(", ")
    );
    Ok((
        dir,
        "built now with `cargo build --release` in plugins/".into(),
    ))
}
