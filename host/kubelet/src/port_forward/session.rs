//! One port-forward connection, as the kubelet serves it (`pkg/kubelet/cri/streaming/
//! portforward/httpstream.go`): the client opens two SPDY streams per forwarded connection,
//! `streamtype: error` and `streamtype: data`, with the same `requestid` and `port`; each gets
//! a SYN_REPLY, and once both are there the data stream is spliced to a TCP connection to the
//! port in the pod. A failure is written on the error stream, and both streams end with FIN
//! when the forwarded connection is over: the client's FIN half-closes the connection to the
//! pod, whose answer still comes back; once the pod's side ends, the client's side gets one
//! more second, as containerd's port forwarder gives it.
//!
//! Bytes for the pod queue per stream (16 frames); a full queue holds up reading the
//! connection until the pod takes them, as spdystream's frame workers do in the kubelet.
//!
//! Flow control (SPDY/3.1): the WINDOW_UPDATEs sent here follow the bytes written to the pod,
//! per stream and for the connection. Sending, the session keeps the peer's windows (64 KiB
//! per stream and connection, SETTINGS can change the stream one) but waits on them only once
//! the peer has shown it does flow control (a WINDOW_UPDATE or an initial window in SETTINGS):
//! client-go's spdystream never sends either, and the kubelet, on spdystream too, sends without
//! waiting, so waiting for kubectl's updates would stall every download at 64 KiB.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::Target;
use crate::spdy::{self, headers, Decoder, Encoder, Frame};

/// How long the second stream of a pair may take to arrive (the kubelet's default).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// The most bytes read from the pod per data frame.
const CHUNK: usize = 32 * 1024;

/// A send window (bytes the peer lets us send).
struct Window {
    credit: Mutex<i64>,
    changed: Notify,
}

impl Window {
    fn new(credit: i64) -> Self {
        Window {
            credit: Mutex::new(credit),
            changed: Notify::new(),
        }
    }

    fn add(&self, delta: i64) {
        *self.credit.lock().unwrap_or_else(|e| e.into_inner()) += delta;
        self.changed.notify_waiters();
    }

    /// Takes up to `max` bytes of credit; with `wait`, waits for some, else takes `max` (the
    /// window may go negative, as the peer does not keep it).
    async fn take(&self, max: usize, wait: bool) -> usize {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut credit = self.credit.lock().unwrap_or_else(|e| e.into_inner());
                if !wait || *credit > 0 {
                    let n = if wait { max.min(*credit as usize) } else { max };
                    *credit -= n as i64;
                    return n;
                }
            }
            changed.await;
        }
    }
}

/// The connection's flow-control state.
struct Flow {
    /// Whether the peer does flow control, so that its windows are waited on.
    enforced: AtomicBool,
    connection: Window,
}

impl Flow {
    /// Credit for up to `max` bytes on `stream`'s window and the connection's.
    async fn reserve(&self, stream: &Window, max: usize) -> usize {
        let wait = self.enforced.load(Ordering::Relaxed);
        let n = stream.take(max, wait).await;
        let m = self.connection.take(n, wait).await;
        stream.add(n as i64 - m as i64);
        m
    }

    fn give_back(&self, stream: &Window, unused: usize) {
        stream.add(unused as i64);
        self.connection.add(unused as i64);
    }
}

/// What the session loop reacts to.
enum Event {
    Frame(Frame),
    /// The peer's byte stream ended (or broke).
    Closed,
    /// A forwarded connection is over: its data and error streams.
    Finished(u32, u32),
    /// A request's pair did not complete in time.
    PairTimeout(String),
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Data,
    Error,
}

/// An open stream of the client's.
struct Open {
    port: u16,
    /// Bytes from the client for the pod, until the client's FIN.
    inbound: Option<mpsc::Sender<Bytes>>,
    to_pod: Option<mpsc::Receiver<Bytes>>,
    window: Arc<Window>,
    reset: CancellationToken,
}

/// A request's streams so far.
#[derive(Default)]
struct Pair {
    data: Option<u32>,
    error: Option<u32>,
}

/// The stream type and port of a SYN_STREAM, or why it is refused (the kubelet's words).
fn validate(h: &spdy::Headers) -> Result<(Kind, u16), String> {
    let port = headers::get(h, "port").ok_or("\"port\" header is required")?;
    let port = port
        .parse::<u16>()
        .map_err(|e| format!("unable to parse \"{port}\" as a port: {e}"))?;
    if port == 0 {
        return Err(format!("port \"{port}\" must be > 0"));
    }
    match headers::get(h, "streamtype") {
        Some("data") => Ok((Kind::Data, port)),
        Some("error") => Ok((Kind::Error, port)),
        Some(other) => Err(format!("invalid stream type \"{other}\"")),
        None => Err("\"streamtype\" header is required".into()),
    }
}

/// Serves port-forward streams on `io` (the upgraded connection, or a WebSocket's bytes)
/// until the client goes away.
pub(crate) async fn serve<S>(io: S, target: Arc<Target>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, wr) = tokio::io::split(io);
    let (out, out_rx) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(write_frames(wr, out_rx));
    let (events_tx, mut events) = mpsc::channel::<Event>(64);
    let reader = {
        let events = events_tx.clone();
        tokio::spawn(async move {
            let mut decoder = Decoder::new();
            loop {
                match decoder.read(&mut rd).await {
                    Ok(Some(frame)) => {
                        if events.send(Event::Frame(frame)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "port-forward connection ended");
                        break;
                    }
                }
            }
            let _ = events.send(Event::Closed).await;
        })
    };
    let flow = Arc::new(Flow {
        enforced: AtomicBool::new(false),
        connection: Window::new(i64::from(spdy::DEFAULT_WINDOW)),
    });
    let mut initial_window = i64::from(spdy::DEFAULT_WINDOW);
    let mut streams: HashMap<u32, Open> = HashMap::new();
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut forwards = tokio::task::JoinSet::new();
    while let Some(event) = events.recv().await {
        let frame = match event {
            Event::Frame(frame) => frame,
            Event::Closed => break,
            Event::Finished(data, error) => {
                streams.remove(&data);
                streams.remove(&error);
                continue;
            }
            Event::PairTimeout(request) => {
                if let Some(pair) = pairs.remove(&request) {
                    let message = format!("(request={request}) timed out waiting for streams");
                    tracing::warn!(%request, "{message}");
                    for id in [pair.data, pair.error].into_iter().flatten() {
                        if Some(id) == pair.error {
                            send_error(&out, id, message.clone()).await;
                        }
                        end_stream(&out, id).await;
                        streams.remove(&id);
                    }
                }
                continue;
            }
        };
        match frame {
            Frame::SynStream {
                stream,
                fin,
                headers: h,
                ..
            } => {
                let (kind, port) = match validate(&h) {
                    Ok(v) => v,
                    Err(message) => {
                        tracing::warn!(stream, %message, "port-forward stream refused");
                        refuse(&out, stream).await;
                        continue;
                    }
                };
                let _ = out
                    .send(Frame::SynReply {
                        stream,
                        fin: false,
                        headers: Vec::new(),
                    })
                    .await;
                // Clients older than request ids: pairs are consecutive streams.
                let request = headers::get(&h, "requestid")
                    .map(String::from)
                    .unwrap_or_else(|| match kind {
                        Kind::Error => stream.to_string(),
                        Kind::Data => stream.saturating_sub(2).to_string(),
                    });
                let (tx, rx) = mpsc::channel(16);
                let open = Open {
                    port,
                    inbound: (kind == Kind::Data && !fin).then_some(tx),
                    to_pod: Some(rx),
                    window: Arc::new(Window::new(initial_window)),
                    reset: CancellationToken::new(),
                };
                streams.insert(stream, open);
                let pair = pairs.entry(request.clone()).or_insert_with(|| {
                    let events = events_tx.clone();
                    let request = request.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(STREAM_CREATION_TIMEOUT).await;
                        let _ = events.send(Event::PairTimeout(request)).await;
                    });
                    Pair::default()
                });
                let slot = match kind {
                    Kind::Data => &mut pair.data,
                    Kind::Error => &mut pair.error,
                };
                if slot.is_some() {
                    let message = format!(
                        "error processing stream for request {request}: {} stream already assigned",
                        if kind == Kind::Data { "data" } else { "error" }
                    );
                    if let Some(error) = pair.error {
                        send_error(&out, error, message).await;
                    }
                    refuse(&out, stream).await;
                    streams.remove(&stream);
                    continue;
                }
                *slot = Some(stream);
                if let (Some(data), Some(error)) = (pair.data, pair.error) {
                    pairs.remove(&request);
                    let Some(d) = streams.get_mut(&data) else {
                        continue;
                    };
                    let forward = Forward {
                        out: out.clone(),
                        events: events_tx.clone(),
                        flow: flow.clone(),
                        target: target.clone(),
                        port: d.port,
                        data,
                        error,
                        window: d.window.clone(),
                        reset: d.reset.clone(),
                    };
                    let to_pod = d.to_pod.take().expect("a data stream's receiver");
                    forwards.spawn(forward.run(to_pod));
                }
            }
            Frame::Data { stream, fin, data } => {
                let Some(open) = streams.get_mut(&stream) else {
                    continue;
                };
                if let (Some(tx), false) = (&open.inbound, data.is_empty()) {
                    if tx.send(data).await.is_err() {
                        open.inbound = None;
                    }
                }
                if fin {
                    open.inbound = None;
                }
            }
            Frame::RstStream { stream, .. } => {
                if let Some(open) = streams.get_mut(&stream) {
                    open.inbound = None;
                    open.reset.cancel();
                }
            }
            Frame::WindowUpdate { stream, delta } => {
                flow.enforced.store(true, Ordering::Relaxed);
                match stream {
                    0 => flow.connection.add(i64::from(delta)),
                    s => {
                        if let Some(open) = streams.get(&s) {
                            open.window.add(i64::from(delta));
                        }
                    }
                }
            }
            Frame::Settings { entries } => {
                for (_, id, value) in entries {
                    if id == spdy::SETTINGS_INITIAL_WINDOW_SIZE {
                        flow.enforced.store(true, Ordering::Relaxed);
                        let delta = i64::from(value) - initial_window;
                        initial_window = i64::from(value);
                        for open in streams.values() {
                            open.window.add(delta);
                        }
                    }
                }
            }
            // Odd ids are the client's pings; even ones would answer ours (there are none).
            Frame::Ping { id } if id % 2 == 1 => {
                let _ = out.send(Frame::Ping { id }).await;
            }
            Frame::GoAway { .. } => break,
            _ => {}
        }
    }
    // The client is gone: so are its forwarded connections.
    reader.abort();
    forwards.shutdown().await;
    drop(out);
    let _ = writer.await;
}

/// Writes queued frames, flushing when the queue is empty.
async fn write_frames<W: AsyncWrite + Unpin>(mut wr: W, mut frames: mpsc::Receiver<Frame>) {
    let mut encoder = Encoder::new();
    let mut buf = Vec::new();
    while let Some(frame) = frames.recv().await {
        encoder.encode(&frame, &mut buf);
        while let Ok(frame) = frames.try_recv() {
            encoder.encode(&frame, &mut buf);
        }
        if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
            return;
        }
        buf.clear();
    }
    let _ = wr.shutdown().await;
}

async fn send_error(out: &mpsc::Sender<Frame>, stream: u32, message: String) {
    let _ = out
        .send(Frame::Data {
            stream,
            fin: false,
            data: Bytes::from(message),
        })
        .await;
}

/// Resets a stream the client may not open.
async fn refuse(out: &mpsc::Sender<Frame>, stream: u32) {
    let status = spdy::status::PROTOCOL_ERROR;
    let _ = out.send(Frame::RstStream { stream, status }).await;
}

async fn end_stream(out: &mpsc::Sender<Frame>, stream: u32) {
    let _ = out
        .send(Frame::Data {
            stream,
            fin: true,
            data: Bytes::new(),
        })
        .await;
}

/// One forwarded connection.
struct Forward {
    out: mpsc::Sender<Frame>,
    events: mpsc::Sender<Event>,
    flow: Arc<Flow>,
    target: Arc<Target>,
    port: u16,
    data: u32,
    error: u32,
    window: Arc<Window>,
    reset: CancellationToken,
}

impl Forward {
    async fn run(self, to_pod: mpsc::Receiver<Bytes>) {
        let connected = tokio::select! {
            c = self.target.connect(self.port) => Some(c),
            () = self.reset.cancelled() => None,
        };
        let mut data_ended = false;
        match connected {
            Some(Ok(tcp)) => {
                tokio::select! {
                    ended = self.splice(tcp, to_pod) => data_ended = ended,
                    () = self.reset.cancelled() => {}
                }
            }
            Some(Err(message)) => {
                tracing::info!(port = self.port, %message, "port-forward failed");
                send_error(&self.out, self.error, message).await;
            }
            None => {}
        }
        if !data_ended {
            end_stream(&self.out, self.data).await;
        }
        end_stream(&self.out, self.error).await;
        let _ = self
            .events
            .send(Event::Finished(self.data, self.error))
            .await;
    }

    /// Copies both ways until both are done; whether the data stream's FIN was sent.
    async fn splice(&self, tcp: tokio::net::TcpStream, mut to_pod: mpsc::Receiver<Bytes>) -> bool {
        let (mut from, mut to) = tcp.into_split();
        let up = async {
            while let Some(chunk) = to_pod.recv().await {
                if to.write_all(&chunk).await.is_err() {
                    break;
                }
                let delta = chunk.len() as u32;
                for stream in [self.data, 0] {
                    let _ = self.out.send(Frame::WindowUpdate { stream, delta }).await;
                }
            }
            let _ = to.shutdown().await;
        };
        let down = async {
            let mut buf = vec![0u8; CHUNK];
            loop {
                let allowed = self.flow.reserve(&self.window, CHUNK).await;
                let n = match from.read(&mut buf[..allowed]).await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::debug!(error = %e, "reading from the pod");
                        0
                    }
                };
                self.flow.give_back(&self.window, allowed - n);
                if n == 0 {
                    break;
                }
                let frame = Frame::Data {
                    stream: self.data,
                    fin: false,
                    data: Bytes::copy_from_slice(&buf[..n]),
                };
                if self.out.send(frame).await.is_err() {
                    break;
                }
            }
            end_stream(&self.out, self.data).await;
        };
        tokio::pin!(up, down);
        tokio::select! {
            // The client is done sending: the pod may still answer.
            () = &mut up => down.await,
            // The pod is done: what the client still sends gets a second, as containerd gives
            // it, then the streams end (kubectl ≤ 1.30 waits for the error stream's end before
            // closing its local connection).
            () = &mut down => {
                let _ = tokio::time::timeout(Duration::from_secs(1), up).await;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests;
