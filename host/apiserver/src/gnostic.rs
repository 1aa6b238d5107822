//! OpenAPI v2 as protobuf: the subset of gnostic's `openapi.v2` messages (OpenAPIv2.proto; field
//! names and tags as there) that a Kubernetes document uses, and the conversion from the JSON
//! document [`crate::openapi`] generates. kubectl ≤ 1.28 and client-go's `OpenAPISchema()` ask
//! for `/openapi/v2` with `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`
//! and decode an `openapi_v2.Document`; kube-openapi's `proto.NewOpenAPIData` then reads the
//! definitions, their vendor extensions (as YAML text, which JSON is) and the PATCH operations'
//! `fieldValidation` parameter.

use prost::Message as _;
use serde_json::{Map, Value};

/// The protobuf media types of OpenAPI v2 clients ask for (kube-openapi accepts both).
pub(crate) const MEDIA_TYPES: [&str; 2] = [
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
];

/// The Content-Type of the answer: kube-openapi's spelling without `@`, which Go's
/// `mime.ParseMediaType` (and so client-go) can parse.
pub(crate) const CONTENT_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `openapi.v2.Document`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Document {
    #[prost(string, tag = "1")]
    swagger: String,
    #[prost(message, optional, tag = "2")]
    info: Option<Info>,
    #[prost(message, optional, tag = "8")]
    paths: Option<Paths>,
    #[prost(message, optional, tag = "9")]
    definitions: Option<Definitions>,
}

/// `openapi.v2.Info`.
#[derive(Clone, PartialEq, prost::Message)]
struct Info {
    #[prost(string, tag = "1")]
    title: String,
    #[prost(string, tag = "2")]
    version: String,
}

/// `openapi.v2.Any`: a value as YAML text.
#[derive(Clone, PartialEq, prost::Message)]
struct Any {
    #[prost(string, tag = "2")]
    yaml: String,
}

/// `openapi.v2.NamedAny`: one vendor extension.
#[derive(Clone, PartialEq, prost::Message)]
struct NamedAny {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Any>,
}

/// `openapi.v2.Paths`.
#[derive(Clone, PartialEq, prost::Message)]
struct Paths {
    #[prost(message, repeated, tag = "2")]
    path: Vec<NamedPathItem>,
}

/// `openapi.v2.NamedPathItem`.
#[derive(Clone, PartialEq, prost::Message)]
struct NamedPathItem {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<PathItem>,
}

/// `openapi.v2.PathItem`.
#[derive(Clone, PartialEq, prost::Message)]
struct PathItem {
    #[prost(message, optional, tag = "2")]
    get: Option<Operation>,
    #[prost(message, optional, tag = "3")]
    put: Option<Operation>,
    #[prost(message, optional, tag = "4")]
    post: Option<Operation>,
    #[prost(message, optional, tag = "5")]
    delete: Option<Operation>,
    #[prost(message, optional, tag = "8")]
    patch: Option<Operation>,
}

/// `openapi.v2.Operation`.
#[derive(Clone, PartialEq, prost::Message)]
struct Operation {
    #[prost(string, tag = "5")]
    operation_id: String,
    #[prost(string, repeated, tag = "6")]
    produces: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    consumes: Vec<String>,
    #[prost(message, repeated, tag = "8")]
    parameters: Vec<ParametersItem>,
    #[prost(message, optional, tag = "9")]
    responses: Option<Responses>,
    #[prost(message, repeated, tag = "13")]
    vendor_extension: Vec<NamedAny>,
}

/// `openapi.v2.ParametersItem` (only the `parameter` arm is used).
#[derive(Clone, PartialEq, prost::Message)]
struct ParametersItem {
    #[prost(message, optional, tag = "1")]
    parameter: Option<Parameter>,
}

/// `openapi.v2.Parameter`.
#[derive(Clone, PartialEq, prost::Message)]
struct Parameter {
    #[prost(oneof = "ParameterKind", tags = "1, 2")]
    oneof: Option<ParameterKind>,
}

/// The `oneof` of `openapi.v2.Parameter`.
#[derive(Clone, PartialEq, prost::Oneof)]
enum ParameterKind {
    #[prost(message, boxed, tag = "1")]
    BodyParameter(Box<BodyParameter>),
    #[prost(message, tag = "2")]
    NonBodyParameter(NonBodyParameter),
}

/// `openapi.v2.BodyParameter`.
#[derive(Clone, PartialEq, prost::Message)]
struct BodyParameter {
    #[prost(string, tag = "2")]
    name: String,
    #[prost(string, tag = "3")]
    r#in: String,
    #[prost(bool, tag = "4")]
    required: bool,
    #[prost(message, optional, tag = "5")]
    schema: Option<Schema>,
}

/// `openapi.v2.NonBodyParameter` (only the query arm, tag 3, is used).
#[derive(Clone, PartialEq, prost::Message)]
struct NonBodyParameter {
    #[prost(message, optional, tag = "3")]
    query_parameter_sub_schema: Option<QueryParameterSubSchema>,
}

/// `openapi.v2.QueryParameterSubSchema`.
#[derive(Clone, PartialEq, prost::Message)]
struct QueryParameterSubSchema {
    #[prost(string, tag = "2")]
    r#in: String,
    #[prost(string, tag = "4")]
    name: String,
    #[prost(string, tag = "6")]
    r#type: String,
    #[prost(bool, tag = "20")]
    unique_items: bool,
}

/// `openapi.v2.Responses`.
#[derive(Clone, PartialEq, prost::Message)]
struct Responses {
    #[prost(message, repeated, tag = "1")]
    response_code: Vec<NamedResponseValue>,
}

/// `openapi.v2.NamedResponseValue`.
#[derive(Clone, PartialEq, prost::Message)]
struct NamedResponseValue {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<ResponseValue>,
}

/// `openapi.v2.ResponseValue` (only the `response` arm, tag 1, is used).
#[derive(Clone, PartialEq, prost::Message)]
struct ResponseValue {
    #[prost(message, optional, tag = "1")]
    response: Option<Response>,
}

/// `openapi.v2.Response`.
#[derive(Clone, PartialEq, prost::Message)]
struct Response {
    #[prost(string, tag = "1")]
    description: String,
    #[prost(message, optional, tag = "2")]
    schema: Option<SchemaItem>,
}

/// `openapi.v2.SchemaItem` (only the `schema` arm, tag 1, is used).
#[derive(Clone, PartialEq, prost::Message)]
struct SchemaItem {
    #[prost(message, optional, tag = "1")]
    schema: Option<Schema>,
}

/// `openapi.v2.Definitions`.
#[derive(Clone, PartialEq, prost::Message)]
struct Definitions {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedSchema>,
}

/// `openapi.v2.NamedSchema`.
#[derive(Clone, PartialEq, prost::Message)]
struct NamedSchema {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, optional, tag = "2")]
    value: Option<Schema>,
}

/// `openapi.v2.Schema`.
#[derive(Clone, PartialEq, prost::Message)]
struct Schema {
    #[prost(string, tag = "1")]
    r#ref: String,
    #[prost(string, tag = "2")]
    format: String,
    #[prost(string, tag = "3")]
    title: String,
    #[prost(string, tag = "4")]
    description: String,
    #[prost(message, optional, tag = "5")]
    default: Option<Any>,
    #[prost(double, tag = "6")]
    multiple_of: f64,
    #[prost(double, tag = "7")]
    maximum: f64,
    #[prost(bool, tag = "8")]
    exclusive_maximum: bool,
    #[prost(double, tag = "9")]
    minimum: f64,
    #[prost(bool, tag = "10")]
    exclusive_minimum: bool,
    #[prost(int64, tag = "11")]
    max_length: i64,
    #[prost(int64, tag = "12")]
    min_length: i64,
    #[prost(string, tag = "13")]
    pattern: String,
    #[prost(int64, tag = "14")]
    max_items: i64,
    #[prost(int64, tag = "15")]
    min_items: i64,
    #[prost(bool, tag = "16")]
    unique_items: bool,
    #[prost(int64, tag = "17")]
    max_properties: i64,
    #[prost(int64, tag = "18")]
    min_properties: i64,
    #[prost(string, repeated, tag = "19")]
    required: Vec<String>,
    #[prost(message, repeated, tag = "20")]
    r#enum: Vec<Any>,
    #[prost(message, optional, boxed, tag = "21")]
    additional_properties: Option<Box<AdditionalPropertiesItem>>,
    #[prost(message, optional, tag = "22")]
    r#type: Option<TypeItem>,
    #[prost(message, optional, tag = "23")]
    items: Option<ItemsItem>,
    #[prost(message, repeated, tag = "24")]
    all_of: Vec<Schema>,
    #[prost(message, optional, tag = "25")]
    properties: Option<Properties>,
    #[prost(string, tag = "26")]
    discriminator: String,
    #[prost(bool, tag = "27")]
    read_only: bool,
    #[prost(message, optional, tag = "30")]
    example: Option<Any>,
    #[prost(message, repeated, tag = "31")]
    vendor_extension: Vec<NamedAny>,
}

/// `openapi.v2.AdditionalPropertiesItem`.
#[derive(Clone, PartialEq, prost::Message)]
struct AdditionalPropertiesItem {
    #[prost(oneof = "AdditionalProperties", tags = "1, 2")]
    oneof: Option<AdditionalProperties>,
}

/// The `oneof` of `openapi.v2.AdditionalPropertiesItem`.
#[derive(Clone, PartialEq, prost::Oneof)]
enum AdditionalProperties {
    #[prost(message, boxed, tag = "1")]
    Schema(Box<Schema>),
    #[prost(bool, tag = "2")]
    Boolean(bool),
}

/// `openapi.v2.TypeItem`.
#[derive(Clone, PartialEq, prost::Message)]
struct TypeItem {
    #[prost(string, repeated, tag = "1")]
    value: Vec<String>,
}

/// `openapi.v2.ItemsItem`.
#[derive(Clone, PartialEq, prost::Message)]
struct ItemsItem {
    #[prost(message, repeated, tag = "1")]
    schema: Vec<Schema>,
}

/// `openapi.v2.Properties`.
#[derive(Clone, PartialEq, prost::Message)]
struct Properties {
    #[prost(message, repeated, tag = "1")]
    additional_properties: Vec<NamedSchema>,
}

/// Encodes the JSON OpenAPI v2 document as a protobuf `openapi_v2.Document`.
pub(crate) fn encode(doc: &Value) -> Vec<u8> {
    let str_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let document = Document {
        swagger: str_of(&doc["swagger"]),
        info: Some(Info {
            title: str_of(&doc["info"]["title"]),
            version: str_of(&doc["info"]["version"]),
        }),
        paths: Some(Paths {
            path: entries(&doc["paths"])
                .map(|(name, item)| NamedPathItem {
                    name: name.clone(),
                    value: Some(path_item(item)),
                })
                .collect(),
        }),
        definitions: Some(Definitions {
            additional_properties: named_schemas(&doc["definitions"]),
        }),
    };
    document.encode_to_vec()
}

fn entries(v: &Value) -> impl Iterator<Item = (&String, &Value)> {
    v.as_object().into_iter().flat_map(Map::iter)
}

fn named_schemas(v: &Value) -> Vec<NamedSchema> {
    entries(v)
        .map(|(name, s)| NamedSchema {
            name: name.clone(),
            value: Some(schema(s)),
        })
        .collect()
}

fn any(v: &Value) -> Any {
    Any {
        yaml: v.to_string(),
    }
}

fn vendor_extensions(v: &Value) -> Vec<NamedAny> {
    entries(v)
        .filter(|(k, _)| k.starts_with("x-"))
        .map(|(k, x)| NamedAny {
            name: k.clone(),
            value: Some(any(x)),
        })
        .collect()
}

/// A JSON schema as gnostic's `Schema`; keywords OpenAPI v2 lacks (`nullable`, `anyOf`, …) are
/// left out, as kube-openapi's converter does.
fn schema(v: &Value) -> Schema {
    let mut s = Schema {
        vendor_extension: vendor_extensions(v),
        ..Default::default()
    };
    let text = |x: &Value| x.as_str().unwrap_or_default().to_string();
    for (k, x) in entries(v) {
        match k.as_str() {
            "$ref" => s.r#ref = text(x),
            "format" => s.format = text(x),
            "title" => s.title = text(x),
            "description" => s.description = text(x),
            "pattern" => s.pattern = text(x),
            "discriminator" => s.discriminator = text(x),
            "default" => s.default = Some(any(x)),
            "example" => s.example = Some(any(x)),
            "multipleOf" => s.multiple_of = x.as_f64().unwrap_or_default(),
            "maximum" => s.maximum = x.as_f64().unwrap_or_default(),
            "minimum" => s.minimum = x.as_f64().unwrap_or_default(),
            "exclusiveMaximum" => s.exclusive_maximum = x.as_bool().unwrap_or_default(),
            "exclusiveMinimum" => s.exclusive_minimum = x.as_bool().unwrap_or_default(),
            "uniqueItems" => s.unique_items = x.as_bool().unwrap_or_default(),
            "readOnly" => s.read_only = x.as_bool().unwrap_or_default(),
            "maxLength" => s.max_length = x.as_i64().unwrap_or_default(),
            "minLength" => s.min_length = x.as_i64().unwrap_or_default(),
            "maxItems" => s.max_items = x.as_i64().unwrap_or_default(),
            "minItems" => s.min_items = x.as_i64().unwrap_or_default(),
            "maxProperties" => s.max_properties = x.as_i64().unwrap_or_default(),
            "minProperties" => s.min_properties = x.as_i64().unwrap_or_default(),
            "required" => s.required = x.as_array().into_iter().flatten().map(text).collect(),
            "enum" => s.r#enum = x.as_array().into_iter().flatten().map(any).collect(),
            "allOf" => s.all_of = x.as_array().into_iter().flatten().map(schema).collect(),
            "properties" => {
                s.properties = Some(Properties {
                    additional_properties: named_schemas(x),
                })
            }
            "additionalProperties" => {
                let arm = match x {
                    Value::Bool(b) => AdditionalProperties::Boolean(*b),
                    other => AdditionalProperties::Schema(Box::new(schema(other))),
                };
                s.additional_properties =
                    Some(Box::new(AdditionalPropertiesItem { oneof: Some(arm) }));
            }
            "type" => {
                let types: Vec<String> = match x {
                    Value::Array(a) => a.iter().map(text).filter(|t| t != "null").collect(),
                    other => vec![text(other)],
                };
                s.r#type = Some(TypeItem { value: types });
            }
            "items" => {
                let schemas = match x {
                    Value::Array(a) => a.iter().map(schema).collect(),
                    other => vec![schema(other)],
                };
                s.items = Some(ItemsItem { schema: schemas });
            }
            _ => {}
        }
    }
    s
}

fn path_item(v: &Value) -> PathItem {
    let op = |verb: &str| v.get(verb).map(operation);
    PathItem {
        get: op("get"),
        put: op("put"),
        post: op("post"),
        delete: op("delete"),
        patch: op("patch"),
    }
}

/// A reference to the schema of a request or response body (`content.*.schema` in the
/// generated operations, `schema` in plain OpenAPI v2).
fn body_schema(v: &Value) -> Option<Schema> {
    let s = v.get("schema").or_else(|| {
        v.get("content")?
            .as_object()?
            .values()
            .next()?
            .get("schema")
    })?;
    Some(schema(s))
}

fn operation(v: &Value) -> Operation {
    let mut parameters: Vec<ParametersItem> = v
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let ty = p
                .pointer("/schema/type")
                .or_else(|| p.get("type"))
                .and_then(Value::as_str)
                .unwrap_or("string");
            let query = QueryParameterSubSchema {
                r#in: "query".into(),
                name: p["name"].as_str().unwrap_or_default().to_string(),
                r#type: ty.to_string(),
                unique_items: true,
            };
            ParametersItem {
                parameter: Some(Parameter {
                    oneof: Some(ParameterKind::NonBodyParameter(NonBodyParameter {
                        query_parameter_sub_schema: Some(query),
                    })),
                }),
            }
        })
        .collect();
    if let Some(body) = v.get("requestBody").and_then(body_schema) {
        parameters.push(ParametersItem {
            parameter: Some(Parameter {
                oneof: Some(ParameterKind::BodyParameter(Box::new(BodyParameter {
                    name: "body".into(),
                    r#in: "body".into(),
                    required: true,
                    schema: Some(body),
                }))),
            }),
        });
    }
    let response_code = entries(&v["responses"])
        .map(|(code, r)| NamedResponseValue {
            name: code.clone(),
            value: Some(ResponseValue {
                response: Some(Response {
                    description: r["description"].as_str().unwrap_or_default().to_string(),
                    schema: body_schema(r).map(|s| SchemaItem { schema: Some(s) }),
                }),
            }),
        })
        .collect();
    Operation {
        operation_id: v["operationId"].as_str().unwrap_or_default().to_string(),
        produces: vec!["application/json".into(), "application/yaml".into()],
        consumes: vec!["*/*".into()],
        parameters,
        responses: Some(Responses { response_code }),
        vendor_extension: vendor_extensions(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_definitions_extensions_and_patch_parameters() {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.33.0"},
            "paths": {"/api/v1/namespaces/{namespace}/pods/{name}": {"patch": {
                "operationId": "patchPod",
                "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": "Pod"},
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/definitions/Pod"}}}},
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": "#/definitions/Pod"}}}}},
            }}},
            "definitions": {"Pod": {
                "type": "object",
                "required": ["spec"],
                "properties": {
                    "spec": {"type": ["object", "null"], "additionalProperties": {"type": "string"}},
                    "containers": {"type": "array", "items": {"$ref": "#/definitions/C"},
                        "x-kubernetes-patch-merge-key": "name"},
                },
                "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Pod"}],
            }},
        });
        let decoded = Document::decode(encode(&doc).as_slice()).unwrap();
        assert_eq!(decoded.swagger, "2.0");
        let defs = decoded.definitions.unwrap().additional_properties;
        let pod = defs[0].value.as_ref().unwrap();
        assert_eq!(defs[0].name, "Pod");
        assert_eq!(pod.r#type.as_ref().unwrap().value, ["object"]);
        assert_eq!(pod.required, ["spec"]);
        assert_eq!(
            pod.vendor_extension[0].name,
            "x-kubernetes-group-version-kind"
        );
        let props = &pod.properties.as_ref().unwrap().additional_properties;
        let spec = props[0].value.as_ref().unwrap();
        assert_eq!(spec.r#type.as_ref().unwrap().value, ["object"]);
        assert!(matches!(
            spec.additional_properties.as_deref(),
            Some(AdditionalPropertiesItem { oneof: Some(AdditionalProperties::Schema(s)) })
                if s.r#type.as_ref().unwrap().value == ["string"]
        ));
        let containers = props[1].value.as_ref().unwrap();
        assert_eq!(
            containers.items.as_ref().unwrap().schema[0].r#ref,
            "#/definitions/C"
        );
        assert_eq!(
            containers.vendor_extension[0].value.as_ref().unwrap().yaml,
            "\"name\""
        );
        let paths = decoded.paths.unwrap().path;
        let patch = paths[0].value.as_ref().unwrap().patch.as_ref().unwrap();
        assert_eq!(patch.operation_id, "patchPod");
        let Some(ParameterKind::NonBodyParameter(q)) =
            &patch.parameters[0].parameter.as_ref().unwrap().oneof
        else {
            panic!("first parameter is not a query parameter");
        };
        assert_eq!(
            q.query_parameter_sub_schema.as_ref().unwrap().name,
            "fieldValidation"
        );
        assert!(matches!(
            &patch.parameters[1].parameter.as_ref().unwrap().oneof,
            Some(ParameterKind::BodyParameter(b)) if b.schema.as_ref().unwrap().r#ref == "#/definitions/Pod"
        ));
    }
}
