//! Integration tests: the real `keelson` binary on a free port in a temp dir, driven by stock
//! kubectl binaries, raw HTTP clients, and (when installed) a real etcd.

mod harness;
mod kubectl;
mod bad_input;
mod crash;
