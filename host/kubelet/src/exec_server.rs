//! `kubectl exec` and `kubectl attach` on the agent: `GET /exec/{ns}/{pod}/{container}?command=…
//! &stdin=…&stdout=…&stderr=…&tty=…` and `/attach/{ns}/{pod}/{container}?…` (the kubelet's
//! paths and queries), upgraded to a WebSocket speaking
//! Kubernetes' channel protocol (`v5.channel.k8s.io`, or `v4.channel.k8s.io`): every binary
//! message starts with its channel — 0 stdin, 1 stdout, 2 stderr, 3 the final `Status`
//! (with the exit code as cause `ExitCode` when it is not 0), 4 terminal resize
//! (`{"Width":…,"Height":…}`, with `tty`), 255 "close channel" (v5, the client's end of
//! stdin). The command runs through the container's runtime, in a terminal when `tty` asks for
//! one (`kubectl exec -it`); runtimes that cannot exec (Wasm) and SPDY clients get a clear 400.
//! An attached client gets the container's output from then on (through its log writer) until
//! the container ends, and feeds its stdin and terminal size when the container has them.

use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use http::StatusCode;
use serde_json::json;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::pods::{Agent, RunningContainer};
use crate::runtime::{AttachInput, ExecRequest, OutputSink, Stream, TerminalSize};

/// The subprotocols served, preferred first.
pub(crate) const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// What the query asks for.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ExecOptions {
    pub(crate) command: Vec<String>,
    pub(crate) stdin: bool,
    pub(crate) stdout: bool,
    pub(crate) stderr: bool,
    pub(crate) tty: bool,
}

pub(crate) fn parse(query: &str) -> ExecOptions {
    let mut o = ExecOptions::default();
    let flag = |v: &str| v == "true" || v == "1";
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "command" => o.command.push(v.into_owned()),
            "input" | "stdin" => o.stdin = flag(&v),
            "output" | "stdout" => o.stdout = flag(&v),
            "error" | "stderr" => o.stderr = flag(&v),
            "tty" => o.tty = flag(&v),
            _ => {}
        }
    }
    o
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, message).into_response()
}

/// The final status message, as the kubelet writes it on channel 3.
pub(crate) fn status(result: &Result<i32, String>, command: &[String]) -> serde_json::Value {
    match result {
        Ok(0) => json!({"metadata": {}, "status": "Success"}),
        Ok(code) => json!({
            "metadata": {}, "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                command.join(" ")
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(message) => json!({
            "metadata": {}, "status": "Failure", "message": message,
            "reason": "InternalError", "code": 500,
        }),
    }
}

/// Forwards the process' output to the socket writer.
struct ToSocket {
    tx: mpsc::UnboundedSender<(u8, Vec<u8>)>,
    stdout: bool,
    stderr: bool,
}

impl OutputSink for ToSocket {
    fn write(&self, stream: Stream, bytes: &[u8]) {
        let channel = match stream {
            Stream::Stdout if self.stdout => 1,
            Stream::Stderr if self.stderr => 2,
            _ => return,
        };
        let _ = self.tx.send((channel, bytes.to_vec()));
    }
}

/// What a session was opened for.
#[derive(Clone, Copy, PartialEq)]
enum Verb {
    Exec,
    Attach,
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Verb::Exec => "exec",
            Verb::Attach => "attach",
        }
    }
}

/// Serves `/exec/{ns}/{pod}/{container}` and `/attach/{ns}/{pod}/{container}`. An attached
/// client gets the container's output from now on, and its stdin and terminal when it has
/// them (`stdin`, `tty` in its spec).
pub(crate) async fn stream(
    State(agent): State<Arc<Agent>>,
    Path((verb, ns, pod, container)): Path<(String, String, String, String)>,
    RawQuery(query): RawQuery,
    headers: http::HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let verb = match verb.as_str() {
        "exec" => Verb::Exec,
        "attach" => Verb::Attach,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let opts = parse(query.as_deref().unwrap_or_default());
    let Ok(ws) = ws else {
        let upgrade = headers
            .get(http::header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        return bad_request(format!(
            "{} needs a WebSocket upgrade with subprotocol {} (got upgrade {upgrade:?}); SPDY is not supported",
            verb.name(),
            PROTOCOLS.join(" or ")
        ));
    };
    if verb == Verb::Exec && opts.command.is_empty() {
        return bad_request("you must specify at least one command for the container".into());
    }
    let key = (ns, pod.clone(), container.clone());
    let Some(running) = agent.running(&key) else {
        return bad_request(format!(
            "container {container} is not running in pod {pod}; cannot {} it",
            match verb {
                Verb::Exec => "exec into",
                Verb::Attach => "attach to",
            }
        ));
    };
    let span =
        tracing::info_span!("stream", verb = verb.name(), pod = %pod, container = %container);
    span.in_scope(|| tracing::info!(command = ?opts.command, tty = opts.tty, "session"));
    ws.protocols(PROTOCOLS)
        .on_upgrade(move |socket| session(socket, verb, running, opts).instrument(span))
}

/// What the client sends and where the output goes, for one session.
struct Streams {
    stdin: Option<mpsc::Receiver<bytes::Bytes>>,
    resize: Option<mpsc::Receiver<TerminalSize>>,
    output: Arc<ToSocket>,
}

/// Runs the exec'd command, or follows the attached container until it ends or the client
/// goes away; the exit code for the final Status.
async fn run(
    verb: Verb,
    running: RunningContainer,
    command: Vec<String>,
    streams: Streams,
) -> Result<i32, String> {
    let RunningContainer {
        runtime,
        id,
        output,
    } = running;
    if verb == Verb::Exec {
        let request = ExecRequest {
            command,
            stdin: streams.stdin,
            output: streams.output,
            tty: streams.resize,
        };
        return runtime.exec(&id, request).await.map_err(|e| e.to_string());
    }
    let mut from_container = output.subscribe();
    drop(output); // the subscription ends with the run, not with this session
    if streams.stdin.is_some() || streams.resize.is_some() {
        let input = AttachInput {
            stdin: streams.stdin,
            resize: streams.resize,
        };
        if let Err(e) = runtime.attach(&id, input).await {
            tracing::debug!(error = %e, "attached without input");
        }
    }
    let to_client = streams.output;
    loop {
        tokio::select! {
            got = from_container.recv() => match got {
                Ok((stream, bytes)) => to_client.write(stream, &bytes),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "attached client fell behind");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(0),
            },
            () = to_client.tx.closed() => return Ok(0),
        }
    }
}

async fn session(socket: WebSocket, verb: Verb, running: RunningContainer, opts: ExecOptions) {
    let (mut sink, mut incoming) = socket.split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<(u8, Vec<u8>)>();
    let (stdin_tx, stdin_rx) = mpsc::channel::<bytes::Bytes>(16);
    let (resize_tx, resize_rx) = mpsc::channel::<TerminalSize>(4);
    let streams = Streams {
        stdin: opts.stdin.then_some(stdin_rx),
        resize: opts.tty.then_some(resize_rx),
        output: Arc::new(ToSocket {
            tx: out_tx,
            stdout: opts.stdout,
            stderr: opts.stderr,
        }),
    };
    let command = opts.command.clone();
    let run = tokio::spawn(run(verb, running, command.clone(), streams));

    // The client's messages: stdin (channel 0) until it closes it (255, 0) or goes away.
    let reader = tokio::spawn(async move {
        let mut stdin = Some(stdin_tx);
        while let Some(Ok(msg)) = incoming.next().await {
            match msg {
                Message::Binary(data) if data.first() == Some(&0) => {
                    if let Some(tx) = &stdin {
                        if tx.send(data.slice(1..)).await.is_err() {
                            stdin = None;
                        }
                    }
                }
                Message::Binary(data) if data.as_ref() == [255, 0] => stdin = None,
                Message::Binary(data) if data.first() == Some(&4) => {
                    match serde_json::from_slice::<TerminalSize>(&data[1..]) {
                        Ok(size) => {
                            let _ = resize_tx.try_send(size);
                        }
                        Err(e) => tracing::debug!(error = %e, "bad resize message"),
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    });
    let mut run = run;
    let result = loop {
        tokio::select! {
            Some((channel, bytes)) = out_rx.recv() => {
                let mut frame = Vec::with_capacity(bytes.len() + 1);
                frame.push(channel);
                frame.extend_from_slice(&bytes);
                if sink.send(Message::Binary(frame.into())).await.is_err() {
                    break Err("the client went away".to_string());
                }
            }
            r = &mut run => break r.map_err(|e| e.to_string()).and_then(|r| r),
        }
    };
    // Output still queued when the process ended.
    while let Ok((channel, bytes)) = out_rx.try_recv() {
        let mut frame = vec![channel];
        frame.extend_from_slice(&bytes);
        let _ = sink.send(Message::Binary(frame.into())).await;
    }
    let mut frame = vec![3u8];
    frame.extend_from_slice(status(&result, &command).to_string().as_bytes());
    let _ = sink.send(Message::Binary(frame.into())).await;
    // A normal closure (1000): kubectl reads it as the end of every channel.
    let close = CloseFrame {
        code: 1000,
        reason: "".into(),
    };
    let _ = sink.send(Message::Close(Some(close))).await;
    reader.abort();
    tracing::info!(result = ?result, "exec ended");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_status_follow_the_kubelet() {
        let o = parse(
            "command=sh&command=-c&command=echo%20hi&stdin=true&stdout=true&stderr=1&tty=false",
        );
        assert_eq!(o.command, ["sh", "-c", "echo hi"]);
        assert!(o.stdin && o.stdout && o.stderr && !o.tty);
        assert_eq!(status(&Ok(0), &[])["status"], "Success");
        let failed = status(&Ok(3), &["sh".into()]);
        assert_eq!(failed["details"]["causes"][0]["message"], "3");
        assert_eq!(failed["reason"], "NonZeroExitCode");
    }
}
