//! The OCI runtime spec of a container (runc's `config.json`), built with `oci-spec` from its
//! defaults (the usual `/proc`, `/dev`, `/sys` mounts, namespaces, masked paths and default
//! capabilities): the command line from the pod spec over the image's entrypoint and cmd (as
//! Kubernetes merges them), the image's environment under the pod's, the working directory,
//! the pod's hostname, volume bind mounts, the pod's network namespace (or the node's for
//! `hostNetwork`), a cgroup under `keelson/<pod uid>` and the memory and CPU limits.

use std::path::PathBuf;

use oci_spec::runtime::{
    get_default_mounts, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceType,
    LinuxResourcesBuilder, MountBuilder, RootBuilder, Spec,
};

use super::image::Image;
use crate::runtime::ContainerConfig;
use crate::Error;

/// Kubernetes' rule: `command` replaces the entrypoint (and drops the image's cmd), `args`
/// replaces the cmd.
pub(crate) fn argv(config: &ContainerConfig, image: &Image) -> Vec<String> {
    match (config.command.is_empty(), config.args.is_empty()) {
        (false, _) => config
            .command
            .iter()
            .chain(config.args.iter())
            .cloned()
            .collect(),
        (true, false) => image
            .entrypoint
            .iter()
            .chain(config.args.iter())
            .cloned()
            .collect(),
        (true, true) => image
            .entrypoint
            .iter()
            .chain(image.cmd.iter())
            .cloned()
            .collect(),
    }
}

/// The image's environment with the pod's on top (same name: the pod wins).
pub(crate) fn environment(config: &ContainerConfig, image: &Image) -> Vec<String> {
    let mut env: Vec<String> = image
        .env
        .iter()
        .filter(|e| {
            let name = e.split('=').next().unwrap_or_default();
            !config.env.iter().any(|(n, _)| n == name)
        })
        .cloned()
        .collect();
    if !env.iter().any(|e| e.starts_with("PATH=")) && !config.env.iter().any(|(n, _)| n == "PATH") {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    env.extend(config.env.iter().map(|(k, v)| format!("{k}={v}")));
    env
}

fn spec_error(e: impl std::fmt::Display) -> Error {
    Error::Runtime(format!("OCI spec: {e}"))
}

/// The runtime spec of one container; `netns` is the pod's namespace (`None`: host network).
pub(crate) fn build(
    config: &ContainerConfig,
    image: &Image,
    netns: Option<PathBuf>,
) -> Result<Spec, Error> {
    let args = argv(config, image);
    if args.is_empty() {
        return Err(Error::Runtime(
            "no command: the pod sets none and the image has no entrypoint or cmd".into(),
        ));
    }
    let mut spec = Spec::default();
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(args));
    process.set_terminal(Some(config.tty));
    process.set_env(Some(environment(config, image)));
    process.set_cwd(PathBuf::from(
        image.working_dir.clone().unwrap_or_else(|| "/".into()),
    ));
    spec.set_process(Some(process));
    let root = RootBuilder::default()
        .path("rootfs")
        .readonly(false)
        .build()
        .map_err(spec_error)?;
    spec.set_root(Some(root));
    spec.set_hostname(Some(config.hostname.clone()));
    let mut mounts = get_default_mounts();
    for m in &config.mounts {
        let mode = if m.read_only { "ro" } else { "rw" };
        mounts.push(
            MountBuilder::default()
                .destination(&m.guest)
                .typ("bind")
                .source(&m.host)
                .options(vec!["rbind".to_string(), mode.to_string()])
                .build()
                .map_err(spec_error)?,
        );
    }
    if netns.is_none() {
        // The node's network: its name resolution too.
        for file in ["/etc/resolv.conf", "/etc/hosts"] {
            if std::path::Path::new(file).exists() {
                mounts.push(
                    MountBuilder::default()
                        .destination(file)
                        .typ("bind")
                        .source(file)
                        .options(vec!["rbind".to_string(), "ro".to_string()])
                        .build()
                        .map_err(spec_error)?,
                );
            }
        }
    }
    spec.set_mounts(Some(mounts));
    let linux = spec
        .linux_mut()
        .as_mut()
        .ok_or_else(|| spec_error("no linux section"))?;
    if let Some(namespaces) = linux.namespaces_mut().as_mut() {
        namespaces.retain(|n| n.typ() != LinuxNamespaceType::Network || netns.is_some());
        for n in namespaces.iter_mut() {
            if n.typ() == LinuxNamespaceType::Network {
                n.set_path(netns.clone());
            }
        }
    }
    linux.set_cgroups_path(Some(PathBuf::from(format!(
        "/keelson/{}/{}",
        config.pod_uid, config.id
    ))));
    let mut resources = LinuxResourcesBuilder::default();
    if let Some(limit) = config.memory_limit {
        let memory = LinuxMemoryBuilder::default()
            .limit(limit as i64)
            .build()
            .map_err(spec_error)?;
        resources = resources.memory(memory);
    }
    if let Some(millis) = config.cpu_limit_millis {
        let cpu = LinuxCpuBuilder::default()
            .quota((millis * 100) as i64)
            .period(100_000u64)
            .build()
            .map_err(spec_error)?;
        resources = resources.cpu(cpu);
    }
    linux.set_resources(Some(resources.build().map_err(spec_error)?));
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct Sink;
    impl crate::runtime::OutputSink for Sink {
        fn write(&self, _: crate::runtime::Stream, _: &[u8]) {}
    }

    fn config(command: &[&str], args: &[&str]) -> ContainerConfig {
        ContainerConfig {
            id: "c1".into(),
            pod_uid: "u1".into(),
            hostname: "p".into(),
            host_network: false,
            image: "busybox".into(),
            command: command.iter().map(|s| s.to_string()).collect(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec![("A".into(), "pod".into())],
            memory_limit: Some(64 << 20),
            cpu_limit_millis: Some(500),
            output: Arc::new(Sink),
            mounts: vec![],
            stdin: false,
            stdin_once: false,
            tty: false,
        }
    }

    fn image() -> Image {
        Image {
            id: "x".into(),
            chain_id: "sha256:y".into(),
            entrypoint: vec!["/entry".into()],
            cmd: vec!["default".into()],
            env: vec!["A=image".into(), "PATH=/bin".into()],
            working_dir: None,
        }
    }

    #[test]
    fn command_and_args_merge_like_kubernetes() {
        assert_eq!(argv(&config(&[], &[]), &image()), ["/entry", "default"]);
        assert_eq!(argv(&config(&[], &["x"]), &image()), ["/entry", "x"]);
        assert_eq!(argv(&config(&["sh"], &[]), &image()), ["sh"]);
        assert_eq!(argv(&config(&["sh"], &["-c"]), &image()), ["sh", "-c"]);
    }

    #[test]
    fn pod_env_wins_and_limits_land_in_the_spec() {
        let spec = build(&config(&["sh"], &[]), &image(), Some("/n".into())).unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            v["process"]["env"],
            serde_json::json!(["PATH=/bin", "A=pod"])
        );
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(v["linux"]["cgroupsPath"], "/keelson/u1/c1");
        let net = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["type"] == "network")
            .unwrap();
        assert_eq!(net["path"], "/n");
        let host = build(&config(&["sh"], &[]), &image(), None).unwrap();
        let v = serde_json::to_value(&host).unwrap();
        assert!(!v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "network"));
    }
}
