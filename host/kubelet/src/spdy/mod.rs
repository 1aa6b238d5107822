//! SPDY/3.1 framing (draft-mbelshe-httpbis-spdy-00 plus 3.1's connection-level flow control),
//! the protocol `kubectl port-forward` speaks, plainly after an `Upgrade: SPDY/3.1` or tunnelled
//! inside a WebSocket. No maintained Rust SPDY crate exists, so this is a small hand-written
//! codec: [`Frame`] is every frame type, [`Encoder`] turns frames into bytes and [`Decoder`]
//! reads them from a byte stream, each holding its direction's header compression context
//! ([`headers`]). What the frames mean for a session (replies, windows, pings) is
//! [`crate::port_forward`]'s business.
//!
//! Wire format: a control frame starts with the bit 1, version (15 bits, 3) and type
//! (16 bits); a data frame with the bit 0 and its stream id (31 bits); both continue with
//! flags (8 bits) and the payload length (24 bits).

mod dictionary;
pub(crate) mod headers;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

pub(crate) use headers::Headers;
use headers::{Deflater, Inflater};

/// The protocol version this codec speaks.
const VERSION: u16 = 3;
/// The flag ending a stream's direction (data and SYN_STREAM / SYN_REPLY / HEADERS).
const FLAG_FIN: u8 = 0x01;
/// SYN_STREAM's flag for a stream the receiver cannot send on.
const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// The largest control frame read (header blocks of a port-forward are a few dozen bytes).
pub(crate) const MAX_CONTROL: usize = 1 << 20;
/// SETTINGS id of the initial per-stream window.
pub(crate) const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;
/// The initial send window of every stream and of the connection, in bytes.
pub(crate) const DEFAULT_WINDOW: u32 = 64 * 1024;

/// RST_STREAM status codes (draft section 2.6.3).
pub(crate) mod status {
    /// The stream is not valid here.
    pub(crate) const PROTOCOL_ERROR: u32 = 1;
}

/// What can go wrong reading frames.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The byte stream failed.
    #[error("reading frames: {0}")]
    Io(#[from] std::io::Error),
    /// The peer broke the protocol.
    #[error("SPDY protocol error: {0}")]
    Protocol(String),
}

/// One SPDY/3.1 frame.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Frame {
    /// Bytes of a stream; `fin` ends the sender's direction.
    Data { stream: u32, fin: bool, data: Bytes },
    /// Opens a stream.
    SynStream {
        stream: u32,
        associated: u32,
        priority: u8,
        fin: bool,
        unidirectional: bool,
        headers: Headers,
    },
    /// Accepts a stream.
    SynReply {
        stream: u32,
        fin: bool,
        headers: Headers,
    },
    /// Ends a stream abnormally.
    RstStream { stream: u32, status: u32 },
    /// Connection settings: (flags, id, value).
    Settings { entries: Vec<(u8, u32, u32)> },
    /// Asks for (or is) an echo.
    Ping { id: u32 },
    /// The sender accepts no new streams after `last_good`.
    GoAway { last_good: u32, status: u32 },
    /// More headers for a stream.
    Headers {
        stream: u32,
        fin: bool,
        headers: Headers,
    },
    /// The receiver of `stream` (0: the connection) may send `delta` more bytes.
    WindowUpdate { stream: u32, delta: u32 },
    /// A control frame type this codec does not know; ignored, as the draft says.
    Unknown { kind: u16 },
}

/// A reader of big-endian fields out of a payload.
pub(crate) struct Cursor<'a>(pub(crate) &'a [u8]);

impl<'a> Cursor<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.0.len() < n {
            return Err(Error::Protocol("truncated frame".into()));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    pub(crate) fn word(&mut self) -> Result<u32, Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Writes frames, compressing header blocks in this direction's context.
pub(crate) struct Encoder(Deflater);

impl Encoder {
    pub(crate) fn new() -> Self {
        Encoder(Deflater::new())
    }

    /// Appends `frame`'s bytes to `out`.
    pub(crate) fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) {
        let control = |out: &mut Vec<u8>, kind: u16, flags: u8, payload: &[u8]| {
            out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
            out.extend_from_slice(&kind.to_be_bytes());
            out.extend_from_slice(&(u32::from(flags) << 24 | payload.len() as u32).to_be_bytes());
            out.extend_from_slice(payload);
        };
        let words = |ws: &[u32]| -> Vec<u8> { ws.iter().flat_map(|w| w.to_be_bytes()).collect() };
        let fin = |f: bool| if f { FLAG_FIN } else { 0 };
        match frame {
            Frame::Data {
                stream,
                fin: f,
                data,
            } => {
                out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(
                    &(u32::from(fin(*f)) << 24 | data.len() as u32).to_be_bytes(),
                );
                out.extend_from_slice(data);
            }
            Frame::SynStream {
                stream,
                associated,
                priority,
                fin: f,
                unidirectional,
                headers,
            } => {
                let mut payload = words(&[*stream, *associated]);
                payload.extend_from_slice(&[priority << 5, 0]);
                payload.extend(self.0.compress(headers));
                let flags = fin(*f)
                    | if *unidirectional {
                        FLAG_UNIDIRECTIONAL
                    } else {
                        0
                    };
                control(out, 1, flags, &payload);
            }
            Frame::SynReply {
                stream,
                fin: f,
                headers,
            }
            | Frame::Headers {
                stream,
                fin: f,
                headers,
            } => {
                let kind = if matches!(frame, Frame::SynReply { .. }) {
                    2
                } else {
                    8
                };
                let mut payload = words(&[*stream]);
                payload.extend(self.0.compress(headers));
                control(out, kind, fin(*f), &payload);
            }
            Frame::RstStream { stream, status } => {
                control(out, 3, 0, &words(&[*stream, *status]));
            }
            Frame::Settings { entries } => {
                let mut payload = words(&[entries.len() as u32]);
                for (flags, id, value) in entries {
                    payload.extend(words(&[u32::from(*flags) << 24 | id, *value]));
                }
                control(out, 4, 0, &payload);
            }
            Frame::Ping { id } => control(out, 6, 0, &words(&[*id])),
            Frame::GoAway { last_good, status } => {
                control(out, 7, 0, &words(&[*last_good, *status]));
            }
            Frame::WindowUpdate { stream, delta } => {
                control(out, 9, 0, &words(&[*stream, *delta]));
            }
            Frame::Unknown { kind } => control(out, *kind, 0, &[]),
        }
    }
}

/// Reads frames, decompressing header blocks in the peer's context.
pub(crate) struct Decoder(Inflater);

impl Decoder {
    pub(crate) fn new() -> Self {
        Decoder(Inflater::new())
    }

    /// The next frame, or `None` at a clean end of the stream (between frames).
    pub(crate) async fn read<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
    ) -> Result<Option<Frame>, Error> {
        let mut head = [0u8; 8];
        let mut got = 0;
        while got < head.len() {
            match r.read(&mut head[got..]).await? {
                0 if got == 0 => return Ok(None),
                0 => return Err(Error::Protocol("connection ended inside a frame".into())),
                n => got += n,
            }
        }
        let second = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let (flags, len) = ((second >> 24) as u8, (second & 0x00ff_ffff) as usize);
        let control = head[0] & 0x80 != 0;
        if control && len > MAX_CONTROL {
            return Err(Error::Protocol(format!("control frame of {len} bytes")));
        }
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload).await?;
        self.parse(head, flags, &payload).map(Some)
    }

    /// The frame with header `head` (first 8 bytes) and `payload`.
    fn parse(&mut self, head: [u8; 8], flags: u8, payload: &[u8]) -> Result<Frame, Error> {
        let first = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let fin = flags & FLAG_FIN != 0;
        if first & 0x8000_0000 == 0 {
            return Ok(Frame::Data {
                stream: first,
                fin,
                data: Bytes::copy_from_slice(payload),
            });
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(Error::Protocol(format!("SPDY version {version}")));
        }
        let mut c = Cursor(payload);
        let stream_id = |c: &mut Cursor| c.word().map(|w| w & 0x7fff_ffff);
        Ok(match (first & 0xffff) as u16 {
            1 => {
                let stream = stream_id(&mut c)?;
                let associated = stream_id(&mut c)?;
                let priority = c.take(2)?[0] >> 5;
                Frame::SynStream {
                    stream,
                    associated,
                    priority,
                    fin,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers: self.0.decompress(c.0)?,
                }
            }
            kind @ (2 | 8) => {
                let stream = stream_id(&mut c)?;
                let headers = self.0.decompress(c.0)?;
                match kind {
                    2 => Frame::SynReply {
                        stream,
                        fin,
                        headers,
                    },
                    _ => Frame::Headers {
                        stream,
                        fin,
                        headers,
                    },
                }
            }
            3 => Frame::RstStream {
                stream: stream_id(&mut c)?,
                status: c.word()?,
            },
            4 => {
                let count = c.word()?;
                let mut entries = Vec::new();
                for _ in 0..count {
                    let flags_id = c.word()?;
                    entries.push(((flags_id >> 24) as u8, flags_id & 0x00ff_ffff, c.word()?));
                }
                Frame::Settings { entries }
            }
            6 => Frame::Ping { id: c.word()? },
            7 => Frame::GoAway {
                last_good: stream_id(&mut c)?,
                status: c.word().unwrap_or(0),
            },
            9 => Frame::WindowUpdate {
                stream: stream_id(&mut c)?,
                delta: c.word()? & 0x7fff_ffff,
            },
            kind => Frame::Unknown { kind },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::headers::from_pairs as headers;
    use super::*;

    #[tokio::test]
    async fn every_frame_round_trips_through_one_byte_stream() {
        let frames = vec![
            Frame::SynStream {
                stream: 1,
                associated: 0,
                priority: 3,
                fin: false,
                unidirectional: false,
                headers: headers(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
            },
            Frame::SynStream {
                stream: 3,
                associated: 1,
                priority: 0,
                fin: true,
                unidirectional: true,
                headers: headers(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]),
            },
            Frame::SynReply {
                stream: 3,
                fin: false,
                headers: vec![],
            },
            Frame::Data {
                stream: 3,
                fin: false,
                data: Bytes::from(vec![7u8; 70_000]),
            },
            Frame::Data {
                stream: 3,
                fin: true,
                data: Bytes::new(),
            },
            Frame::RstStream {
                stream: 1,
                status: 5,
            },
            Frame::Settings {
                entries: vec![(0, SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20), (1, 4, 100)],
            },
            Frame::Ping { id: 1 },
            Frame::GoAway {
                last_good: 3,
                status: 0,
            },
            Frame::Headers {
                stream: 3,
                fin: true,
                headers: headers(&[("x", "y")]),
            },
            Frame::WindowUpdate {
                stream: 0,
                delta: 65_536,
            },
            Frame::Unknown { kind: 0x42 },
        ];
        let mut encoder = Encoder::new();
        let mut bytes = Vec::new();
        for f in &frames {
            encoder.encode(f, &mut bytes);
        }
        // Read back in small pieces, as a socket may deliver them.
        let (mut tx, mut rx) = tokio::io::duplex(7);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            tx.write_all(&bytes).await.unwrap();
        });
        let mut decoder = Decoder::new();
        for f in &frames {
            assert_eq!(decoder.read(&mut rx).await.unwrap().as_ref(), Some(f));
        }
        writer.await.unwrap();
        assert!(decoder.read(&mut rx).await.unwrap().is_none());
    }

    #[test]
    fn the_wire_format_is_the_drafts() {
        let mut out = Vec::new();
        Encoder::new().encode(&Frame::Ping { id: 5 }, &mut out);
        assert_eq!(out, [0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 5]);
        out.clear();
        let data = Frame::Data {
            stream: 3,
            fin: true,
            data: Bytes::from_static(b"hi"),
        };
        Encoder::new().encode(&data, &mut out);
        assert_eq!(out, [0, 0, 0, 3, 1, 0, 0, 2, b'h', b'i']);
        out.clear();
        let update = Frame::WindowUpdate {
            stream: 3,
            delta: 0x1234,
        };
        Encoder::new().encode(&update, &mut out);
        assert_eq!(
            out,
            [0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0x12, 0x34]
        );
    }

    #[tokio::test]
    async fn bad_input_is_an_error_not_a_panic() {
        let cases: [&[u8]; 4] = [
            // SPDY/2.
            &[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1],
            // A ping without its id.
            &[0x80, 3, 0, 6, 0, 0, 0, 0],
            // Ends inside the frame header.
            &[0x80, 3, 0],
            // A control frame claiming 16 MiB.
            &[0x80, 3, 0, 1, 0, 0xff, 0xff, 0xff],
        ];
        for case in cases {
            let mut input = case;
            assert!(Decoder::new().read(&mut input).await.is_err(), "{case:?}");
        }
    }
}
