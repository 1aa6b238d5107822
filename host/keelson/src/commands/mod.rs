//! One module per subcommand.

pub(crate) mod bench;
pub(crate) mod kube_client;
pub(crate) mod plugin;
pub(crate) mod scheduler;
pub(crate) mod server;
pub(crate) mod sim;
