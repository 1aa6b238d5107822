//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`)
//! into the JSON the Go apiserver would have read for the same object.
//!
//! A body is the magic `k8s\0` followed by a `runtime.Unknown` envelope (typeMeta, raw object
//! bytes, contentEncoding, contentType). The object is decoded generically by a protobuf wire
//! reader driven by a table that `build.rs` generates from k8s-pb's prost structs (field tags and
//! kinds) and k8s-openapi (JSON names); see [`table`], [`convert`] and [`special`].

mod convert;
mod order;
mod special;
mod table;
mod wire;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

pub(crate) use order::kubernetes_order;
use wire::{Reader, LEN};

/// The prefix of every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\0";

/// Decodes a Kubernetes protobuf request body into JSON. Errors are human-readable (they become a 400 Status).
pub(crate) fn decode(body: &[u8]) -> Result<Value, String> {
    decode_at(body, 0).map_err(|e| format!("invalid protobuf body: {e}"))
}

/// The envelope fields of `runtime.Unknown`.
#[derive(Default)]
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
}

/// Decodes a `k8s\0`-prefixed object (a body, or one embedded in a RawExtension).
fn decode_at(body: &[u8], depth: u32) -> Result<Value, String> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or("the body does not start with the Kubernetes protobuf prefix \"k8s\\x00\"")?;
    let env = envelope(rest)?;
    if !env.content_encoding.is_empty() {
        return Err(format!(
            "unsupported contentEncoding {:?}",
            env.content_encoding
        ));
    }
    if env.kind.is_empty() || env.api_version.is_empty() {
        return Err("the envelope has no apiVersion or kind".into());
    }
    let msg = table::by_type(&env.api_version, &env.kind)
        .ok_or_else(|| format!("no protobuf schema for {} {}", env.api_version, env.kind))?;
    let Value::Object(fields) = convert::message(msg, env.raw, depth)? else {
        return Err(format!("{} is not an object kind", env.kind));
    };
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(env.api_version));
    out.insert("kind".into(), Value::String(env.kind));
    for (k, v) in fields {
        if k != "apiVersion" && k != "kind" {
            out.insert(k, v);
        }
    }
    Ok(Value::Object(out))
}

fn envelope(buf: &[u8]) -> Result<Envelope<'_>, String> {
    let mut env = Envelope::default();
    let mut r = Reader::new(buf);
    while !r.at_end() {
        let (tag, wire_type) = r.key()?;
        if !(1..=4).contains(&tag) {
            r.skip(wire_type, tag)?;
            continue;
        }
        if wire_type != LEN {
            return Err(format!("envelope field {tag} has wire type {wire_type}"));
        }
        let b = r.bytes()?;
        let text = || String::from_utf8_lossy(b).into_owned();
        match tag {
            1 => {
                let mut tm = Reader::new(b);
                while !tm.at_end() {
                    match tm.key()? {
                        (1, LEN) => {
                            env.api_version = String::from_utf8_lossy(tm.bytes()?).into_owned()
                        }
                        (2, LEN) => env.kind = String::from_utf8_lossy(tm.bytes()?).into_owned(),
                        (t, wt) => tm.skip(wt, t)?,
                    }
                }
            }
            2 => env.raw = b,
            3 => env.content_encoding = text(),
            _ => {}
        }
    }
    Ok(env)
}
