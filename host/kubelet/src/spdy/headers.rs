//! SPDY/3 header blocks: the name/value block (a count, then length-prefixed lower-case names
//! and values, several values of one name joined by NUL) compressed with zlib primed with
//! [`DICTIONARY`]. Each direction of a connection keeps one compression context for all its
//! header blocks, each block ending with a sync flush, so a [`Deflater`] and an [`Inflater`]
//! live as long as the connection. The deflate itself is `flate2`'s (zlib-rs).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dictionary::DICTIONARY;
use super::{Cursor, Error};

/// A header block: names (lower case) and values, in order.
pub(crate) type Headers = Vec<(String, String)>;

/// The first value of header `name` in `headers`.
pub(crate) fn get<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.split('\0').next().unwrap_or_default())
}

/// The uncompressed name/value block.
fn encode_block(headers: &Headers) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (name, value) in headers {
        for part in [name.to_ascii_lowercase().as_bytes(), value.as_bytes()] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part);
        }
    }
    out
}

/// Parses an uncompressed name/value block.
fn decode_block(block: &[u8]) -> Result<Headers, Error> {
    let mut cursor = Cursor(block);
    let count = cursor.word()? as usize;
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let len = cursor.word()? as usize;
        let name = String::from_utf8_lossy(cursor.take(len)?).to_ascii_lowercase();
        let len = cursor.word()? as usize;
        let value = String::from_utf8_lossy(cursor.take(len)?).into_owned();
        headers.push((name, value));
    }
    Ok(headers)
}

/// The compression context of the header blocks one side sends.
pub(crate) struct Deflater(Compress);

impl Deflater {
    pub(crate) fn new() -> Self {
        let mut z = Compress::new(Compression::best(), true);
        z.set_dictionary(DICTIONARY)
            .expect("a fresh zlib stream takes a dictionary");
        Deflater(z)
    }

    /// The compressed header block, ending with a sync flush.
    pub(crate) fn compress(&mut self, headers: &Headers) -> Vec<u8> {
        let input = encode_block(headers);
        let mut out = Vec::with_capacity(input.len() + 64);
        let mut consumed = 0;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            let before = self.0.total_in();
            self.0
                .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
                .expect("deflate of an in-memory buffer");
            consumed += (self.0.total_in() - before) as usize;
            // Done once all input is in and the flush left spare room (nothing pending).
            if consumed == input.len() && out.len() < out.capacity() {
                return out;
            }
        }
    }
}

/// The decompression context of the header blocks the peer sends.
pub(crate) struct Inflater(Decompress);

impl Inflater {
    pub(crate) fn new() -> Self {
        Inflater(Decompress::new(true))
    }

    /// The headers of one compressed block.
    pub(crate) fn decompress(&mut self, input: &[u8]) -> Result<Headers, Error> {
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        let mut consumed = 0;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity());
            }
            let (before_in, before_out) = (self.0.total_in(), self.0.total_out());
            match self
                .0
                .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
            {
                Ok(Status::Ok | Status::BufError | Status::StreamEnd) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0
                        .set_dictionary(DICTIONARY)
                        .map_err(|e| Error::Protocol(format!("header dictionary: {e}")))?;
                }
                Err(e) => return Err(Error::Protocol(format!("header block: {e}"))),
            }
            consumed += (self.0.total_in() - before_in) as usize;
            let progressed = self.0.total_in() != before_in || self.0.total_out() != before_out;
            if consumed == input.len() && out.len() < out.capacity() {
                break;
            }
            if !progressed && consumed == input.len() {
                break;
            }
            if out.len() > super::MAX_CONTROL {
                return Err(Error::Protocol("header block too large".into()));
            }
        }
        decode_block(&out)
    }
}

/// Headers from string pairs.
#[cfg(test)]
pub(crate) fn from_pairs(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::from_pairs as h;
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn the_dictionary_is_spdy3s() {
        assert_eq!(DICTIONARY.len(), 1423);
        // zlib's DICTID (Adler-32) of the SPDY/3 dictionary, also in the sample below.
        let (mut a, mut b) = (1u32, 0u32);
        for byte in DICTIONARY {
            a = (a + u32::from(*byte)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    #[test]
    fn decodes_blocks_another_zlib_compressed_in_one_context() {
        // client-go's first two streams of a forwarded connection, compressed by C zlib 1.2.13
        // (level 9, the SPDY dictionary, a sync flush per block, one context), as spdystream
        // does with Go's compress/zlib.
        let first = hex("78f9e3c6a7c202253a703a2b294a4dcc851625aca9a0808614cb45e01c6061606100a4398b20d198094ade8c0600000000ffff");
        let second = hex("c2aa19540e2512d60b000000ffff");
        let mut inflater = Inflater::new();
        assert_eq!(
            inflater.decompress(&first).unwrap(),
            h(&[
                ("streamtype", "error"),
                ("port", "8080"),
                ("requestid", "0")
            ])
        );
        let data = inflater.decompress(&second).unwrap();
        assert_eq!(get(&data, "streamtype"), Some("data"));
        assert_eq!(get(&data, "port"), Some("8080"));
    }

    #[test]
    fn blocks_round_trip_through_one_context_each_way() {
        let (mut deflater, mut inflater) = (Deflater::new(), Inflater::new());
        let blocks = [
            h(&[]),
            h(&[("streamtype", "data"), ("port", "80"), ("requestid", "7")]),
            h(&[("Multi", "a\0b"), ("long", &"x".repeat(100_000))]),
        ];
        for block in &blocks {
            let compressed = deflater.compress(block);
            let back = inflater.decompress(&compressed).unwrap();
            let lowered: Headers = block
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
                .collect();
            assert_eq!(back, lowered);
        }
        assert_eq!(get(&blocks[2], "Multi"), Some("a"));
    }

    #[test]
    fn garbage_and_truncated_blocks_are_errors() {
        assert!(Inflater::new().decompress(b"not zlib at all").is_err());
        assert!(decode_block(&[0, 0, 0, 2, 0, 0, 0, 9, b'a']).is_err());
    }
}
