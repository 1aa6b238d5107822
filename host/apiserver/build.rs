//! Generates `$OUT_DIR/pb_table.rs`, the field table the protobuf decoder runs on.
//!
//! Sources, all read as text (no build-dependencies):
//! - k8s-pb's prost structs (`#[prost(kind, label, tag = "N")]` attributes) give every
//!   message, its field tags, wire kinds and nested message types;
//! - k8s-openapi's serde code (`"podIP" => Field::Key_pod_ip`) gives the JSON names, matched
//!   to prost field names case- and underscore-insensitively; a message field with no JSON
//!   counterpart whose own fields are all JSON fields of the parent is an inlined Go struct
//!   (e.g. `Probe.handler`, `Volume.volumeSource`);
//! - `pointer_fields.txt` lists the Go pointer fields (see `tools/gen_pointer_fields.py`).
//!
//! Both crates are found under `$CARGO_HOME/registry/src/*/` (highest `k8s-pb-0.9.*` and
//! `k8s-openapi-0.29.*`), or at `K8S_PB_SRC` / `K8S_OPENAPI_SRC` (their `src` directories).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

struct PbField {
    rust: String,
    tag: u32,
    kind: String,
    rep: &'static str,
    msg: Option<String>,
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=pointer_fields.txt");
    println!("cargo:rerun-if-env-changed=K8S_PB_SRC");
    println!("cargo:rerun-if-env-changed=K8S_OPENAPI_SRC");
    let pb_src = locate("K8S_PB_SRC", "k8s-pb-0.9.");
    let openapi_src = locate("K8S_OPENAPI_SRC", "k8s-openapi-0.29.");

    let mut messages = BTreeMap::new();
    let mut groups = BTreeMap::new();
    for file in rust_files(&pb_src) {
        let module = module_of(&pb_src, &file);
        let text = fs::read_to_string(&file).expect("read k8s-pb source");
        parse_pb(&module, &text, &mut messages);
        for line in text.lines() {
            if let Some(group) = quoted_after(line, "const GROUP: &'static str = ") {
                let prefix = module.rsplit_once('/').map_or(&module[..], |(p, _)| p);
                groups.insert(group, prefix.to_string());
            }
        }
    }
    // Every Kubernetes version k8s-openapi ships (names are stable; newer ones add fields).
    let mut json_names = HashMap::new();
    let mut versions: Vec<PathBuf> = fs::read_dir(&openapi_src)
        .expect("read k8s-openapi src")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("v1_"))
        })
        .collect();
    versions.sort();
    assert!(
        !versions.is_empty(),
        "no v1_* directories in {}",
        openapi_src.display()
    );
    for dir in &versions {
        for file in rust_files(dir) {
            let text = fs::read_to_string(&file).expect("read k8s-openapi source");
            parse_openapi(&module_of(dir, &file), &text, &mut json_names);
        }
    }
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let pointers_text =
        fs::read_to_string(manifest.join("pointer_fields.txt")).expect("read pointer_fields.txt");
    let mut pointers = HashSet::new();
    for line in pointers_text.lines().filter(|l| !l.starts_with('#')) {
        let mut words = line.split_whitespace();
        if let Some(msg) = words.next() {
            pointers.extend(words.map(|w| format!("{}.{w}", msg.to_ascii_lowercase())));
        }
    }
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("pb_table.rs");
    fs::write(out, render(&messages, &groups, &json_names, &pointers)).expect("write pb_table.rs");
}

/// The `src` directory of the newest registry copy of a crate (or the override in `var`).
fn locate(var: &str, prefix: &str) -> PathBuf {
    if let Ok(dir) = env::var(var) {
        return PathBuf::from(dir);
    }
    let home = env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env::var("HOME").expect("HOME")).join(".cargo"));
    let mut found: Vec<(u64, PathBuf)> = Vec::new();
    for index in fs::read_dir(home.join("registry/src"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for krate in fs::read_dir(index.path()).into_iter().flatten().flatten() {
            let name = krate.file_name().to_string_lossy().into_owned();
            if let Some(patch) = name.strip_prefix(prefix).and_then(|p| p.parse().ok()) {
                found.push((patch, krate.path().join("src")));
            }
        }
    }
    found.sort();
    match found.pop() {
        Some((_, dir)) => dir,
        None => panic!(
            "no {prefix}* under {}/registry/src; set {var}",
            home.display()
        ),
    }
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d)
            .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// `api/core/v1` for `<root>/api/core/v1/mod.rs` or `<root>/api/core/v1/pod.rs`.
fn module_of(root: &Path, file: &Path) -> String {
    let dir = file.parent().unwrap().strip_prefix(root).unwrap();
    dir.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn quoted_after(line: &str, marker: &str) -> Option<String> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

/// Collects the messages (`module/Name` → fields) of one k8s-pb source file.
fn parse_pb(module: &str, text: &str, messages: &mut BTreeMap<String, Vec<PbField>>) {
    let mut current: Option<String> = None;
    let mut attr: Option<String> = None;
    let mut decl = String::new();
    for line in text.lines() {
        if let Some(name) = line
            .strip_prefix("pub struct ")
            .and_then(|l| l.strip_suffix(" {}"))
        {
            messages.insert(format!("{module}/{name}"), Vec::new());
            continue;
        }
        if let Some(name) = line
            .strip_prefix("pub struct ")
            .and_then(|l| l.strip_suffix(" {"))
        {
            let key = format!("{module}/{name}");
            messages.insert(key.clone(), Vec::new());
            current = Some(key);
            continue;
        }
        if line.starts_with('}') {
            current = None;
            continue;
        }
        let Some(key) = &current else { continue };
        let trimmed = line.trim();
        if let Some(a) = trimmed
            .strip_prefix("#[prost(")
            .and_then(|a| a.strip_suffix(")]"))
        {
            attr = Some(a.to_string());
            decl.clear();
            continue;
        }
        if attr.is_none() || trimmed.starts_with("#[") || trimmed.starts_with("//") {
            continue;
        }
        decl.push_str(trimmed);
        let depth = decl.matches('<').count() as i64 - decl.matches('>').count() as i64;
        if depth != 0 || !decl.ends_with(',') {
            continue;
        }
        let a = attr.take().unwrap();
        let (name, ty) = decl
            .trim_start_matches("pub ")
            .split_once(':')
            .expect("field decl");
        let tag = quoted_after(&a, "tag = ")
            .expect("tag")
            .parse()
            .expect("numeric tag");
        let (kind, rep) = if let Some(m) = quoted_after(&a, "btree_map = ") {
            (m.split(", ").nth(1).unwrap().to_string(), "Map")
        } else {
            let kind = a.split([',', ' ']).next().unwrap().to_string();
            (
                kind,
                if a.contains("repeated") {
                    "Repeated"
                } else {
                    "Single"
                },
            )
        };
        let msg = (kind == "message").then(|| resolve(module, ty.trim().trim_end_matches(',')));
        let rust = name.trim().trim_start_matches("r#").to_string();
        messages.get_mut(key).unwrap().push(PbField {
            rust,
            tag,
            kind,
            rep,
            msg,
        });
    }
}

/// Resolves a prost field type (`Option<super::super::x::Y>`, `BTreeMap<String, Y>`) to `module/Y`.
fn resolve(module: &str, ty: &str) -> String {
    let mut ty = ty.replace(' ', "");
    for wrapper in [
        "::core::option::Option<",
        "::prost::alloc::vec::Vec<",
        "::prost::alloc::boxed::Box<",
    ] {
        if let Some(inner) = ty.strip_prefix(wrapper) {
            ty = inner
                .strip_suffix('>')
                .unwrap()
                .trim_end_matches(',')
                .to_string();
        }
    }
    if let Some(inner) = ty.strip_prefix("::prost::alloc::collections::BTreeMap<") {
        let value = inner.strip_suffix('>').unwrap().split_once(',').unwrap().1;
        ty = value.trim_end_matches(',').to_string();
    }
    let mut segments: Vec<&str> = module.split('/').collect();
    let mut parts = ty.split("::").peekable();
    if parts.peek() == Some(&"crate") {
        segments.clear();
        parts.next();
    }
    while parts.peek() == Some(&"super") {
        segments.pop();
        parts.next();
    }
    segments.extend(parts);
    segments.join("/")
}

/// Collects the JSON property names of the types of one k8s-openapi source file.
fn parse_openapi(module: &str, text: &str, names: &mut HashMap<String, Vec<String>>) {
    let mut current = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("impl<'de> crate::serde::Deserialize<'de> for ") {
            let ty = rest.trim_end_matches(" {").to_string();
            current = Some(format!("{module}/{}", ty.to_ascii_lowercase()));
        } else if let (Some(key), true) = (&current, line.contains("\" => Field::Key_")) {
            let json = line.trim().trim_start_matches('"');
            let json = &json[..json.find('"').unwrap_or(0)];
            let list = names.entry(key.clone()).or_default();
            if !list.iter().any(|j| j == json) {
                list.push(json.to_string());
            }
        }
    }
}

/// Whether message field `f` is an inlined Go struct: all its fields (or, recursively, their
/// inlined fields) are JSON properties of the parent.
fn inlines(
    messages: &BTreeMap<String, Vec<PbField>>,
    f: &PbField,
    parent: &HashMap<String, String>,
    depth: u32,
) -> bool {
    let child = f.msg.as_ref().and_then(|m| messages.get(m));
    depth < 3
        && f.rep == "Single"
        && child.is_some_and(|child| {
            !child.is_empty()
                && child.iter().all(|c| {
                    parent.contains_key(&norm(&c.rust)) || inlines(messages, c, parent, depth + 1)
                })
        })
}

/// `group-module/lowercasename` of a `module/version/Name` key.
fn unversioned(key: &str) -> String {
    let (module, name) = key.rsplit_once('/').unwrap_or(("", key));
    let group = module.rsplit_once('/').map_or("", |(g, _)| g);
    format!("{group}/{}", name.to_ascii_lowercase())
}

fn norm(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn lower_camel(snake: &str) -> String {
    let mut out = String::new();
    for (i, part) in snake.split('_').enumerate() {
        let mut chars = part.chars();
        if let (true, Some(first)) = (i > 0, chars.next()) {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        } else {
            out.push_str(part);
        }
    }
    out
}

fn render(
    messages: &BTreeMap<String, Vec<PbField>>,
    groups: &BTreeMap<String, String>,
    json_names: &HashMap<String, Vec<String>>,
    pointers: &HashSet<String>,
) -> String {
    let index: HashMap<&str, usize> = messages
        .keys()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    // Fallbacks for types k8s-openapi lacks: the same type in another version of the group
    // (`apps/v1beta1/Deployment` → `apps/v1/Deployment`), then any type's property of that name.
    let mut by_group: HashMap<String, Vec<String>> = HashMap::new();
    let mut global: HashMap<String, String> = HashMap::new();
    let mut keys: Vec<&String> = json_names.keys().collect();
    keys.sort();
    for key in keys {
        let names = &json_names[key];
        by_group
            .entry(unversioned(key))
            .or_default()
            .extend(names.iter().cloned());
        for j in names {
            global.entry(norm(j)).or_insert_with(|| j.clone());
        }
    }
    let names_of = |key: &str| -> HashMap<String, String> {
        let lower = key.to_ascii_lowercase();
        let names = json_names
            .get(&lower)
            .or_else(|| by_group.get(&unversioned(&lower)));
        names
            .into_iter()
            .flatten()
            .map(|j| (norm(j), j.clone()))
            .collect()
    };
    let mut out = String::from("// @generated by build.rs from k8s-pb and k8s-openapi sources.\n");
    writeln!(
        out,
        "pub(super) static MESSAGES: [Message; {}] = [",
        messages.len()
    )
    .unwrap();
    for (key, fields) in messages {
        let by_norm = names_of(key);
        let mut sorted: Vec<&PbField> = fields.iter().collect();
        sorted.sort_by_key(|f| f.tag);
        // k8s-pb declares fields in Go struct order: Kubernetes' JSON field order.
        let order: Vec<String> = fields
            .iter()
            .map(|f| {
                let i = sorted.iter().position(|s| s.tag == f.tag).unwrap();
                i.to_string()
            })
            .collect();
        writeln!(
            out,
            "    Message {{ name: {key:?}, order: &[{}], fields: &[",
            order.join(", ")
        )
        .unwrap();
        for f in sorted {
            let mut rep = f.rep;
            let json = match by_norm.get(&norm(&f.rust)) {
                Some(j) => j.clone(),
                None => {
                    let inline = f.rep == "Single"
                        && !by_norm.is_empty()
                        && inlines(messages, f, &by_norm, 0);
                    if inline {
                        rep = "Inline";
                    }
                    global
                        .get(&norm(&f.rust))
                        .cloned()
                        .unwrap_or_else(|| lower_camel(&f.rust))
                }
            };
            let ty = match (f.kind.as_str(), &f.msg) {
                ("message", Some(m)) => match index.get(m.as_str()) {
                    Some(i) => format!("Ty::Message({i})"),
                    None => panic!("{key}.{}: unknown message {m}", f.rust),
                },
                ("string", _) => "Ty::String".into(),
                ("int32", _) => "Ty::Int32".into(),
                ("int64", _) => "Ty::Int64".into(),
                ("bool", _) => "Ty::Bool".into(),
                ("double", _) => "Ty::Double".into(),
                ("bytes", _) => "Ty::Bytes".into(),
                (other, _) => panic!("{key}.{}: unsupported prost kind {other}", f.rust),
            };
            let pointer = pointers.contains(&format!("{}.{json}", key.to_ascii_lowercase()));
            writeln!(
                out,
                "        Field {{ tag: {}, json: {json:?}, ty: {ty}, rep: Rep::{rep}, pointer: {pointer} }},",
                f.tag
            )
            .unwrap();
        }
        out.push_str("    ] },\n");
    }
    out.push_str("];\n");
    writeln!(
        out,
        "pub(super) static GROUPS: [(&str, &str); {}] = [",
        groups.len()
    )
    .unwrap();
    for (group, prefix) in groups {
        writeln!(out, "    ({group:?}, {prefix:?}),").unwrap();
    }
    out.push_str("];\n");
    out
}
