//! Watch fan-out: many concurrent watches on one namespace's ConfigMaps, then a burst of
//! creates; measures how long each event takes from its create's send to each watcher, and how
//! long until every watcher has every event.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use http_body_util::BodyExt;

use super::http::{error_chain, Client, Endpoint, Streamed};
use super::load::{self, Outcome};

/// Prefix of the created objects' names; the rest is their index.
const PREFIX: &str = "fan-";

/// Fan-out sizes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FanOutSize {
    /// Concurrent watches.
    pub(crate) watchers: usize,
    /// Objects created while they watch.
    pub(crate) events: usize,
    /// Watches per client connection (HTTP/2 streams per connection).
    pub(crate) per_connection: usize,
}

/// What the fan-out measured.
#[derive(Debug)]
pub(crate) struct FanOut {
    /// Per (watcher, event): time from the create's send to the watcher receiving it.
    pub(crate) delivery: Outcome,
    /// From the first create's send to the last watcher receiving the last event; None unless
    /// every watcher got every event.
    pub(crate) total: Option<Duration>,
    /// The creates themselves.
    pub(crate) creates: Outcome,
    /// Problems (watches that failed to open, events that never arrived).
    pub(crate) notes: Vec<String>,
}

#[derive(Deserialize)]
struct WatchLine {
    #[serde(rename = "type")]
    kind: String,
    object: WatchObject,
}

#[derive(Deserialize)]
struct WatchObject {
    #[serde(default)]
    metadata: WatchMeta,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize, Default)]
struct WatchMeta {
    #[serde(default)]
    name: Option<String>,
}

/// What one watcher saw: (event index, arrival) pairs, and an error if it ended early.
type Seen = (Vec<(usize, Instant)>, Option<String>);

/// Reads one watch stream until it has `events` distinct ADDED events named `fan-<i>`, the
/// stream ends, or `stop` fires.
async fn read_watch(
    resp: Streamed,
    events: usize,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Seen {
    let mut seen = Vec::with_capacity(events);
    let mut got = vec![false; events];
    let mut buf: Vec<u8> = Vec::new();
    let mut body = resp.into_body();
    while seen.len() < events {
        let chunk = tokio::select! {
            f = body.frame() => f.transpose().map(|f| f.and_then(|f| f.into_data().ok())),
            _ = stop.changed() => return (seen, Some("stopped before all events arrived".into())),
        };
        let chunk = match chunk {
            Ok(Some(c)) => c,
            Err(e) => return (seen, Some(error_chain(&e))),
            Ok(None) => return (seen, Some("watch stream ended early".into())),
        };
        let now = Instant::now();
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let ev: WatchLine = match serde_json::from_slice(&line) {
                Ok(ev) => ev,
                Err(e) => return (seen, Some(format!("bad watch event: {e}"))),
            };
            if ev.kind == "ERROR" {
                let msg = ev.object.message.unwrap_or_default();
                return (seen, Some(format!("ERROR event: {msg}")));
            }
            let index = ev
                .object
                .metadata
                .name
                .as_deref()
                .and_then(|n| n.strip_prefix(PREFIX))
                .and_then(|i| i.parse::<usize>().ok());
            if let (Some(i), "ADDED") = (index, ev.kind.as_str()) {
                if i < events && !got[i] {
                    got[i] = true;
                    seen.push((i, now));
                }
            }
        }
    }
    (seen, None)
}

/// Runs the fan-out on namespace `ns` (which must exist and be empty), creating with
/// `writers` at their concurrency.
pub(crate) async fn fan_out(
    endpoint: &Endpoint,
    writers: &[Client],
    ns: &str,
    size: FanOutSize,
) -> Result<FanOut, String> {
    let mut notes = Vec::new();
    let (existing, rv) = writers[0].count_configmaps(ns).await?;
    if existing != 0 {
        return Err(format!(
            "namespace {ns} is not empty ({existing} ConfigMaps)"
        ));
    }
    let connections = size.watchers.div_ceil(size.per_connection.max(1)).max(1);
    let watch_clients: Vec<Client> = (0..connections)
        .map(|_| endpoint.client(None))
        .collect::<anyhow::Result<_>>()
        .map_err(|e| format!("{e:#}"))?;
    for c in &watch_clients {
        c.warm_up().await?;
    }

    // Open every watch; the response headers mean the server has it.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let opened = Instant::now();
    let responses: Vec<Result<Streamed, String>> = futures::stream::iter(0..size.watchers)
        .map(|i| {
            let client = watch_clients[i % connections].clone();
            let rv = rv.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(30), client.watch_configmaps(ns, &rv))
                    .await
                    .unwrap_or_else(|_| Err("opening the watch timed out".into()))
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut readers = JoinSet::new();
    let mut open_errors = Vec::new();
    for r in responses {
        match r {
            Ok(resp) => {
                readers.spawn(read_watch(resp, size.events, stop_rx.clone()));
            }
            Err(e) => open_errors.push(e),
        }
    }
    let open_time = opened.elapsed();
    notes.push(format!(
        "fan-out: opened {} watches on {connections} connections in {:.0} ms",
        readers.len(),
        open_time.as_secs_f64() * 1e3
    ));
    if !open_errors.is_empty() {
        notes.push(format!(
            "fan-out: {} watches failed to open; first: {}",
            open_errors.len(),
            open_errors[0]
        ));
    }
    let watching = readers.len();

    // The burst of creates; remember when each was sent.
    let sent: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; size.events]));
    let creates = {
        let (writers, sent, ns) = (writers.to_vec(), sent.clone(), ns.to_string());
        load::closed_loop(
            size.events,
            writers.len(),
            Duration::from_secs(120),
            move |worker, i| {
                let (client, sent, ns) = (writers[worker].clone(), sent.clone(), ns.clone());
                async move {
                    if let Ok(mut s) = sent.lock() {
                        s[i] = Some(Instant::now());
                    }
                    client.create_configmap(&ns, &format!("{PREFIX}{i}")).await
                }
            },
        )
        .await
    };

    // Wait for every watcher (bounded), then stop the stragglers.
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let _ = stop_tx.send(true);
    });
    let mut delivered = Vec::with_capacity(watching * size.events);
    let mut last: Option<Instant> = None;
    let mut incomplete = 0usize;
    let mut first_problem = None;
    let sent = sent.lock().map(|s| s.clone()).unwrap_or_default();
    while let Some(joined) = readers.join_next().await {
        let (seen, problem) = match joined {
            Ok(x) => x,
            Err(e) => (Vec::new(), Some(format!("watch reader failed: {e}"))),
        };
        if seen.len() < size.events {
            incomplete += 1;
        }
        if let Some(p) = problem {
            first_problem.get_or_insert(p);
        }
        for (i, at) in seen {
            if let Some(Some(s)) = sent.get(i) {
                delivered.push(at.saturating_duration_since(*s));
                last = Some(last.map_or(at, |l| l.max(at)));
            }
        }
    }
    stopper.abort();
    let first_sent = sent.iter().flatten().min().copied();
    let expected = creates.latencies.len();
    if incomplete > 0 {
        notes.push(format!(
            "fan-out: {incomplete} of {watching} watchers missed events; first problem: {}",
            first_problem.as_deref().unwrap_or("?")
        ));
    }
    let complete = incomplete == 0 && open_errors.is_empty() && expected == size.events;
    let total = match (complete, first_sent, last) {
        (true, Some(f), Some(l)) => Some(l.saturating_duration_since(f)),
        _ => None,
    };
    let span = total.unwrap_or_default();
    Ok(FanOut {
        delivery: load::from_samples(delivered, span),
        total,
        creates,
        notes,
    })
}
