//! `as=Table` output: the columns `kubectl get` prints, per kind, as the Kubernetes printers
//! define them (priority 1 columns appear with `-o wide`), custom resources' additional printer
//! columns, and Kubernetes' human-readable ages.

mod printers;

use serde_json::{json, Value};

use crate::registry::ResourceDef;

/// One column: name, type, priority (0 = always shown, 1 = `-o wide`).
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) ty: &'static str,
    pub(crate) priority: u8,
}

/// Renders objects as a meta.k8s.io/v1 Table.
pub(crate) fn to_table(
    def: &ResourceDef,
    objs: &[Value],
    rv: &str,
    include: Option<&str>,
) -> Value {
    let (defs, rows): (Vec<Value>, Vec<Vec<Value>>) = if def.is_custom() {
        custom(def, objs)
    } else {
        let (cols, cell_fn) = printers::for_kind(&def.kind);
        let defs = cols
            .iter()
            .map(|c| column_json(&c.name, c.ty, c.priority, ""))
            .collect();
        (defs, objs.iter().map(cell_fn).collect())
    };
    let rows: Vec<Value> = objs
        .iter()
        .zip(rows)
        .map(|(o, cells)| {
            let object = match include.unwrap_or("Metadata") {
                "None" => Value::Null,
                "Object" => o.clone(),
                _ => crate::objects::partial_metadata(o),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": defs,
        "rows": rows,
    })
}

fn column_json(name: &str, ty: &str, priority: u8, description: &str) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

fn custom(def: &ResourceDef, objs: &[Value]) -> (Vec<Value>, Vec<Vec<Value>>) {
    let mut defs = vec![column_json(
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    )];
    let mut has_age = false;
    for c in &def.printer_columns {
        let name = c["name"].as_str().unwrap_or_default();
        has_age |= name == "Age";
        defs.push(json!({
            "name": name,
            "type": c["type"].as_str().unwrap_or("string"),
            "format": c["format"].as_str().unwrap_or(""),
            "description": c["description"].as_str().unwrap_or(""),
            "priority": c["priority"].as_i64().unwrap_or(0),
        }));
    }
    if def.printer_columns.is_empty() {
        defs.push(column_json("Age", "date", 0, ""));
    }
    let rows = objs
        .iter()
        .map(|o| {
            let mut cells = vec![json!(crate::objects::name(o))];
            for c in &def.printer_columns {
                let path = c["jsonPath"].as_str().unwrap_or_default();
                let v = json_path(o, path);
                let v = match (c["type"].as_str(), &v) {
                    (Some("date"), Value::String(s)) => json!(age_of(s)),
                    _ => v,
                };
                cells.push(v);
            }
            if def.printer_columns.is_empty() {
                cells.push(json!(age(o)));
            }
            cells
        })
        .collect();
    let _ = has_age;
    (defs, rows)
}

/// Evaluates a simple JSONPath (`.spec.replicas`, `.status.conditions[0].type`).
pub(crate) fn json_path(obj: &Value, path: &str) -> Value {
    let mut cur = obj;
    for part in path
        .trim_start_matches('.')
        .split('.')
        .filter(|p| !p.is_empty())
    {
        let (field, index) = match part.split_once('[') {
            Some((f, rest)) => (f, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        cur = match cur.get(field) {
            Some(v) => v,
            None => return Value::Null,
        };
        if let Some(i) = index {
            cur = match cur.get(i) {
                Some(v) => v,
                None => return Value::Null,
            };
        }
    }
    cur.clone()
}

/// The object's age, as kubectl prints it.
pub(crate) fn age(obj: &Value) -> String {
    age_of(crate::objects::meta_str(obj, "creationTimestamp").unwrap_or_default())
}

/// Age of an RFC 3339 timestamp.
pub(crate) fn age_of(ts: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(ts) {
        Ok(t) => human_duration((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()),
        Err(_) => "<unknown>".into(),
    }
}

/// Kubernetes' `duration.HumanDuration`.
pub(crate) fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        return if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = m / 60;
    if h < 8 {
        return if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    let d = h / 24;
    if h < 24 * 8 {
        return if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        };
    }
    if h < 24 * 365 * 2 {
        return format!("{d}d");
    }
    let y = d / 365;
    if h < 24 * 365 * 8 {
        return if d % 365 == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{}d", d % 365)
        };
    }
    format!("{y}y")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        for (s, want) in [
            (5, "5s"),
            (119, "119s"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (30 * 3600, "30h"),
            (3 * 86400 + 3600, "3d1h"),
            (10 * 86400, "10d"),
            (3 * 365 * 86400, "3y"),
        ] {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }

    #[test]
    fn json_paths() {
        let o = json!({"spec": {"replicas": 3}, "status": {"conditions": [{"type": "Ready"}]}});
        assert_eq!(json_path(&o, ".spec.replicas"), json!(3));
        assert_eq!(json_path(&o, ".status.conditions[0].type"), json!("Ready"));
        assert_eq!(json_path(&o, ".missing.x"), Value::Null);
    }
}
