//! A minimal informer: list, then watch from the list's resourceVersion, re-listing when the
//! watch ends or expires. Consumers get the full state on every (re)list and each change after.

use keelson_apiserver::ApiClient;
use serde_json::Value;
use tokio::sync::mpsc;

/// What an informer delivers.
#[derive(Debug, Clone)]
pub enum Change {
    /// The complete current list (initially and after every re-list).
    Sync(Vec<Value>),
    /// An object was added or modified.
    Upsert(Value),
    /// An object was deleted.
    Delete(Value),
}

/// Starts an informer on a list path; changes arrive on the returned channel.
pub fn start(client: ApiClient, path: String) -> mpsc::Receiver<Change> {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        loop {
            let (items, rv) = match client.list(&path).await {
                Ok(x) => x,
                Err(e) if e.code == 404 => return,
                Err(_) => {
                    ApiClient::backoff().await;
                    continue;
                }
            };
            if tx.send(Change::Sync(items)).await.is_err() {
                return;
            }
            let Ok(mut events) = client.watch(&path, &rv).await else {
                ApiClient::backoff().await;
                continue;
            };
            while let Some(ev) = events.recv().await {
                let change = match ev.kind.as_str() {
                    "ADDED" | "MODIFIED" => Change::Upsert(ev.object),
                    "DELETED" => Change::Delete(ev.object),
                    "ERROR" => break,
                    _ => continue,
                };
                if tx.send(change).await.is_err() {
                    return;
                }
            }
            ApiClient::backoff().await;
        }
    });
    rx
}
