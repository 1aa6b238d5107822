//! Integration tests: the real `keelson` binary on a free port in a temp dir, driven by stock
//! kubectl binaries, raw HTTP clients, and (when installed) a real etcd.

mod admission;
mod agent_join;
mod api;
mod bad_input;
mod controllers;
mod crash;
mod fidelity;
mod guest_languages;
mod harness;
mod kube_rs;
mod kubectl;
mod kubelet;
mod kubelet_more;
mod plugins;
mod scheduler;
mod webhook_quota;
mod workloads;
