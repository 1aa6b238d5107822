//! The Endpoints controller and what it shares with the EndpointSlice controller ([`slices`]):
//! for every Service with a selector, the pods it selects that have an IP become members —
//! ready (`addresses`) or not (`notReadyAddresses`; `publishNotReadyAddresses` makes them all
//! ready), terminating ones left out of Endpoints — with the Service's ports resolved per pod
//! (a numeric targetPort as is, a named one through the pod's container ports, Kubernetes'
//! `findPort`). Each Service gets an Endpoints object of its name, kept in step with its pods
//! and deleted with it (Kubernetes' `pkg/controller/endpoint`).

pub mod slices;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::ResourceExt;

use crate::error::{is_not_found, Error};
use crate::replicaset::is_ready;

/// The label marking the objects of a headless Service.
pub(crate) const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// A pod behind a Service.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Member {
    /// The pod's IP.
    pub ip: String,
    /// The pod's node.
    pub node: Option<String>,
    /// The pod's hostname when its subdomain is the Service.
    pub hostname: Option<String>,
    /// A reference to the pod.
    pub target: ObjectReference,
    /// Ready to receive traffic (or the Service publishes not-ready addresses).
    pub ready: bool,
    /// Being deleted.
    pub terminating: bool,
    /// The Service's ports on this pod: name, port, protocol, appProtocol.
    pub ports: Vec<EndpointPort>,
}

/// Kubernetes' `findPort`: the pod's port for a Service port.
fn find_port(pod: &Pod, target: Option<&IntOrString>, port: i32, protocol: &str) -> Option<i32> {
    match target {
        None => Some(port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let spec = pod.spec.as_ref()?;
            spec.containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name)
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// The members of `svc` among `pods` (already selected by its selector), sorted by IP.
pub(crate) fn members(svc: &Service, pods: &[Pod]) -> Vec<Member> {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish = spec.publish_not_ready_addresses == Some(true);
    let svc_name = svc.name_any();
    let mut out: Vec<Member> = pods
        .iter()
        .filter_map(|pod| {
            let status = pod.status.as_ref()?;
            let ip = status.pod_ip.clone().filter(|ip| !ip.is_empty())?;
            if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
                return None;
            }
            let pspec = pod.spec.as_ref();
            let hostname = pspec
                .filter(|s| s.subdomain.as_deref() == Some(svc_name.as_str()))
                .and_then(|s| s.hostname.clone());
            let ports = spec
                .ports
                .iter()
                .flatten()
                .filter_map(|sp| {
                    let protocol = sp.protocol.clone().unwrap_or_else(|| "TCP".into());
                    let port = find_port(pod, sp.target_port.as_ref(), sp.port, &protocol)?;
                    Some(EndpointPort {
                        name: sp.name.clone(),
                        port,
                        protocol: Some(protocol),
                        app_protocol: sp.app_protocol.clone(),
                    })
                })
                .collect();
            Some(Member {
                ip,
                node: pspec.and_then(|s| s.node_name.clone()),
                hostname,
                target: ObjectReference {
                    kind: Some("Pod".into()),
                    name: pod.metadata.name.clone(),
                    namespace: pod.metadata.namespace.clone(),
                    uid: pod.metadata.uid.clone(),
                    ..Default::default()
                },
                ready: publish || is_ready(pod),
                terminating: pod.metadata.deletion_timestamp.is_some(),
                ports,
            })
        })
        .collect();
    out.sort_by(|a, b| a.ip.cmp(&b.ip));
    out
}

/// Labels of a Service's Endpoints and slices: its own, plus the headless marker.
pub(crate) fn labels_of(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.labels().clone();
    if svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels
}

/// The Endpoints subsets (Kubernetes' `RepackSubsets`): members grouped by identical port
/// lists; terminating pods left out unless the Service publishes not-ready addresses.
pub(crate) fn subsets(svc: &Service, members: &[Member]) -> Vec<EndpointSubset> {
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        == Some(true);
    let headless_without_ports = svc.spec.as_ref().is_some_and(|s| {
        s.cluster_ip.as_deref() == Some("None") && s.ports.as_ref().is_none_or(|p| p.is_empty())
    });
    let mut groups: Vec<EndpointSubset> = Vec::new();
    for m in members {
        if m.terminating && !publish {
            continue;
        }
        if m.ports.is_empty() && !headless_without_ports {
            continue;
        }
        let mut ports = m.ports.clone();
        ports.sort_by(|a, b| a.name.cmp(&b.name).then(a.port.cmp(&b.port)));
        let address = EndpointAddress {
            ip: m.ip.clone(),
            hostname: m.hostname.clone(),
            node_name: m.node.clone(),
            target_ref: Some(m.target.clone()),
        };
        let wanted = (!ports.is_empty()).then_some(ports);
        let i = match groups.iter().position(|g| g.ports == wanted) {
            Some(i) => i,
            None => {
                groups.push(EndpointSubset {
                    ports: wanted,
                    ..Default::default()
                });
                groups.len() - 1
            }
        };
        let list = if m.ready {
            groups[i].addresses.get_or_insert_with(Vec::new)
        } else {
            groups[i].not_ready_addresses.get_or_insert_with(Vec::new)
        };
        list.push(address);
    }
    groups
}

/// Runs the Endpoints controller until the process ends.
pub async fn run(client: kube::Client) {
    let services: Api<Service> = Api::all(client.clone());
    let controller = Controller::new(services.clone(), watcher::Config::default());
    let store = controller.store();
    let cleanup = delete_with_services(client.clone(), services);
    let run = controller
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            move |pod| services_for_pod(&store, &pod),
        )
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|_| async {});
    tokio::join!(run, cleanup);
}

/// The Services in the pod's namespace whose selector matches it.
pub(crate) fn services_for_pod(store: &Store<Service>, pod: &Pod) -> Vec<ObjectRef<Service>> {
    let ns = pod.metadata.namespace.as_deref();
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    store
        .state()
        .iter()
        .filter(|s| s.metadata.namespace.as_deref() == ns)
        .filter(|s| {
            s.spec
                .as_ref()
                .and_then(|sp| sp.selector.as_ref())
                .is_some_and(|sel| {
                    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
                })
        })
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

/// Deletes the Endpoints of each deleted Service with a selector (they have no owner
/// reference, as in Kubernetes).
async fn delete_with_services(client: kube::Client, services: Api<Service>) {
    let stream = watcher::watcher(services, watcher::Config::default());
    let mut stream = std::pin::pin!(kube::runtime::WatchStreamExt::default_backoff(stream));
    while let Some(ev) = stream.next().await {
        let Ok(watcher::Event::Delete(svc)) = ev else {
            continue;
        };
        if svc
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .is_none()
        {
            continue;
        }
        let ns = svc.namespace().unwrap_or_default();
        let api: Api<Endpoints> = Api::namespaced(client.clone(), &ns);
        if let Err(e) = api.delete(&svc.name_any(), &DeleteParams::default()).await {
            if !is_not_found(&e) {
                tracing::warn!(error = %e, service = %svc.name_any(), "could not delete endpoints");
            }
        }
    }
}

fn error_policy(_svc: Arc<Service>, e: &Error, _client: Arc<kube::Client>) -> Action {
    tracing::warn!(error = %e, "syncing endpoints failed; will retry");
    Action::requeue(Duration::from_secs(1))
}

/// The pods `svc` selects, or `None` for a Service without a selector.
pub(crate) async fn selected_pods(
    client: &kube::Client,
    svc: &Service,
) -> Result<Option<Vec<Pod>>, Error> {
    let Some(selector) = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .filter(|s| !s.is_empty())
    else {
        return Ok(None);
    };
    let query = selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let api: Api<Pod> = Api::namespaced(client.clone(), &svc.namespace().unwrap_or_default());
    Ok(Some(
        api.list(&ListParams::default().labels(&query)).await?.items,
    ))
}

#[tracing::instrument(skip_all, fields(
    controller = "endpoints",
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
    let wanted = Endpoints {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(labels_of(&svc)),
            ..Default::default()
        },
        subsets: Some(subsets(&svc, &members(&svc, &pods))).filter(|s| !s.is_empty()),
    };
    let api: Api<Endpoints> = Api::namespaced((*client).clone(), &ns);
    match api.get_opt(&name).await? {
        None => match api.create(&PostParams::default(), &wanted).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                return Ok(Action::requeue(Duration::from_millis(200)))
            }
            Err(e) => return Err(e.into()),
        },
        Some(current) => {
            let same = current.subsets.clone().unwrap_or_default()
                == wanted.subsets.clone().unwrap_or_default()
                && current.metadata.labels.clone().unwrap_or_default()
                    == wanted.metadata.labels.clone().unwrap_or_default();
            if !same {
                let mut next = current.clone();
                next.subsets = wanted.subsets;
                next.metadata.labels = wanted.metadata.labels;
                api.replace(&name, &PostParams::default(), &next).await?;
            }
        }
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests;
