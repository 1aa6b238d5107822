//! `keelson sim nodes N`: simulated nodes (like kwok) against any API server.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::Taint;

use super::kube_client;

/// `keelson sim`.
#[derive(Args, Debug)]
pub(crate) struct SimCommand {
    #[command(subcommand)]
    command: SimSubcommand,
}

#[derive(Subcommand, Debug)]
enum SimSubcommand {
    /// Register N fake nodes, renew their Leases and run the pods bound to them.
    Nodes(NodesCommand),
}

/// Flags of `keelson sim nodes`.
#[derive(Args, Debug)]
struct NodesCommand {
    /// How many nodes.
    count: usize,
    /// kubeconfig of the API server [default: $KUBECONFIG, else the server's data dir kubeconfig.yaml].
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Node names are <prefix><index>.
    #[arg(long, default_value = "sim-")]
    name_prefix: String,
    /// Index of the first node.
    #[arg(long, default_value_t = 0)]
    first_index: usize,
    /// CPU of each node.
    #[arg(long, default_value = "4")]
    cpu: String,
    /// Memory of each node.
    #[arg(long, default_value = "8Gi")]
    memory: String,
    /// Pod capacity of each node.
    #[arg(long, default_value = "110")]
    pods: String,
    /// Ephemeral storage of each node.
    #[arg(long, default_value = "100Gi")]
    ephemeral_storage: String,
    /// Extra resource (`example.com/gpu=2`); repeatable.
    #[arg(long = "resource", value_name = "NAME=QUANTITY")]
    resources: Vec<String>,
    /// Node label (`k=v`); repeatable.
    #[arg(long = "label", value_name = "K=V")]
    labels: Vec<String>,
    /// Node taint (`k=v:NoSchedule`, `k:NoExecute`); repeatable.
    #[arg(long = "taint", value_name = "K[=V]:EFFECT")]
    taints: Vec<String>,
    /// Seconds between Lease renewals.
    #[arg(long, default_value_t = 10)]
    lease_renew_seconds: u64,
}

fn pair(s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .with_context(|| format!("{s:?} is not K=V"))?;
    Ok((k.to_string(), v.to_string()))
}

/// Parses `k=v:Effect` or `k:Effect` as kubectl taint does.
fn taint(s: &str) -> anyhow::Result<Taint> {
    let (kv, effect) = s
        .rsplit_once(':')
        .with_context(|| format!("taint {s:?} has no :EFFECT"))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        bail!("taint {s:?}: effect must be NoSchedule, PreferNoSchedule or NoExecute");
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (kv.to_string(), None),
    };
    Ok(Taint {
        key,
        value,
        effect: effect.to_string(),
        time_added: None,
    })
}

impl NodesCommand {
    fn config(&self) -> anyhow::Result<keelson_sim::Config> {
        let mut resources: BTreeMap<String, String> = [
            ("cpu", &self.cpu),
            ("memory", &self.memory),
            ("pods", &self.pods),
            ("ephemeral-storage", &self.ephemeral_storage),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for r in &self.resources {
            let (k, v) = pair(r)?;
            resources.insert(k, v);
        }
        Ok(keelson_sim::Config {
            count: self.count,
            first_index: self.first_index,
            template: keelson_sim::NodeTemplate {
                name_prefix: self.name_prefix.clone(),
                resources,
                labels: self
                    .labels
                    .iter()
                    .map(|l| pair(l))
                    .collect::<anyhow::Result<_>>()?,
                taints: self
                    .taints
                    .iter()
                    .map(|t| taint(t))
                    .collect::<anyhow::Result<_>>()?,
            },
            lease_renew: Duration::from_secs(self.lease_renew_seconds.max(1)),
            ..Default::default()
        })
    }
}

impl SimCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let SimSubcommand::Nodes(nodes) = self.command;
        let config = nodes.config()?;
        let path = kube_client::kubeconfig_path(nodes.kubeconfig);
        let client = kube_client::from_kubeconfig(&path).await?;
        tokio::select! {
            r = keelson_sim::run(client, config) => Ok(r?),
            r = tokio::signal::ctrl_c() => Ok(r?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_parse_like_kubectl() {
        let t = taint("dedicated=gpu:NoSchedule").unwrap();
        assert_eq!(
            (t.key.as_str(), t.value.as_deref(), t.effect.as_str()),
            ("dedicated", Some("gpu"), "NoSchedule")
        );
        let t = taint("spot:PreferNoSchedule").unwrap();
        assert_eq!(
            (t.key.as_str(), t.value, t.effect.as_str()),
            ("spot", None, "PreferNoSchedule")
        );
        assert!(taint("x=y").is_err());
        assert!(taint("x=y:Sometimes").is_err());
    }
}
