//! Keelson's built-in controllers. Each talks to the API only through [`ApiClient`] (the same
//! HTTP interface an external component uses), never to the store:
//! - [`garbage_collector`]: ownerReferences with Background, Foreground and Orphan propagation;
//! - [`namespace`]: deletes a terminating namespace's contents, then finalizes it;
//! - [`serviceaccount`]: every namespace has a `default` ServiceAccount.

pub mod discovery;
pub mod garbage_collector;
pub mod informer;
pub mod namespace;
pub mod serviceaccount;

use keelson_apiserver::ApiClient;

/// Starts every built-in controller on the runtime.
pub fn start(client: ApiClient) {
    tokio::spawn(garbage_collector::run(client.clone()));
    tokio::spawn(namespace::run(client.clone()));
    tokio::spawn(serviceaccount::run(client));
}
