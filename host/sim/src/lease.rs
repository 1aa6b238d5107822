//! Node heartbeats: one Lease per simulated node in `kube-node-lease`, created on the first
//! round and renewed every `lease_renew`, as the kubelet's node lease controller does.

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

use crate::{node_names, Config, Error};

const NAMESPACE: &str = "kube-node-lease";

async fn renew(leases: &Api<Lease>, node: &str, duration: i32) -> Result<(), kube::Error> {
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    let patch = serde_json::json!({"spec": {"renewTime": now, "holderIdentity": node, "leaseDurationSeconds": duration}});
    match leases
        .patch(node, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(node.into()),
                    namespace: Some(NAMESPACE.into()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(node.into()),
                    lease_duration_seconds: Some(duration),
                    renew_time: Some(now),
                    ..Default::default()
                }),
            };
            leases
                .create(&PostParams::default(), &lease)
                .await
                .map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// Renews every node's Lease each `lease_renew` until dropped.
pub(crate) async fn renew_forever(client: Client, config: Config) -> Result<(), Error> {
    let leases: Api<Lease> = Api::namespaced(client, NAMESPACE);
    let names = node_names(&config);
    let duration = (config.lease_renew.as_secs() * 4).max(1) as i32;
    let mut tick = tokio::time::interval(config.lease_renew);
    loop {
        tick.tick().await;
        let failures = futures::stream::iter(&names)
            .map(|n| renew(&leases, n, duration))
            .buffer_unordered(config.concurrency.max(1))
            .filter(|r| std::future::ready(r.is_err()))
            .count()
            .await;
        if failures > 0 {
            tracing::warn!(failures, "could not renew some node leases");
        }
    }
}
