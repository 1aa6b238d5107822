//! Making a container's image present before it starts, as the kubelet's image manager does
//! (pkg/kubelet/images): `imagePullPolicy` (its default `Always` for `:latest` or untagged
//! images, else `IfNotPresent`) against what the runtime's store has; `Never` with the image
//! absent waits in `ErrImageNeverPull`; a pull runs in a task of its own (the worker goes on
//! serving its pod: status, deletion) with the pod's `imagePullSecrets`
//! (`kubernetes.io/dockerconfigjson`) as credentials, and reports back; a failure waits in
//! `ErrImagePull`, then `ImagePullBackOff` until the per-image back-off (doubling from the
//! agent's back-off base to its maximum) lets the next pull go. Events and messages are the
//! kubelet's: Pulling, Pulled, Failed, BackOff, ErrImageNeverPull.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Container, Secret};
use kube::Api;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Slot, Worker};
use crate::runtime::{RegistryCredential, Runtime};
use crate::status::Current;

/// `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    Always,
    IfNotPresent,
    Never,
}

/// The container's pull policy, else the API server's default for its image.
pub(crate) fn policy(c: &Container) -> Policy {
    match c.image_pull_policy.as_deref() {
        Some("Always") => Policy::Always,
        Some("IfNotPresent") => Policy::IfNotPresent,
        Some("Never") => Policy::Never,
        _ => {
            let image = c.image.as_deref().unwrap_or_default();
            let name = image.split('@').next().unwrap_or_default();
            let last = name.rsplit('/').next().unwrap_or_default();
            let tag = last.split_once(':').map(|(_, t)| t);
            match (image.contains('@'), tag) {
                (true, _) => Policy::IfNotPresent,
                (false, None | Some("latest")) => Policy::Always,
                (false, Some(_)) => Policy::IfNotPresent,
            }
        }
    }
}

/// Whether to pull, given the policy and whether the image is present (`shouldPullImage`).
pub(crate) fn should_pull(policy: Policy, present: bool) -> bool {
    match policy {
        Policy::Never => false,
        Policy::Always => true,
        Policy::IfNotPresent => !present,
    }
}

/// The registry host a `.dockerconfigjson` key names (`https://index.docker.io/v1/` is
/// `docker.io`).
pub(crate) fn registry_host(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or_default();
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        other => other.into(),
    }
}

/// The credentials of a `kubernetes.io/dockerconfigjson` (or legacy `dockercfg`) Secret.
pub(crate) fn credentials(secret: &Secret) -> Vec<RegistryCredential> {
    let data = secret.data.clone().unwrap_or_default();
    let (json, nested) = match (data.get(".dockerconfigjson"), data.get(".dockercfg")) {
        (Some(j), _) => (j, true),
        (None, Some(j)) => (j, false),
        (None, None) => return Vec::new(),
    };
    let parsed: serde_json::Value = serde_json::from_slice(&json.0).unwrap_or_default();
    let auths = match nested {
        true => parsed.get("auths").cloned().unwrap_or_default(),
        false => parsed,
    };
    let mut out = Vec::new();
    for (key, entry) in auths.as_object().into_iter().flatten() {
        let field = |f: &str| entry.get(f).and_then(|v| v.as_str()).unwrap_or_default();
        let (mut username, mut password) =
            (field("username").to_string(), field("password").to_string());
        if username.is_empty() {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(field("auth"))
                .unwrap_or_default();
            let decoded = String::from_utf8_lossy(&decoded);
            if let Some((u, p)) = decoded.split_once(':') {
                (username, password) = (u.to_string(), p.to_string());
            }
        }
        if !username.is_empty() {
            out.push(RegistryCredential {
                registry: registry_host(key),
                username,
                password,
            });
        }
    }
    out
}

/// A duration as Go prints it once truncated to milliseconds (`1.234s`, `512ms`, `2m3.5s`).
pub(crate) fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let seconds = match frac {
        0 => format!("{s}s"),
        f => format!("{s}.{}s", format!("{f:03}").trim_end_matches('0')),
    };
    match (h, m) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

/// A pull that finished.
pub(super) struct PullDone {
    slot: Slot,
    image: String,
    started: Instant,
    result: Result<u64, String>,
}

/// A pod worker's pulls: those in flight, those done and not yet used, the back-off per image.
pub(super) struct Pulls {
    in_flight: HashSet<Slot>,
    fresh: HashSet<Slot>,
    /// Per image: when its last pull failed and how long the next one waits from then.
    backoff: HashMap<String, (Instant, Duration)>,
    tx: mpsc::UnboundedSender<PullDone>,
}

impl Pulls {
    pub(super) fn new() -> (Self, mpsc::UnboundedReceiver<PullDone>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let pulls = Pulls {
            in_flight: HashSet::new(),
            fresh: HashSet::new(),
            backoff: HashMap::new(),
            tx,
        };
        (pulls, rx)
    }

    /// Whether a pull for `slot` is under way.
    pub(super) fn pulling(&self, slot: Slot) -> bool {
        self.in_flight.contains(&slot)
    }
}

/// The next back-off after a failure at `now` (flowcontrol.Backoff's `Next`).
fn next_backoff(
    prev: Option<(Instant, Duration)>,
    now: Instant,
    base: Duration,
    max: Duration,
) -> Duration {
    match prev {
        Some((at, d)) if now.duration_since(at) <= max * 2 => (d * 2).min(max),
        _ => base,
    }
}

impl Worker {
    /// Whether the image of the container in `slot` is ready for the runtime to prepare;
    /// otherwise the container waits (or its pull started) and the worker comes back to it.
    pub(super) async fn ensure_image(
        &mut self,
        slot: Slot,
        spec: &Container,
        runtime: &Arc<dyn Runtime>,
    ) -> bool {
        if !runtime.pulls() || self.pulls.fresh.remove(&slot) {
            return true;
        }
        let image = spec.image.clone().unwrap_or_default();
        let present = match runtime.has_image(&image).await {
            Ok(p) => p,
            Err(e) => {
                let message = format!("Failed to inspect image \"{image}\": {e}");
                self.event(true, "InspectFailed", message.clone());
                self.image_wait(slot, "ImageInspectError", message, None);
                return false;
            }
        };
        if !should_pull(policy(spec), present) {
            if present {
                let message = format!("Container image \"{image}\" already present on machine");
                self.event(false, "Pulled", message);
                return true;
            }
            let message =
                format!("Container image \"{image}\" is not present with pull policy of Never");
            self.event(true, "ErrImageNeverPull", message.clone());
            self.image_wait(slot, "ErrImageNeverPull", message, None);
            return false;
        }
        let now = Instant::now();
        if let Some((at, delay)) = self.pulls.backoff.get(&image).copied() {
            if now < at + delay {
                let message = format!("Back-off pulling image \"{image}\"");
                self.event(false, "BackOff", message.clone());
                self.image_wait(slot, "ImagePullBackOff", message, Some(at + delay - now));
                return false;
            }
        }
        self.event(false, "Pulling", format!("Pulling image \"{image}\""));
        let credentials = self.pull_credentials().await;
        self.pulls.in_flight.insert(slot);
        let (runtime, tx) = (runtime.clone(), self.pulls.tx.clone());
        tokio::spawn(async move {
            let result = runtime
                .pull(&image, &credentials)
                .await
                .map_err(|e| e.to_string());
            let _ = tx.send(PullDone {
                slot,
                image,
                started: now,
                result,
            });
        });
        false
    }

    /// A pull finished: the container starts now, or waits in `ErrImagePull`.
    pub(super) fn on_pulled(&mut self, done: PullDone) {
        self.pulls.in_flight.remove(&done.slot);
        let image = done.image;
        match done.result {
            Ok(size) => {
                let took = go_duration(done.started.elapsed());
                self.event(
                    false,
                    "Pulled",
                    format!("Successfully pulled image \"{image}\" in {took} ({took} including waiting). Image size: {size} bytes."),
                );
                self.pulls.backoff.remove(&image);
                self.pulls.fresh.insert(done.slot);
                self.due.insert(done.slot, Instant::now());
            }
            Err(message) => {
                self.event(
                    true,
                    "Failed",
                    format!("Failed to pull image \"{image}\": {message}"),
                );
                let now = Instant::now();
                let config = &self.agent.config;
                let prev = self.pulls.backoff.get(&image).copied();
                let delay = next_backoff(prev, now, config.backoff_base, config.backoff_max);
                self.pulls.backoff.insert(image, (now, delay));
                // ErrImagePull for half the back-off, then ImagePullBackOff until it is over.
                self.image_wait(done.slot, "ErrImagePull", message, Some(delay / 2));
            }
        }
    }

    /// The container waits for its image, retried after `retry` (default: the back-off base).
    fn image_wait(&mut self, slot: Slot, reason: &str, message: String, retry: Option<Duration>) {
        self.event(true, "Failed", format!("Error: {reason}"));
        tracing::info!(container = %self.state(slot).name, reason, %message, "image not ready");
        self.state(slot).current = Current::Waiting {
            reason: reason.into(),
            message: Some(message),
        };
        let retry = retry.unwrap_or(self.agent.config.backoff_base);
        self.due.insert(slot, Instant::now() + retry);
    }

    /// The credentials of the pod's `imagePullSecrets` (those that cannot be read are skipped
    /// with a warning, as the kubelet does).
    async fn pull_credentials(&self) -> Vec<RegistryCredential> {
        let names: Vec<String> = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.name)
            .collect();
        let api: Api<Secret> = Api::namespaced(self.agent.client.clone(), &self.ns);
        let mut out = Vec::new();
        for name in names {
            match api.get_opt(&name).await {
                Ok(Some(secret)) => out.extend(credentials(&secret)),
                Ok(None) => tracing::warn!(secret = %name, "image pull secret not found"),
                Err(e) => {
                    tracing::warn!(secret = %name, error = %e, "cannot read image pull secret")
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn container(image: &str, policy: Option<&str>) -> Container {
        Container {
            name: "c".into(),
            image: Some(image.into()),
            image_pull_policy: policy.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn policy_defaults_like_the_api_server() {
        for (image, want) in [
            ("busybox", Policy::Always),
            ("busybox:latest", Policy::Always),
            ("busybox:1.36", Policy::IfNotPresent),
            ("localhost:5000/app", Policy::Always),
            ("localhost:5000/app:v1", Policy::IfNotPresent),
            ("busybox@sha256:abc", Policy::IfNotPresent),
        ] {
            assert_eq!(policy(&container(image, None)), want, "{image}");
        }
        assert_eq!(policy(&container("busybox", Some("Never"))), Policy::Never);
        assert_eq!(
            policy(&container("busybox:1", Some("Always"))),
            Policy::Always
        );
    }

    #[test]
    fn pull_decisions_follow_should_pull_image() {
        assert!(should_pull(Policy::Always, true));
        assert!(should_pull(Policy::Always, false));
        assert!(!should_pull(Policy::IfNotPresent, true));
        assert!(should_pull(Policy::IfNotPresent, false));
        assert!(!should_pull(Policy::Never, true));
        assert!(!should_pull(Policy::Never, false));
    }

    #[test]
    fn durations_print_like_go() {
        for (ms, want) in [
            (0, "0s"),
            (512, "512ms"),
            (1000, "1s"),
            (1234, "1.234s"),
            (1500, "1.5s"),
            (123_450, "2m3.45s"),
            (3_600_000, "1h0m0s"),
        ] {
            assert_eq!(go_duration(Duration::from_millis(ms)), want);
        }
        assert_eq!(go_duration(Duration::from_micros(1_234_567)), "1.234s");
    }

    #[test]
    fn backoff_doubles_to_the_maximum_and_starts_over_after_a_quiet_spell() {
        let (base, max) = (Duration::from_secs(10), Duration::from_secs(300));
        let now = Instant::now();
        assert_eq!(next_backoff(None, now, base, max), base);
        let d = next_backoff(Some((now, base)), now, base, max);
        assert_eq!(d, Duration::from_secs(20));
        assert_eq!(next_backoff(Some((now, max)), now, base, max), max);
        let later = now + Duration::from_secs(601);
        assert_eq!(next_backoff(Some((now, max)), later, base, max), base);
    }

    #[test]
    fn docker_config_secrets_give_credentials() {
        let config = serde_json::json!({"auths": {
            "https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"},
            "registry.lan:5000": {"username": "me", "password": "secret"},
            "empty.lan": {},
        }});
        let secret = Secret {
            type_: Some("kubernetes.io/dockerconfigjson".into()),
            data: Some(
                [(
                    ".dockerconfigjson".to_string(),
                    ByteString(config.to_string().into_bytes()),
                )]
                .into(),
            ),
            ..Default::default()
        };
        let mut got: Vec<_> = credentials(&secret)
            .into_iter()
            .map(|c| (c.registry, c.username, c.password))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("docker.io".into(), "user".into(), "pass".into()),
                ("registry.lan:5000".into(), "me".into(), "secret".into()),
            ]
        );
        assert_eq!(registry_host("http://ghcr.io/v2/"), "ghcr.io");
    }
}
