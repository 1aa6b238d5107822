//! The `pod-template-hash` of a Deployment's template and template equality ignoring it.
//!
//! Kubernetes' `controller.ComputeHash`: FNV-32a over the template, then over the
//! collisionCount as 8 little-endian bytes (the uint32 in the first four), the decimal sum
//! rendered with `rand.SafeEncodeString`. Kubernetes feeds the template to the hasher as Go's
//! `spew` dump of the struct, which has no equivalent outside Go; here the template's canonical
//! JSON (typed field order, sorted maps) is hashed instead, so names are stable and
//! collision-counted like Kubernetes' but not byte-identical to them.

use k8s_openapi::api::core::v1::PodTemplateSpec;

/// The label that ties a ReplicaSet and its pods to one Deployment template.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Kubernetes' `rand.SafeEncodeString` alphabet: no vowels, no confusable characters.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn fnv32a(hash: u32, bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(hash, |h, b| (h ^ u32::from(*b)).wrapping_mul(16_777_619))
}

/// Maps each byte of `s` onto the safe alphabet.
fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// The `pod-template-hash` of `template` with the Deployment's `status.collisionCount`.
pub fn compute(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let json = serde_json::to_vec(&without_hash(template)).unwrap_or_default();
    let mut h = fnv32a(2_166_136_261, &json);
    if let Some(c) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(c as u32).to_le_bytes());
        h = fnv32a(h, &bytes);
    }
    safe_encode(&h.to_string())
}

/// The template without the `pod-template-hash` label.
pub fn without_hash(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = template.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH);
    }
    t
}

/// Kubernetes' `EqualIgnoreHash`: the templates agree apart from the hash label.
pub fn equal_ignoring_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    without_hash(a) == without_hash(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]},
        }))
        .unwrap()
    }

    #[test]
    fn fnv_and_safe_encoding_match_go() {
        // Go: fnv.New32a() over "hello" sums to 1335831723.
        assert_eq!(fnv32a(2_166_136_261, b"hello"), 1_335_831_723);
        // rand.SafeEncodeString: '1' (49) % 27 = 22 → '5', '3' (51) % 27 = 24 → '7'.
        assert_eq!(safe_encode("13"), "57");
    }

    #[test]
    fn hash_follows_template_and_collisions_but_not_its_own_label() {
        let a = template("nginx:1.27");
        let h = compute(&a, None);
        assert!(!h.is_empty() && h.bytes().all(|b| ALPHANUMS.contains(&b)));
        assert_eq!(h, compute(&a, None), "stable");
        assert_ne!(h, compute(&template("nginx:1.28"), None));
        assert_ne!(h, compute(&a, Some(1)));
        let mut labelled = a.clone();
        labelled
            .metadata
            .get_or_insert_with(ObjectMeta::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH.into(), h.clone());
        assert!(equal_ignoring_hash(&a, &labelled));
        assert_eq!(compute(&labelled, None), h);
        assert!(!equal_ignoring_hash(&a, &template("nginx:1.28")));
    }
}
