//! OpenAPI documents generated from the registry: `/openapi/v3` (index plus one document per
//! group-version) and `/openapi/v2`. Schemas come from k8s-openapi (schemars) for built-in kinds
//! and from the CRD for custom ones; every kind carries `x-kubernetes-group-version-kind`, and
//! each PATCH operation lists the `fieldValidation` parameter so kubectl validates server-side.
//! `/openapi/v2` is also served as protobuf ([`crate::gnostic`]) when the Accept header asks for
//! it; both encodings are built once per change of the served kinds.

use std::sync::{Arc, Mutex, OnceLock};

use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

use crate::codec::json_response;
use crate::error::{ApiError, ApiResult};
use crate::registry::ResourceDef;
use crate::ApiServer;

/// Serves OpenAPI paths; `None` when `path` is not one.
pub(crate) fn handle(
    api: &ApiServer,
    path: &str,
    headers: &HeaderMap,
) -> Option<ApiResult<Response>> {
    if path == "/openapi/v3" {
        return Some(Ok(json_response(200, &v3_index(api))));
    }
    if path == "/openapi/v2" {
        let doc = v2_cached(api);
        let (media, body) = if wants_protobuf(headers) {
            let pb = doc
                .protobuf
                .get_or_init(|| crate::gnostic::encode(&doc.json).into());
            (crate::gnostic::CONTENT_TYPE, pb.clone())
        } else {
            ("application/json", doc.json_bytes.clone())
        };
        return Some(Ok(
            ([(http::header::CONTENT_TYPE, media)], body).into_response()
        ));
    }
    let gv = path.strip_prefix("/openapi/v3/")?;
    let (group, version) = match gv.split('/').collect::<Vec<_>>().as_slice() {
        ["api", v] => (String::new(), v.to_string()),
        ["apis", g, v] => (g.to_string(), v.to_string()),
        _ => return Some(Err(ApiError::no_route(path))),
    };
    let defs = api.registry.in_group_version(&group, &version);
    if defs.is_empty() {
        return Some(Err(ApiError::no_route(path)));
    }
    Some(Ok(json_response(200, &v3_document(&defs))))
}

/// Does the first Accept option this endpoint can serve name the protobuf form?
fn wants_protobuf(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    accept
        .split(',')
        .map(|option| option.split(';').next().unwrap_or_default().trim())
        .find(|media| {
            crate::gnostic::MEDIA_TYPES.contains(media)
                || matches!(*media, "application/json" | "*/*" | "application/*")
        })
        .is_some_and(|media| crate::gnostic::MEDIA_TYPES.contains(&media))
}

/// The OpenAPI v2 document of one registry content, in both encodings.
struct V2Document {
    /// What the served kinds looked like when it was built.
    fingerprint: u64,
    json: Value,
    json_bytes: bytes::Bytes,
    /// Encoded on first request.
    protobuf: OnceLock<bytes::Bytes>,
}

/// The v2 document for the served kinds, rebuilt only when they changed (a CRD came or went).
fn v2_cached(api: &ApiServer) -> Arc<V2Document> {
    static CACHE: Mutex<Option<Arc<V2Document>>> = Mutex::new(None);
    let fingerprint = fxhash(
        &api.registry
            .all()
            .iter()
            .map(|d| {
                format!(
                    "{}/{}/{}/{}{:?}|",
                    d.group, d.version, d.plural, d.kind, d.schema
                )
            })
            .collect::<String>(),
    );
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    match cache.as_ref() {
        Some(doc) if doc.fingerprint == fingerprint => doc.clone(),
        _ => {
            let json = v2(api);
            let doc = Arc::new(V2Document {
                fingerprint,
                json_bytes: serde_json::to_vec(&json).unwrap_or_default().into(),
                json,
                protobuf: OnceLock::new(),
            });
            *cache = Some(doc.clone());
            doc
        }
    }
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn v3_index(api: &ApiServer) -> Value {
    let mut paths = Map::new();
    for (g, versions) in api.registry.group_versions() {
        for v in versions {
            let p = gv_path(&g, &v);
            let hash = format!(
                "{:016X}",
                fxhash(
                    &api.registry
                        .in_group_version(&g, &v)
                        .iter()
                        .map(|d| format!("{}{}{:?}", d.plural, d.kind, d.schema))
                        .collect::<String>()
                )
            );
            paths.insert(
                p.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash}")}),
            );
        }
    }
    json!({"paths": paths})
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// Schemas of the given kinds: name → schema, with GVK extensions; `refs` maps kind → schema name.
fn schemas(
    defs: &[std::sync::Arc<ResourceDef>],
    definitions_path: &'static str,
) -> (Map<String, Value>, Vec<(String, String)>) {
    let mut settings = SchemaSettings::openapi3();
    settings.definitions_path = definitions_path.into();
    let mut generator = settings.into_generator();
    let mut refs = Vec::new();
    let mut custom = Map::new();
    for d in defs {
        let name = match (d.openapi, &d.schema) {
            (Some(f), _) => {
                let r = f(&mut generator);
                let reference = r
                    .get("$ref")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                reference.rsplit('/').next().unwrap_or_default().to_string()
            }
            (None, Some(schema)) => {
                let name = format!(
                    "{}.{}.{}",
                    d.group.split('.').rev().collect::<Vec<_>>().join("."),
                    d.version,
                    d.kind
                );
                custom.insert(name.clone(), schema.clone());
                name
            }
            _ => String::new(),
        };
        refs.push((d.kind.clone(), name));
    }
    let mut out: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    for (d, (_, name)) in defs.iter().zip(refs.iter()) {
        if d.openapi.is_some() {
            annotate_patch_meta(&mut out, name, &mut Vec::new(), &d.group, &d.kind);
        }
    }
    out.extend(custom);
    for (d, (_, name)) in defs.iter().zip(refs.iter()) {
        if let Some(s) = out.get_mut(name).and_then(Value::as_object_mut) {
            s.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": d.group, "version": d.version, "kind": d.kind}]),
            );
        }
    }
    (out, refs)
}

/// The definition a property points at (`$ref`, possibly inside `allOf`), by name.
fn ref_name(schema: &Value) -> Option<String> {
    let r = schema
        .get("$ref")
        .or_else(|| schema.pointer("/allOf/0/$ref"))?
        .as_str()?;
    Some(r.rsplit('/').next()?.to_string())
}

/// Adds `x-kubernetes-patch-merge-key` / `x-kubernetes-patch-strategy` to list properties, from
/// the same patch metadata the server merges with, so kubectl computes matching patches.
fn annotate_patch_meta(
    defs: &mut Map<String, Value>,
    def: &str,
    path: &mut Vec<String>,
    group: &str,
    kind: &str,
) {
    if path.len() > 12 || def.contains("JSONSchemaProps") {
        return;
    }
    let Some(props) = defs
        .get(def)
        .and_then(|d| d.get("properties"))
        .and_then(Value::as_object)
        .cloned()
    else {
        return;
    };
    for (field, prop) in props {
        path.push(field.clone());
        let segments: Vec<&str> = path.iter().map(String::as_str).collect();
        if prop.get("type").and_then(Value::as_str) == Some("array") {
            let strategy = crate::patch::list_strategy(group, kind, &segments);
            let mut ext = Map::new();
            match strategy {
                crate::patch::ListStrategy::MergeKey(k) => {
                    ext.insert("x-kubernetes-patch-merge-key".into(), json!(k));
                    ext.insert("x-kubernetes-patch-strategy".into(), json!("merge"));
                }
                crate::patch::ListStrategy::Set => {
                    ext.insert("x-kubernetes-patch-strategy".into(), json!("merge"));
                }
                crate::patch::ListStrategy::Atomic => {}
            }
            if !ext.is_empty() {
                if let Some(p) = defs
                    .get_mut(def)
                    .and_then(|d| d.pointer_mut(&format!("/properties/{field}")))
                    .and_then(Value::as_object_mut)
                {
                    p.extend(ext);
                }
            }
            if let Some(item) = prop.get("items").and_then(ref_name) {
                annotate_patch_meta(defs, &item, path, group, kind);
            }
        } else if let Some(child) = ref_name(&prop) {
            annotate_patch_meta(defs, &child, path, group, kind);
        }
        path.pop();
    }
}

fn param(name: &str, ty: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": ty, "uniqueItems": true}})
}

fn operations(d: &ResourceDef, schema_ref: &str) -> Vec<(String, Value)> {
    let gvk = json!({"group": d.group, "version": d.version, "kind": d.kind});
    let base = if d.group.is_empty() {
        format!("/api/{}", d.version)
    } else {
        format!("/apis/{}/{}", d.group, d.version)
    };
    let scope = if d.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", d.plural)
    } else {
        format!("{base}/{}", d.plural)
    };
    let body = json!({"content": {"application/json": {"schema": {"$ref": schema_ref}}}});
    let ok = json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": schema_ref}}}}});
    let op = |verb: &str, action: &str, extra: Vec<Value>| {
        let mut o = json!({
            "operationId": format!("{verb}{}", d.kind),
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "parameters": extra,
            "responses": ok,
        });
        if matches!(action, "post" | "put" | "patch") {
            o["requestBody"] = body.clone();
        }
        o
    };
    let write_params = || {
        vec![
            param("dryRun", "string"),
            param("fieldManager", "string"),
            param("fieldValidation", "string"),
        ]
    };
    let mut patch_params = write_params();
    patch_params.push(param("force", "boolean"));
    let collection = json!({
        "get": op("list", "list", vec![param("labelSelector", "string"), param("fieldSelector", "string"), param("limit", "integer"), param("continue", "string"), param("watch", "boolean"), param("resourceVersion", "string")]),
        "post": op("create", "post", write_params()),
        "delete": op("deletecollection", "deletecollection", vec![param("labelSelector", "string")]),
    });
    let item = json!({
        "get": op("read", "get", vec![]),
        "put": op("replace", "put", write_params()),
        "patch": op("patch", "patch", patch_params),
        "delete": op("delete", "delete", vec![param("dryRun", "string"), param("propagationPolicy", "string")]),
    });
    let mut out = vec![
        (scope.clone(), collection),
        (format!("{scope}/{{name}}"), item),
    ];
    if d.status {
        out.push((
            format!("{scope}/{{name}}/status"),
            json!({"get": op("read", "get", vec![]), "put": op("replace", "put", write_params())}),
        ));
    }
    out
}

fn v3_document(defs: &[std::sync::Arc<ResourceDef>]) -> Value {
    let (schemas, refs) = schemas(defs, "#/components/schemas/");
    let mut paths = Map::new();
    for (d, (_, name)) in defs.iter().zip(refs.iter()) {
        for (p, ops) in operations(d, &format!("#/components/schemas/{name}")) {
            paths.insert(p, ops);
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{}.0", crate::discovery::KUBE_MINOR)},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

fn v2(api: &ApiServer) -> Value {
    let defs = api.registry.all();
    let (definitions, refs) = schemas(&defs, "#/definitions/");
    let mut paths = Map::new();
    for (d, (_, name)) in defs.iter().zip(refs.iter()) {
        for (p, ops) in operations(d, &format!("#/definitions/{name}")) {
            paths.insert(p, ops);
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": format!("v1.{}.0", crate::discovery::KUBE_MINOR)},
        "paths": paths,
        "definitions": definitions,
    })
}
