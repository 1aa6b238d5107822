//! Keelson's own API kinds (no k8s-openapi type exists for them), as `kube` dynamic resources.

use kube::api::{ApiResource, GroupVersionKind};

/// `wasmplugins.keelson.dev/v1alpha1`, kind `WasmPlugin`, cluster-scoped.
pub fn wasm_plugins() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("keelson.dev", "v1alpha1", "WasmPlugin"),
        "wasmplugins",
    )
}
