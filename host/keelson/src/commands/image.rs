//! `keelson image import FILE.wasm NAME[:TAG]`: loads a WASI component into the agent's local
//! OCI image layout (`<data-dir>/agent/images`), so pods with `runtimeClassName: wasm` can run
//! `image: NAME:TAG` without a registry. `keelson image ls` lists what is there.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

/// `keelson image`.
#[derive(Args, Debug)]
pub(crate) struct ImageCommand {
    #[command(subcommand)]
    command: ImageSubcommand,
    /// The data dir of the server or agent [default: /var/lib/keelson as root, else
    /// $XDG_DATA_HOME/keelson].
    #[arg(long, env = "KEELSON_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum ImageSubcommand {
    /// Import a WebAssembly component as image NAME[:TAG] (default tag `latest`).
    Import {
        /// The `.wasm` file (a WASI command component, e.g. built for wasm32-wasip2).
        file: PathBuf,
        /// The image reference pods use, e.g. `demo:1`.
        name: String,
    },
}

impl ImageCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let data_dir = self
            .data_dir
            .unwrap_or_else(super::server::default_data_dir);
        let store = keelson_kubelet::images::ImageStore::new(data_dir.join("agent/images"));
        match self.command {
            ImageSubcommand::Import { file, name } => {
                let bytes =
                    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                let id = store.import(&bytes, &name)?;
                println!("{} {id}", keelson_kubelet::images::normalize(&name));
            }
        }
        Ok(())
    }
}
