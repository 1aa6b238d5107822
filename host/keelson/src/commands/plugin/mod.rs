//! `keelson plugin`: build, test offline, install, list and remove Wasm plugins.

mod install;
mod kubeconfig;
mod test;

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// Flags of `keelson plugin`.
#[derive(Args, Debug)]
pub(crate) struct PluginCommand {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Build a plugin crate for wasm32-wasip2 (cargo build --release) and print the .wasm path.
    Build(BuildArgs),
    /// Run a component against fixture objects offline (no server) and print verdicts/patches,
    /// or, with `--world scheduler`, filter results and scores of pods over given nodes.
    Test(test::TestArgs),
    /// Upload a component as a WasmPlugin (create or update: the server hot-swaps it).
    Install(install::InstallArgs),
    /// List the WasmPlugins and their status.
    List(kubeconfig::ConnectArgs),
    /// Delete a WasmPlugin.
    Rm(install::RmArgs),
}

/// Flags of `keelson plugin build`.
#[derive(Args, Debug)]
struct BuildArgs {
    /// The plugin crate (a directory with Cargo.toml).
    #[arg(default_value = ".")]
    dir: PathBuf,
}

impl PluginCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        match self.action {
            Action::Build(a) => build(&a.dir),
            Action::Test(a) => test::run(a).await,
            Action::Install(a) => install::install(a).await,
            Action::List(a) => install::list(a).await,
            Action::Rm(a) => install::rm(a).await,
        }
    }
}

/// `cargo build --release --target wasm32-wasip2` in `dir`; prints the produced component.
fn build(dir: &std::path::Path) -> anyhow::Result<()> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| anyhow::anyhow!("{}: {e}", manifest.display()))?;
    let name = text
        .lines()
        .find_map(|l| {
            l.trim().strip_prefix("name").map(|r| {
                r.trim_start_matches([' ', '='])
                    .trim()
                    .trim_matches('"')
                    .to_string()
            })
        })
        .ok_or_else(|| anyhow::anyhow!("{}: no package name", manifest.display()))?;
    let out = std::process::Command::new("cargo")
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        // From the crate's directory, so its workspace's .cargo/config.toml applies.
        .current_dir(dir)
        .stderr(std::process::Stdio::inherit())
        .output()?;
    anyhow::ensure!(out.status.success(), "cargo build failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let wasm = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| {
            m["reason"] == "compiler-artifact"
                && m["target"]["name"].as_str().map(|n| n.replace('-', "_"))
                    == Some(name.replace('-', "_"))
        })
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(String::from))
        .find(|f| f.ends_with(".wasm"))
        .ok_or_else(|| {
            anyhow::anyhow!("cargo built no .wasm for {name}: is it a cdylib for wasm32-wasip2?")
        })?;
    println!("{wasm}");
    Ok(())
}
