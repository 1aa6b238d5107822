//! A session driven by a client made of this crate's codec, forwarding to listeners on the
//! test's loopback.

use super::*;
use tokio::io::DuplexStream;
use tokio::net::TcpListener;

/// The client end of a session.
struct Client {
    encoder: Encoder,
    decoder: Decoder,
    rd: tokio::io::ReadHalf<DuplexStream>,
    wr: tokio::io::WriteHalf<DuplexStream>,
}

impl Client {
    fn start() -> Client {
        let (ours, theirs) = tokio::io::duplex(256 * 1024);
        let target = Target {
            pod: "uid-1".into(),
            netns: None,
        };
        tokio::spawn(serve(theirs, Arc::new(target)));
        let (rd, wr) = tokio::io::split(ours);
        Client {
            encoder: Encoder::new(),
            decoder: Decoder::new(),
            rd,
            wr,
        }
    }

    async fn send(&mut self, frame: Frame) {
        let mut buf = Vec::new();
        self.encoder.encode(&frame, &mut buf);
        self.wr.write_all(&buf).await.unwrap();
    }

    async fn recv(&mut self) -> Option<Frame> {
        tokio::time::timeout(Duration::from_secs(5), self.decoder.read(&mut self.rd))
            .await
            .expect("a frame within 5 s")
            .unwrap()
    }

    /// Opens the error and data streams of request `id` (streams `first`, `first + 2`).
    async fn open(&mut self, first: u32, id: u32, port: u16) {
        for (stream, kind) in [(first, "error"), (first + 2, "data")] {
            let port = port.to_string();
            let id = id.to_string();
            let headers =
                headers::from_pairs(&[("streamtype", kind), ("port", &port), ("requestid", &id)]);
            self.send(Frame::SynStream {
                stream,
                associated: 0,
                priority: 0,
                fin: kind == "error",
                unidirectional: false,
                headers,
            })
            .await;
        }
    }

    /// What arrives until both streams of a pair ended: (data bytes, error text), ignoring
    /// replies and window updates.
    async fn drain(&mut self, error: u32, data: u32) -> (Vec<u8>, String) {
        let (mut bytes, mut text, mut ended) = (Vec::new(), String::new(), 0);
        while ended < 2 {
            match self.recv().await.expect("the session ended early") {
                Frame::Data {
                    stream,
                    fin,
                    data: d,
                } => {
                    if stream == data {
                        bytes.extend_from_slice(&d);
                    } else if stream == error {
                        text.push_str(&String::from_utf8_lossy(&d));
                    }
                    if fin && (stream == data || stream == error) {
                        ended += 1;
                    }
                }
                Frame::SynReply { .. } | Frame::WindowUpdate { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        (bytes, text)
    }
}

/// A listener answering each connection with `greeting`, then echoing until EOF.
async fn echo_server(greeting: Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let greeting = greeting.clone();
            tokio::spawn(async move {
                conn.write_all(&greeting).await.unwrap();
                let (mut r, mut w) = conn.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

fn data(stream: u32, fin: bool, bytes: &'static [u8]) -> Frame {
    Frame::Data {
        stream,
        fin,
        data: Bytes::from_static(bytes),
    }
}

#[tokio::test]
async fn streams_are_replied_to_and_spliced_with_half_closes() {
    let port = echo_server(b"hi ".to_vec()).await;
    let mut client = Client::start();
    client.open(1, 0, port).await;
    for stream in [1, 3] {
        let reply = client.recv().await.unwrap();
        assert!(matches!(reply, Frame::SynReply { stream: s, fin: false, .. } if s == stream));
    }
    client.send(data(3, false, b"one ")).await;
    client.send(data(3, true, b"two")).await;
    let (bytes, error) = client.drain(1, 3).await;
    assert_eq!(bytes, b"hi one two");
    assert_eq!(error, "");
    // Pings are echoed.
    client.send(Frame::Ping { id: 7 }).await;
    assert_eq!(client.recv().await, Some(Frame::Ping { id: 7 }));
}

#[tokio::test]
async fn a_closed_port_is_reported_on_the_error_stream_and_the_session_goes_on() {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let open = echo_server(b"up".to_vec()).await;
    let mut client = Client::start();
    client.open(1, 0, closed).await;
    let (_, error) = client.drain(1, 3).await;
    assert!(
        error.starts_with(&format!(
            "error forwarding port {closed} to pod uid-1, uid : "
        )),
        "{error}"
    );
    assert!(error.ends_with("connect: connection refused"), "{error}");
    // Two connections at once, on the same session.
    client.open(5, 1, open).await;
    client.open(9, 2, open).await;
    client.send(data(7, true, b"a")).await;
    client.send(data(11, true, b"b")).await;
    let (mut first, mut second) = (Vec::new(), Vec::new());
    let mut ended = 0;
    while ended < 4 {
        if let Some(Frame::Data { stream, fin, data }) = client.recv().await {
            match stream {
                7 => first.extend_from_slice(&data),
                11 => second.extend_from_slice(&data),
                _ => {}
            }
            ended += usize::from(fin);
        }
    }
    assert_eq!(
        (first.as_slice(), second.as_slice()),
        (&b"upa"[..], &b"upb"[..])
    );
}

#[tokio::test]
async fn bad_streams_are_refused() {
    let mut client = Client::start();
    client
        .send(Frame::SynStream {
            stream: 1,
            associated: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers: vec![("streamtype".into(), "data".into())],
        })
        .await;
    assert_eq!(
        client.recv().await,
        Some(Frame::RstStream {
            stream: 1,
            status: spdy::status::PROTOCOL_ERROR
        })
    );
    assert_eq!(
        validate(&vec![("port".into(), "0".into())]),
        Err("port \"0\" must be > 0".into())
    );
}

/// Bytes of data frames on `stream` until nothing arrives for 300 ms.
async fn received(client: &mut Client, stream: u32) -> usize {
    let mut total = 0;
    while let Ok(frame) = tokio::time::timeout(
        Duration::from_millis(300),
        client.decoder.read(&mut client.rd),
    )
    .await
    {
        if let Some(Frame::Data {
            stream: s, data, ..
        }) = frame.unwrap()
        {
            if s == stream {
                total += data.len();
            }
        }
    }
    total
}

#[tokio::test]
async fn a_peer_doing_flow_control_gets_no_more_than_its_windows() {
    let big = vec![5u8; 200 * 1024];
    let port = echo_server(big).await;
    // A peer that says it keeps windows (a smaller stream window) is held to them.
    let mut client = Client::start();
    client
        .send(Frame::Settings {
            entries: vec![(0, spdy::SETTINGS_INITIAL_WINDOW_SIZE, 10_000)],
        })
        .await;
    client.open(1, 0, port).await;
    assert_eq!(received(&mut client, 3).await, 10_000);
    client
        .send(Frame::WindowUpdate {
            stream: 3,
            delta: 100_000,
        })
        .await;
    // Now the connection's window (64 KiB) is the limit.
    assert_eq!(received(&mut client, 3).await, 65_536 - 10_000);
    client
        .send(Frame::WindowUpdate {
            stream: 0,
            delta: 1 << 20,
        })
        .await;
    assert_eq!(received(&mut client, 3).await, 100_000 - (65_536 - 10_000));

    // spdystream (kubectl) never updates windows, and gets everything.
    let mut client = Client::start();
    client.open(1, 0, port).await;
    assert_eq!(received(&mut client, 3).await, 200 * 1024);
}

#[tokio::test]
async fn data_consumed_by_the_pod_is_credited_back() {
    let port = echo_server(Vec::new()).await;
    let mut client = Client::start();
    client.open(1, 0, port).await;
    client.send(data(3, false, b"12345")).await;
    let mut updates = Vec::new();
    while updates.len() < 2 {
        if let Some(Frame::WindowUpdate { stream, delta }) = client.recv().await {
            updates.push((stream, delta));
        }
    }
    assert_eq!(updates, [(3, 5), (0, 5)]);
}
