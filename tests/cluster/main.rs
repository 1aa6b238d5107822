//! Integration tests: the real `keelson` binary on a free port in a temp dir, driven by stock
//! kubectl binaries, raw HTTP clients, and (when installed) a real etcd.

mod admission;
mod agent_join;
mod api;
mod at_rest;
mod bad_input;
mod certificates;
mod containerd;
mod controllers;
mod crash;
mod cronjob;
mod disruption;
mod endpoints;
mod fidelity;
mod guest_languages;
mod harness;
mod kube_rs;
mod kubectl;
mod kubelet;
mod kubelet_more;
mod local_containerd;
mod migrate;
mod node_lifecycle;
mod plugins;
mod rbac;
mod scheduler;
mod snapshot;
mod statefulset;
mod status;
mod wasm_scheduler;
mod webhook_quota;
mod workloads;
