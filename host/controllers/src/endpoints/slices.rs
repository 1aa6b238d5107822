//! The EndpointSlice controller (Kubernetes' `pkg/controller/endpointslice`): for every
//! Service with a selector, slices named `<service>-<random>` and owned by the Service, labelled
//! `kubernetes.io/service-name` and `endpointslice.kubernetes.io/managed-by:
//! endpointslice-controller.k8s.io`, one per address type and port list, at most 100
//! endpoints each, with the conditions ready (serving and not terminating), serving and
//! terminating. Existing slices with the same address type and ports are rewritten in place
//! only when they differ; the rest are created or deleted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use super::{labels_of, members, selected_pods, services_for_pod, Member};
use crate::error::{is_not_found, Error};

/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming a slice's manager.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// Most endpoints in one slice (Kubernetes' `--max-endpoints-per-slice` default).
const MAX_ENDPOINTS: usize = 100;

/// Runs the EndpointSlice controller until the process ends.
pub async fn run(client: kube::Client) {
    let controller = Controller::new(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = controller.store();
    controller
        .owns(
            Api::<EndpointSlice>::all(client.clone()),
            watcher::Config::default(),
        )
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            move |pod| services_for_pod(&store, &pod),
        )
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|_| async {})
        .await;
}

fn error_policy(_svc: Arc<Service>, e: &Error, _client: Arc<kube::Client>) -> Action {
    tracing::warn!(error = %e, "syncing endpointslices failed; will retry");
    Action::requeue(Duration::from_secs(1))
}

fn endpoint(m: &Member) -> Endpoint {
    Endpoint {
        addresses: vec![m.ip.clone()],
        conditions: Some(EndpointConditions {
            ready: Some(m.ready && !m.terminating),
            serving: Some(m.ready),
            terminating: Some(m.terminating),
        }),
        hostname: m.hostname.clone(),
        node_name: m.node.clone(),
        target_ref: Some(m.target.clone()),
        ..Default::default()
    }
}

/// The slices `svc` should have: (address type, ports, endpoints), in a stable order.
pub(crate) fn desired(members: &[Member]) -> Vec<(String, Vec<EndpointPort>, Vec<Endpoint>)> {
    let mut groups: BTreeMap<(String, String), (Vec<EndpointPort>, Vec<Endpoint>)> =
        BTreeMap::new();
    for m in members {
        let family = if m.ip.contains(':') { "IPv6" } else { "IPv4" };
        let mut ports: Vec<EndpointPort> = m
            .ports
            .iter()
            .map(|p| EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(p.port),
                protocol: p.protocol.clone(),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        ports.sort_by(|a, b| a.name.cmp(&b.name).then(a.port.cmp(&b.port)));
        let key = (
            family.to_string(),
            serde_json::to_string(&ports).unwrap_or_default(),
        );
        groups
            .entry(key)
            .or_insert_with(|| (ports, Vec::new()))
            .1
            .push(endpoint(m));
    }
    groups
        .into_iter()
        .flat_map(|((family, _), (ports, endpoints))| {
            endpoints
                .chunks(MAX_ENDPOINTS)
                .map(|c| (family.clone(), ports.clone(), c.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tracing::instrument(skip_all, fields(
    controller = "endpointslice",
    namespace = svc.metadata.namespace.as_deref().unwrap_or_default(),
    name = svc.metadata.name.as_deref().unwrap_or_default(),
))]
async fn reconcile(svc: Arc<Service>, client: Arc<kube::Client>) -> Result<Action, Error> {
    if svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(pods) = selected_pods(&client, &svc).await? else {
        return Ok(Action::await_change());
    };
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let api: Api<EndpointSlice> = Api::namespaced((*client).clone(), &ns);
    let query = format!("{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={MANAGED_BY}");
    let mut existing = api.list(&ListParams::default().labels(&query)).await?.items;
    let mut labels = labels_of(&svc);
    labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    let owner = svc.controller_owner_ref(&());

    let mut wanted = desired(&members(&svc, &pods));
    if wanted.is_empty() {
        // Kubernetes keeps one empty slice per Service so its ports stay visible.
        wanted.push(("IPv4".into(), Vec::new(), Vec::new()));
    }
    for (family, ports, endpoints) in wanted {
        let ports = (!ports.is_empty()).then_some(ports);
        let reuse = existing
            .iter()
            .position(|s| s.address_type == family && s.ports == ports);
        match reuse.map(|i| existing.remove(i)) {
            Some(mut slice) => {
                let labelled = slice.metadata.labels.as_ref() == Some(&labels);
                if slice.endpoints != endpoints || !labelled {
                    slice.endpoints = endpoints;
                    slice.metadata.labels = Some(labels.clone());
                    let slice_name = slice.name_any();
                    api.replace(&slice_name, &PostParams::default(), &slice)
                        .await?;
                }
            }
            None => {
                let slice = EndpointSlice {
                    metadata: ObjectMeta {
                        generate_name: Some(format!("{name}-")),
                        namespace: Some(ns.clone()),
                        labels: Some(labels.clone()),
                        owner_references: owner.clone().map(|o| vec![o]),
                        ..Default::default()
                    },
                    address_type: family,
                    endpoints,
                    ports,
                };
                api.create(&PostParams::default(), &slice).await?;
            }
        }
    }
    for stale in existing {
        match api
            .delete(&stale.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::await_change())
}
