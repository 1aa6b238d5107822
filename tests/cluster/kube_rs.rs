//! kube-rs (the client every Keelson component uses) against a real server: aggregated
//! discovery resolves `apps/v1` Deployments with their verbs in one request per root, and
//! `Api::patch_metadata` gets a `PartialObjectMetadata` back.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::verbs;
use serde_json::json;

use crate::harness::Server;

async fn client(server: &Server) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(server.kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

#[test]
fn aggregated_discovery_and_patch_metadata() {
    let server = Server::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = client(&server).await;
        let groups = client.list_api_groups_aggregated().await.unwrap();
        assert!(groups
            .items
            .iter()
            .any(|g| g.metadata.as_ref().and_then(|m| m.name.as_deref()) == Some("apps")));
        let discovery = kube::Discovery::new(client.clone())
            .run_aggregated()
            .await
            .unwrap();
        let (resource, caps) = discovery
            .resolve_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"))
            .expect("apps/v1 Deployment discovered");
        assert_eq!(resource.plural, "deployments");
        assert!(caps.supports_operation(verbs::WATCH) && caps.supports_operation(verbs::PATCH));

        let cms: Api<ConfigMap> = Api::namespaced(client, "default");
        let cm = serde_json::from_value(json!({"metadata": {"name": "meta"}, "data": {"a": "1"}}))
            .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
        let patched = cms
            .patch_metadata(
                "meta",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
            )
            .await
            .unwrap();
        let types = patched.types.expect("typed response");
        assert_eq!(
            (types.api_version.as_str(), types.kind.as_str()),
            ("meta.k8s.io/v1", "PartialObjectMetadata")
        );
        assert_eq!(
            patched
                .metadata
                .labels
                .unwrap_or_default()
                .get("team")
                .map(String::as_str),
            Some("a")
        );
    });
}
