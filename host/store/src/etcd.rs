//! The etcd v3 backend (`--store etcd://host:port[,host:port…]`), via etcd-client.
//!
//! Creates, updates and deletes are etcd transactions that compare the key's create or
//! modification revision, so optimistic concurrency is etcd's own. Watches map etcd's
//! compaction error to [`Error::Expired`]. With several endpoints, a request that could not
//! reach a member (its endpoint's member is down) is sent again, so losing one member of a
//! three-member cluster costs no failed request.

use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, EventType, GetOptions, KvClient, SortOrder,
    SortTarget, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use std::path::Path;

use tokio::sync::mpsc;

use crate::{Backend, Error, Event, EventKind, KeyValue, Result};

/// Keys of every object live under this prefix.
const PREFIX: &str = "/registry/";

/// Keys per range request of a list.
const LIST_PAGE: i64 = 1000;

/// The end of the key range holding every key that starts with `prefix` (etcd's `GetPrefix`).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // every key
}

/// The etcd v3 backend.
pub struct EtcdBackend {
    client: Client,
}

impl EtcdBackend {
    /// Connects to the given endpoints (`http://host:port`).
    pub async fn connect(endpoints: &[String]) -> Result<Self> {
        let client = Client::connect(endpoints, None).await?;
        Ok(Self { client })
    }

    fn kv(&self) -> KvClient {
        self.client.kv_client()
    }

    /// A range request, retried while it cannot reach a member (see [`unreached`]).
    async fn range(
        &self,
        key: impl Into<Vec<u8>>,
        options: Option<GetOptions>,
    ) -> std::result::Result<etcd_client::GetResponse, etcd_client::Error> {
        let key = key.into();
        retry(|| {
            let (key, options, mut kv) = (key.clone(), options.clone(), self.kv());
            async move { kv.get(key, options).await }
        })
        .await
    }

    /// A transaction, retried while it cannot reach a member (see [`unreached`]).
    async fn txn(
        &self,
        txn: Txn,
    ) -> std::result::Result<etcd_client::TxnResponse, etcd_client::Error> {
        retry(|| {
            let (txn, mut kv) = (txn.clone(), self.kv());
            async move { kv.txn(txn).await }
        })
        .await
    }
}

/// Did the request fail before any member saw it? With several endpoints, the balancer may
/// still pick one whose member just died: its connection is refused, so sending the request
/// again (to another member) is safe even for a write — the first never left this process.
fn unreached(e: &etcd_client::Error) -> bool {
    const UNAVAILABLE: i32 = 14;
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            s.code() as i32 == UNAVAILABLE && s.message().contains("connect")
        }
        _ => false,
    }
}

/// Runs `request` until it reaches a member, a few times with a growing pause (the balancer
/// drops a dead endpoint after a failed connect).
async fn retry<T, F, Fut>(mut request: F) -> std::result::Result<T, etcd_client::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
{
    let mut pause = std::time::Duration::from_millis(10);
    for _ in 0..8 {
        match request().await {
            Err(e) if unreached(&e) => {
                tracing::debug!(error = %e, "etcd endpoint unreachable; trying again");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            done => return done,
        }
    }
    request().await
}

fn convert(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    }
}

fn header_revision(h: Option<&etcd_client::ResponseHeader>) -> i64 {
    h.map(|h| h.revision()).unwrap_or_default()
}

#[async_trait::async_trait]
impl Backend for EtcdBackend {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let resp = self.range(key, None).await?;
        Ok(resp.kvs().first().map(convert))
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64)> {
        // In pages at one revision (as Kubernetes' etcd3 store lists), so a large prefix never
        // exceeds gRPC's 4 MiB message limit.
        let end = prefix_end(prefix.as_bytes());
        let mut from = prefix.as_bytes().to_vec();
        let mut items: Vec<KeyValue> = Vec::new();
        let mut revision = 0;
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(LIST_PAGE)
                .with_sort(SortTarget::Key, SortOrder::Ascend);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let resp = self.range(from.clone(), Some(options)).await?;
            if revision == 0 {
                revision = header_revision(resp.header());
            }
            items.extend(resp.kvs().iter().map(convert));
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        Ok((items, revision))
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        let txn = Txn::new()
            .when(vec![Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then(vec![TxnOp::put(key, value.clone(), None)]);
        let resp = self.txn(txn).await?;
        if !resp.succeeded() {
            return Err(Error::AlreadyExists(key.to_string()));
        }
        let rev = header_revision(resp.header());
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision: rev,
            mod_revision: rev,
        })
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: i64) -> Result<KeyValue> {
        let cond = if expected == 0 {
            Compare::create_revision(key, CompareOp::Greater, 0)
        } else {
            Compare::mod_revision(key, CompareOp::Equal, expected)
        };
        let txn = Txn::new()
            .when(vec![cond])
            .and_then(vec![
                TxnOp::put(key, value.clone(), None),
                TxnOp::get(key, None),
            ])
            .or_else(vec![TxnOp::get(key, None)]);
        let resp = self.txn(txn).await?;
        let current = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(convert),
            _ => None,
        });
        match (resp.succeeded(), current) {
            (true, Some(kv)) => Ok(kv),
            (_, None) => Err(Error::NotFound(key.to_string())),
            (false, Some(_)) => Err(Error::Conflict(key.to_string())),
        }
    }

    async fn delete(&self, key: &str, expected: i64) -> Result<KeyValue> {
        let cond = if expected == 0 {
            Compare::create_revision(key, CompareOp::Greater, 0)
        } else {
            Compare::mod_revision(key, CompareOp::Equal, expected)
        };
        let txn = Txn::new()
            .when(vec![cond])
            .and_then(vec![TxnOp::delete(
                key,
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else(vec![TxnOp::get(key, None)]);
        let resp = self.txn(txn).await?;
        let rev = header_revision(resp.header());
        let succeeded = resp.succeeded();
        let found = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Delete(d) => d.prev_kvs().first().map(convert),
            TxnOpResponse::Get(g) => g.kvs().first().map(convert),
            _ => None,
        });
        match (succeeded, found) {
            (true, Some(kv)) => Ok(KeyValue {
                mod_revision: rev,
                ..kv
            }),
            (_, None) => Err(Error::NotFound(key.to_string())),
            (false, Some(_)) => Err(Error::Conflict(key.to_string())),
        }
    }

    async fn current_revision(&self) -> Result<i64> {
        let resp = self
            .range(
                PREFIX,
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await?;
        Ok(header_revision(resp.header()))
    }

    async fn watch(&self, after: i64) -> Result<mpsc::Receiver<Result<Event>>> {
        let opts = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_start_revision(after + 1);
        let mut stream = self.client.watch_client().watch(PREFIX, Some(opts)).await?;
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                let msg = match stream.message().await {
                    Ok(Some(m)) => m,
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Err(Error::Etcd(e))).await;
                        return;
                    }
                };
                if msg.compact_revision() > 0 || msg.canceled() {
                    let oldest = msg.compact_revision();
                    let _ = tx
                        .send(Err(Error::Expired {
                            requested: after,
                            oldest,
                        }))
                        .await;
                    return;
                }
                for ev in msg.events() {
                    let Some(kv) = ev.kv() else { continue };
                    let event = match ev.event_type() {
                        EventType::Put => {
                            let kv = convert(kv);
                            let kind = if kv.create_revision == kv.mod_revision {
                                EventKind::Created
                            } else {
                                EventKind::Updated
                            };
                            let prev = ev.prev_kv().map(|p| p.value().to_vec());
                            Event { kind, kv, prev }
                        }
                        EventType::Delete => {
                            let rev = kv.mod_revision();
                            let prev = ev.prev_kv().map(convert).unwrap_or_else(|| convert(kv));
                            Event {
                                kind: EventKind::Deleted,
                                kv: KeyValue {
                                    mod_revision: rev,
                                    ..prev
                                },
                                prev: None,
                            }
                        }
                    };
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        self.kv().compact(revision, None).await?;
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "etcd"
    }

    /// etcd's maintenance snapshot (the member's whole bbolt file). The revision returned is
    /// the one read just before the snapshot began: every write up to it is included.
    async fn snapshot(&self, dest: &Path) -> Result<i64> {
        use tokio::io::AsyncWriteExt;
        let revision = self.current_revision().await?;
        let mut stream = self.client.maintenance_client().snapshot().await?;
        let mut out = tokio::fs::File::create(dest)
            .await
            .map_err(|e| Error::Config(format!("{}: {e}", dest.display())))?;
        while let Some(chunk) = stream.message().await? {
            out.write_all(chunk.blob())
                .await
                .map_err(|e| Error::Config(format!("{}: {e}", dest.display())))?;
        }
        out.sync_all()
            .await
            .map_err(|e| Error::Config(format!("{}: {e}", dest.display())))?;
        Ok(revision)
    }

    async fn size(&self) -> Result<u64> {
        let status = self.client.maintenance_client().status().await?;
        Ok(status.db_size().max(0) as u64)
    }
}
