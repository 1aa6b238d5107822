//! In-process clients act as themselves: a request made through keelson-client's in-process
//! client as `system:kube-scheduler` reaches admission with that user (an echoing plugin in
//! the chain reports it), exactly as a remote request's token user would.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use keelson_admission::{Api, Attributes, Denied, Plugin, Stage};
use keelson_client::UserInfo;

/// Refuses every ConfigMap create, naming the user and groups it saw.
struct EchoUser;

#[async_trait::async_trait]
impl Plugin for EchoUser {
    fn name(&self) -> &str {
        "EchoUser"
    }
    async fn validate(&self, a: &Attributes, _api: &dyn Api) -> Result<(), Denied> {
        if a.resource != "configmaps" {
            return Ok(());
        }
        Err(Denied::forbidden(
            a,
            format!("user={} groups={}", a.user.name, a.user.groups.join(",")),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_sees_the_in_process_identity() {
    let dir = tempfile::tempdir().unwrap();
    let config = keelson_apiserver::Config {
        data_dir: dir.path().to_path_buf(),
        secure_port: 0,
        bind_address: "127.0.0.1".into(),
        // Every identity reaches admission; RBAC's own answers are tested below.
        auth: keelson_apiserver::AuthConfig {
            authorization_mode: keelson_apiserver::AuthorizationMode::AlwaysAllow,
            ..Default::default()
        },
        ..Default::default()
    };
    let host = keelson_plugin_host::PluginHost::new(dir.path().join("plugin-cache")).unwrap();
    let running = keelson_apiserver::start(config, host).await.unwrap();
    running.api.admission.set_dynamic(
        Stage::Validating,
        vec![Arc::new(EchoUser) as Arc<dyn Plugin>],
    );
    let router = keelson_apiserver::router(running.api.clone());

    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("probe".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    for (user, expect) in [
        (
            UserInfo::scheduler(),
            "user=system:kube-scheduler groups=system:authenticated",
        ),
        (
            UserInfo::node("n1"),
            "user=system:node:n1 groups=system:nodes,system:authenticated",
        ),
        (
            UserInfo {
                name: "system:anonymous".into(),
                groups: vec!["system:unauthenticated".into()],
            },
            "user=system:anonymous groups=system:unauthenticated",
        ),
    ] {
        let client = keelson_client::in_process(router.clone(), user);
        let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, "default");
        let err = api.create(&Default::default(), &cm).await.unwrap_err();
        let kube::Error::Api(status) = err else {
            panic!("expected an API error, got {err:?}")
        };
        assert_eq!(status.code, 403);
        assert!(
            status.message.ends_with(expect),
            "admission saw the caller: {}",
            status.message
        );
    }
}

/// Under Node,RBAC (the default) each component holds only its bootstrap role's rights: the
/// scheduler may bind pods but not create ConfigMaps, in Kubernetes' words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_hold_only_their_roles() {
    let dir = tempfile::tempdir().unwrap();
    let config = keelson_apiserver::Config {
        data_dir: dir.path().to_path_buf(),
        secure_port: 0,
        bind_address: "127.0.0.1".into(),
        ..Default::default()
    };
    let host = keelson_plugin_host::PluginHost::new(dir.path().join("plugin-cache")).unwrap();
    let running = keelson_apiserver::start(config, host).await.unwrap();
    let router = keelson_apiserver::router(running.api.clone());
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("probe".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let scheduler = keelson_client::in_process(router.clone(), UserInfo::scheduler());
    let err = kube::Api::<ConfigMap>::namespaced(scheduler.clone(), "default")
        .create(&Default::default(), &cm)
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err:?}")
    };
    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        "configmaps is forbidden: User \"system:kube-scheduler\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\""
    );
    let nodes = kube::Api::<k8s_openapi::api::core::v1::Node>::all(scheduler);
    nodes
        .list(&Default::default())
        .await
        .expect("the scheduler lists nodes");

    // Without an identity (no token, no in-process user) the request is system:anonymous,
    // which RBAC allows nothing here: 403, as over the wire.
    let anonymous = kube::Client::new(router, "default");
    let err = kube::Api::<ConfigMap>::namespaced(anonymous, "default")
        .get("probe")
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(s) if s.code == 403 && s.message.contains("system:anonymous"))
    );
}
