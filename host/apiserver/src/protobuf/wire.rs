//! A minimal protobuf wire-format reader: varints, fixed-width values and length-delimited bytes.

/// Wire type of varint fields (int32, int64, bool).
pub(super) const VARINT: u8 = 0;
/// Wire type of fixed 64-bit fields (double).
pub(super) const FIXED64: u8 = 1;
/// Wire type of strings, bytes, messages and packed repeated scalars.
pub(super) const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// A cursor over one message's bytes.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(super) fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err("truncated varint".into());
            };
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err("varint overflows 64 bits".into());
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint overflows 64 bits".into())
    }

    /// The next field's number and wire type.
    pub(super) fn key(&mut self) -> Result<(u32, u8), String> {
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3)
            .map_err(|_| format!("field number {} out of range", key >> 3))?;
        if tag == 0 {
            return Err("field number 0".into());
        }
        Ok((tag, (key & 7) as u8))
    }

    pub(super) fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| "length out of range".to_string())?;
        self.take(len)
    }

    pub(super) fn fixed64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(len).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err("truncated message".into());
        };
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Skips the value of a field the table does not know (what Go does with unknown fields).
    pub(super) fn skip(&mut self, wire_type: u8, tag: u32) -> Result<(), String> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.take(4).map(drop),
            START_GROUP => loop {
                let (t, w) = self.key()?;
                if w == END_GROUP {
                    return if t == tag {
                        Ok(())
                    } else {
                        Err("mismatched end group".into())
                    };
                }
                // Groups are not used by Kubernetes; nested groups are refused to bound recursion.
                if w == START_GROUP {
                    return Err("nested protobuf groups are not supported".into());
                }
                self.skip(w, t)?;
            },
            other => Err(format!("invalid wire type {other}")),
        }
    }
}
