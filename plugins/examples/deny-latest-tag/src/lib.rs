//! Validating admission plugin: refuses Pods and workload templates whose
//! container images use the `:latest` tag or no tag at all (which means
//! `latest`). Images pinned by digest (`name@sha256:…`) are allowed.

use keelson_plugin_sdk::{export_admission, Admission, Operation, Request, Verdict};

struct DenyLatestTag;

impl Admission for DenyLatestTag {
    fn validate(req: Request) -> Verdict {
        if !matches!(req.operation, Operation::Create | Operation::Update)
            || !req.subresource.is_empty()
        {
            return Verdict::allow();
        }
        // The typed accessor reads only the containers' names and images.
        let problems: Vec<String> = req
            .containers()
            .iter()
            .filter_map(|c| {
                let why = unpinned(&c.image)?;
                Some(format!("container {:?} image {:?} {why}", c.name, c.image))
            })
            .collect();
        if problems.is_empty() {
            Verdict::allow()
        } else {
            Verdict::deny(format!(
                "{}; pin a version tag or digest",
                problems.join("; ")
            ))
        }
    }
}

/// Why `image` floats, or `None` when it is pinned.
fn unpinned(image: &str) -> Option<&'static str> {
    if image.contains('@') {
        return None;
    }
    // The tag follows the last ':' after the last '/' (a ':' before it is a registry port).
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        None => Some("has no tag (means :latest)"),
        Some((_, "latest")) => Some("uses :latest"),
        Some((_, "")) => Some("has an empty tag"),
        Some(_) => None,
    }
}

export_admission!(DenyLatestTag);
