//! Messages whose JSON form is not an object: Time, MicroTime, Duration, Quantity,
//! IntOrString, the raw-JSON carriers (RawExtension, FieldsV1, apiextensions JSON) and the
//! apiextensions "schema or …" unions.

use chrono::DateTime;
use serde_json::Value;

use super::convert;
use super::wire::{Reader, LEN, VARINT};

/// A message type with a special JSON form.
#[derive(Clone, Copy, Debug)]
pub(super) enum Kind {
    Time,
    MicroTime,
    Duration,
    Quantity,
    IntOrString,
    RawJson,
    /// `JSONSchemaPropsOr{Array,Bool,StringArray}`: the schema if set, else the other member.
    SchemaOr(OrOther),
}

/// The non-schema member of a `JSONSchemaPropsOr…` union.
#[derive(Clone, Copy, Debug)]
pub(super) enum OrOther {
    Bool,
    List,
}

/// The special kind of a message, by its table name.
pub(super) fn kind(name: &str) -> Option<Kind> {
    let (module, ty) = name.rsplit_once('/')?;
    Some(match (module, ty) {
        ("apimachinery/pkg/apis/meta/v1", "Time") => Kind::Time,
        ("apimachinery/pkg/apis/meta/v1", "MicroTime") => Kind::MicroTime,
        ("apimachinery/pkg/apis/meta/v1", "Duration") => Kind::Duration,
        ("apimachinery/pkg/apis/meta/v1", "FieldsV1") => Kind::RawJson,
        ("apimachinery/pkg/runtime", "RawExtension") => Kind::RawJson,
        ("apimachinery/pkg/api/resource", "Quantity") => Kind::Quantity,
        ("apimachinery/pkg/util/intstr", "IntOrString") => Kind::IntOrString,
        (m, "JSON") if m.starts_with("apiextensions_apiserver/") => Kind::RawJson,
        (m, "JsonSchemaPropsOrArray") if m.starts_with("apiextensions_apiserver/") => {
            Kind::SchemaOr(OrOther::List)
        }
        (m, "JsonSchemaPropsOrBool") if m.starts_with("apiextensions_apiserver/") => {
            Kind::SchemaOr(OrOther::Bool)
        }
        (m, "JsonSchemaPropsOrStringArray") if m.starts_with("apiextensions_apiserver/") => {
            Kind::SchemaOr(OrOther::List)
        }
        _ => return None,
    })
}

/// Seconds of Go's zero `time.Time` (0001-01-01T00:00:00Z), which JSON writes as null.
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// Converts a special message; `Value::Null` means Go would write null (the field is absent).
pub(super) fn decode(kind: Kind, msg: u16, buf: &[u8], depth: u32) -> Result<Value, String> {
    match kind {
        Kind::Time | Kind::MicroTime => {
            let (seconds, nanos) = (int(buf, 1)?, int(buf, 2)?);
            if seconds == GO_ZERO_TIME && nanos == 0 || buf.is_empty() {
                return Ok(Value::Null);
            }
            let t = u32::try_from(nanos)
                .ok()
                .and_then(|n| DateTime::from_timestamp(seconds, n))
                .filter(|t| (0..=9999).contains(&chrono::Datelike::year(t)))
                .ok_or_else(|| format!("timestamp {seconds}s {nanos}ns out of range"))?;
            let format = if matches!(kind, Kind::Time) {
                "%Y-%m-%dT%H:%M:%SZ"
            } else {
                "%Y-%m-%dT%H:%M:%S%.6fZ"
            };
            Ok(Value::String(t.format(format).to_string()))
        }
        Kind::Duration => Ok(Value::String(go_duration(int(buf, 1)?))),
        Kind::Quantity => match string(buf, 1)? {
            Some(s) if !s.is_empty() => Ok(Value::String(s)),
            _ => Ok(Value::String("0".into())),
        },
        Kind::IntOrString => {
            if int(buf, 1)? == 1 {
                Ok(Value::String(string(buf, 3)?.unwrap_or_default()))
            } else {
                Ok(Value::from(int(buf, 2)? as i32))
            }
        }
        Kind::RawJson => match bytes(buf, 1)? {
            None | Some([]) => Ok(Value::Null),
            Some(raw) if raw.starts_with(super::MAGIC) => super::decode_at(raw, depth + 1),
            Some(raw) => serde_json::from_slice(raw).map_err(|e| format!("embedded JSON: {e}")),
        },
        Kind::SchemaOr(other) => {
            let mut obj = convert::fields(msg, buf, depth)?;
            // The other member's JSON name is whatever the table calls it; it is the only one left.
            let schema = obj.shift_remove("schema");
            let fallback = || match other {
                OrOther::Bool => Value::Bool(false),
                OrOther::List => Value::Array(Vec::new()),
            };
            Ok(schema
                .or_else(|| obj.into_iter().next().map(|(_, v)| v))
                .unwrap_or_else(fallback))
        }
    }
}

/// The last varint field `tag` of a message (0 if absent).
fn int(buf: &[u8], tag: u32) -> Result<i64, String> {
    let mut out = 0;
    let mut r = Reader::new(buf);
    while !r.at_end() {
        match r.key()? {
            (t, VARINT) if t == tag => out = r.varint()? as i64,
            (t, wt) => r.skip(wt, t)?,
        }
    }
    Ok(out)
}

/// The last length-delimited field `tag` of a message.
fn bytes(buf: &[u8], tag: u32) -> Result<Option<&[u8]>, String> {
    let mut out = None;
    let mut r = Reader::new(buf);
    while !r.at_end() {
        match r.key()? {
            (t, LEN) if t == tag => out = Some(r.bytes()?),
            (t, wt) => r.skip(wt, t)?,
        }
    }
    Ok(out)
}

fn string(buf: &[u8], tag: u32) -> Result<Option<String>, String> {
    Ok(bytes(buf, tag)?.map(|b| String::from_utf8_lossy(b).into_owned()))
}

/// Formats nanoseconds like Go's `time.Duration.String` (`1h2m3.5s`, `1.5ms`, `0s`).
pub(super) fn go_duration(d: i64) -> String {
    let mut u = d.unsigned_abs();
    let sign = if d < 0 { "-" } else { "" };
    if u == 0 {
        return "0s".into();
    }
    if u < 1_000_000_000 {
        let (prec, unit) = match u {
            0..1_000 => (0, "ns"),
            1_000..1_000_000 => (3, "µs"),
            _ => (6, "ms"),
        };
        let (frac, whole) = fraction(u, prec);
        return format!("{sign}{whole}{frac}{unit}");
    }
    let (frac, secs) = fraction(u, 9);
    let mut out = format!("{}{frac}s", secs % 60);
    u = secs / 60;
    if u > 0 {
        out = format!("{}m{out}", u % 60);
        u /= 60;
        if u > 0 {
            out = format!("{u}h{out}");
        }
    }
    format!("{sign}{out}")
}

/// Splits `v` into `v / 10^prec` and its fraction as `.ddd` without trailing zeros.
fn fraction(v: u64, prec: u32) -> (String, u64) {
    let scale = 10u64.pow(prec);
    let digits = v % scale;
    if digits == 0 {
        return (String::new(), v / scale);
    }
    let text = format!(".{digits:0width$}", width = prec as usize);
    (text.trim_end_matches('0').to_string(), v / scale)
}
