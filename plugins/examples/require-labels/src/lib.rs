//! Validating admission plugin: refuses creates and updates of objects that
//! lack any of the labels listed in its config, e.g. `{"labels": ["team"]}`.

use keelson_plugin_sdk::{export_admission, k8s, Admission, Operation, Request, Verdict};
use serde::Deserialize;

/// The plugin's `spec.config`.
#[derive(Deserialize, Default)]
struct Config {
    /// Label keys every object must carry (with any value).
    #[serde(default)]
    labels: Vec<String>,
}

struct RequireLabels;

impl Admission for RequireLabels {
    fn validate(req: Request) -> Verdict {
        if !matches!(req.operation, Operation::Create | Operation::Update)
            || !req.subresource.is_empty()
        {
            return Verdict::allow();
        }
        let config: Config = match req.config() {
            Ok(config) => config,
            Err(err) => return Verdict::deny_with_code(err, 500),
        };
        let Some(object) = req.object() else {
            return Verdict::allow();
        };
        let present = k8s::labels(&object);
        let missing: Vec<&str> = config
            .labels
            .iter()
            .map(String::as_str)
            .filter(|want| !present.iter().any(|(key, _)| key == want))
            .collect();
        if missing.is_empty() {
            Verdict::allow()
        } else {
            Verdict::deny(format!(
                "{} {:?} is missing required label(s): {}",
                req.kind,
                req.name,
                missing.join(", ")
            ))
        }
    }
}

export_admission!(RequireLabels);
