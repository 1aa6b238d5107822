//! Integration tests of the plugin host against the components in `plugins/`
//! (built once per test run by [`support::wasm`]).

mod bench;
mod cache;
mod command;
mod controller;
mod examples;
mod hostile;
mod support;
