//! Table-driven conversion of one protobuf message into its Kubernetes JSON form.
//!
//! Go's zero values mean "unset" for non-pointer Go fields, and gogo-protobuf writes those
//! fields even when zero (`namespace: ""`, `hostPort: 0`). They are dropped, as Go's JSON
//! encoder (`omitempty`) and its defaulting would treat them; zero values of pointer fields
//! (`replicas: 0`, `storageClassName: ""`) are kept.

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use super::special;
use super::table::{self, Field, Rep, Ty, MESSAGES};
use super::wire::{Reader, FIXED64, LEN, VARINT};

/// Deepest message nesting accepted (bounds recursion on hostile input).
const MAX_DEPTH: u32 = 100;

/// Converts the bytes of message `msg` (a special type becomes its scalar JSON form).
pub(super) fn message(msg: u16, buf: &[u8], depth: u32) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("message nesting too deep".into());
    }
    match special::kind(MESSAGES[usize::from(msg)].name) {
        Some(kind) => special::decode(kind, msg, buf, depth),
        None => Ok(Value::Object(fields(msg, buf, depth)?)),
    }
}

/// Converts the fields of message `msg` into a JSON object, in wire order.
pub(super) fn fields(msg: u16, buf: &[u8], depth: u32) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    let mut r = Reader::new(buf);
    while !r.at_end() {
        let (tag, wire_type) = r.key()?;
        let Some(f) = table::field(msg, tag) else {
            r.skip(wire_type, tag)?;
            continue;
        };
        match f.rep {
            Rep::Single => {
                let v = value(f, f.ty, wire_type, &mut r, depth)?;
                set(&mut out, f, v);
            }
            Rep::Inline => match value(f, f.ty, wire_type, &mut r, depth)? {
                Value::Object(child) => child.into_iter().for_each(|(k, v)| put(&mut out, k, v)),
                _ => return Err(format!("{}: inlined field is not an object", f.json)),
            },
            Rep::Repeated => {
                let mut items = Vec::new();
                if wire_type == LEN && !matches!(f.ty, Ty::String | Ty::Bytes | Ty::Message(_)) {
                    let mut packed = Reader::new(r.bytes()?);
                    let inner = if matches!(f.ty, Ty::Double) {
                        FIXED64
                    } else {
                        VARINT
                    };
                    while !packed.at_end() {
                        items.push(value(f, f.ty, inner, &mut packed, depth)?);
                    }
                } else {
                    items.push(value(f, f.ty, wire_type, &mut r, depth)?);
                }
                put(&mut out, f.json.to_string(), Value::Array(items));
            }
            Rep::Map => {
                expect(f, wire_type, LEN)?;
                let (k, v) = map_entry(f, r.bytes()?, depth)?;
                let mut entry = Map::new();
                entry.insert(k, v);
                put(&mut out, f.json.to_string(), Value::Object(entry));
            }
        }
    }
    Ok(out)
}

/// Stores a non-repeated field: null (zero time, empty raw JSON) is absent, and so is a Go zero
/// value unless the Go field is a pointer.
fn set(out: &mut Map<String, Value>, f: &Field, v: Value) {
    let zero = match &v {
        Value::Null => true,
        Value::String(s) => s.is_empty() && !f.pointer,
        Value::Bool(b) => !b && !f.pointer,
        Value::Number(n) => n.as_f64() == Some(0.0) && !f.pointer,
        _ => false,
    };
    if zero {
        out.shift_remove(f.json);
    } else {
        put(out, f.json.to_string(), v);
    }
}

/// Inserts `v`, merging into an earlier occurrence the way protobuf merges repeated fields:
/// objects merge key by key, lists append, scalars are replaced.
fn put(out: &mut Map<String, Value>, key: String, v: Value) {
    match out.get_mut(&key) {
        Some(old) => merge(old, v),
        None => {
            out.insert(key, v);
        }
    }
}

fn merge(old: &mut Value, new: Value) {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => n.into_iter().for_each(|(k, v)| put(o, k, v)),
        (Value::Array(o), Value::Array(n)) => o.extend(n),
        (old, new) => *old = new,
    }
}

fn expect(f: &Field, got: u8, want: u8) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "field {:?} (tag {}): wire type {got}, expected {want}",
            f.json, f.tag
        ))
    }
}

/// Reads one value of type `ty` (a field's, or a map field's value type).
fn value(
    f: &Field,
    ty: Ty,
    wire_type: u8,
    r: &mut Reader<'_>,
    depth: u32,
) -> Result<Value, String> {
    let want = match ty {
        Ty::Int32 | Ty::Int64 | Ty::Bool => VARINT,
        Ty::Double => FIXED64,
        Ty::String | Ty::Bytes | Ty::Message(_) => LEN,
    };
    expect(f, wire_type, want)?;
    Ok(match ty {
        Ty::String => Value::String(String::from_utf8_lossy(r.bytes()?).into_owned()),
        Ty::Bytes => Value::String(base64::engine::general_purpose::STANDARD.encode(r.bytes()?)),
        Ty::Message(m) => message(m, r.bytes()?, depth + 1)?,
        // int32 is sign-extended to 64 bits on the wire; the truncation is protobuf's.
        Ty::Int32 => Value::from(r.varint()? as i32),
        Ty::Int64 => Value::from(r.varint()? as i64),
        Ty::Bool => Value::Bool(r.varint()? != 0),
        Ty::Double => double(f64::from_bits(r.fixed64()?))?,
    })
}

/// A float64 as Go's JSON encoder writes it (integral values without a fraction).
fn double(x: f64) -> Result<Value, String> {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        return Ok(Value::from(x as i64));
    }
    Number::from_f64(x)
        .map(Value::Number)
        .ok_or_else(|| format!("{x} is not representable in JSON"))
}

/// Reads a `map<string, ty>` entry: key is field 1, value field 2; missing ones are zero.
fn map_entry(f: &Field, buf: &[u8], depth: u32) -> Result<(String, Value), String> {
    let mut r = Reader::new(buf);
    let (mut key, mut val) = (String::new(), None);
    while !r.at_end() {
        match r.key()? {
            (1, wt) => {
                expect(f, wt, LEN)?;
                key = String::from_utf8_lossy(r.bytes()?).into_owned();
            }
            (2, wt) => val = Some(value(f, f.ty, wt, &mut r, depth)?),
            (tag, wt) => r.skip(wt, tag)?,
        }
    }
    let val = match (val, f.ty) {
        (Some(v), _) => v,
        (None, Ty::String | Ty::Bytes) => Value::String(String::new()),
        (None, Ty::Message(m)) => message(m, &[], depth + 1)?,
        (None, Ty::Bool) => Value::Bool(false),
        (None, _) => Value::from(0),
    };
    Ok((key, val))
}
