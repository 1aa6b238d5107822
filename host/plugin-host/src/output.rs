//! Checks what a guest returns before the server sees it.
//!
//! A guest is untrusted: its verdict must fit the caps below and its patch must
//! be an RFC 6902 JSON Patch, or the call fails with [`Error::BadOutput`].

use crate::admission::{MutateVerdict, Verdict};
use crate::bindings;
use crate::Error;

/// Longest refusal message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// Most warnings per verdict.
pub const MAX_WARNINGS: usize = 16;
/// Longest warning, in bytes.
pub const MAX_WARNING_BYTES: usize = 512;
/// Largest JSON Patch document, in bytes.
pub const MAX_PATCH_BYTES: usize = 1 << 20;

/// Validates and converts a guest verdict.
pub(crate) fn verdict(v: bindings::Verdict) -> Result<Verdict, Error> {
    if v.message.len() > MAX_MESSAGE_BYTES {
        return Err(Error::BadOutput(format!(
            "message is {} bytes, more than {MAX_MESSAGE_BYTES}",
            v.message.len()
        )));
    }
    if v.warnings.len() > MAX_WARNINGS {
        return Err(Error::BadOutput(format!(
            "{} warnings, more than {MAX_WARNINGS}",
            v.warnings.len()
        )));
    }
    if let Some(w) = v.warnings.iter().find(|w| w.len() > MAX_WARNING_BYTES) {
        return Err(Error::BadOutput(format!(
            "a warning is {} bytes, more than {MAX_WARNING_BYTES}",
            w.len()
        )));
    }
    let code = match v.code {
        0 if v.allowed => 200,
        0 => 403,
        400..=599 if !v.allowed => v.code,
        200 if v.allowed => 200,
        other => {
            return Err(Error::BadOutput(format!(
                "status code {other} does not fit allowed={}",
                v.allowed
            )))
        }
    };
    Ok(Verdict {
        allowed: v.allowed,
        message: if v.allowed { String::new() } else { v.message },
        code,
        warnings: v.warnings,
    })
}

/// Validates and converts a guest mutate verdict; a patch is parsed as JSON Patch.
pub(crate) fn mutate_verdict(v: bindings::MutateVerdict) -> Result<MutateVerdict, Error> {
    let verdict = verdict(v.verdict)?;
    let patch = match v.patch {
        Some(text) if verdict.allowed => Some(patch(&text)?),
        _ => None,
    };
    Ok(MutateVerdict { verdict, patch })
}

fn patch(text: &str) -> Result<json_patch::Patch, Error> {
    if text.len() > MAX_PATCH_BYTES {
        return Err(Error::BadOutput(format!(
            "patch is {} bytes, more than {MAX_PATCH_BYTES}",
            text.len()
        )));
    }
    serde_json::from_str(text)
        .map_err(|e| Error::BadOutput(format!("patch is not a JSON Patch array: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(allowed: bool, message: &str, code: u16) -> bindings::Verdict {
        bindings::Verdict {
            allowed,
            message: message.into(),
            code,
            warnings: vec![],
        }
    }

    #[test]
    fn codes_default_and_are_checked() {
        assert_eq!(verdict(raw(false, "no", 0)).unwrap().code, 403);
        assert_eq!(verdict(raw(false, "no", 422)).unwrap().code, 422);
        assert_eq!(verdict(raw(true, "", 0)).unwrap().code, 200);
        assert!(matches!(
            verdict(raw(false, "no", 200)),
            Err(Error::BadOutput(_))
        ));
        assert!(matches!(
            verdict(raw(true, "", 403)),
            Err(Error::BadOutput(_))
        ));
    }

    #[test]
    fn long_message_is_refused() {
        let long = "x".repeat(MAX_MESSAGE_BYTES + 1);
        assert!(matches!(
            verdict(raw(false, &long, 0)),
            Err(Error::BadOutput(_))
        ));
    }

    #[test]
    fn patch_must_be_a_json_patch_array() {
        assert!(patch(r#"[{"op":"add","path":"/a","value":1}]"#).is_ok());
        assert!(matches!(patch("{not json"), Err(Error::BadOutput(_))));
        assert!(matches!(patch(r#"{"a":1}"#), Err(Error::BadOutput(_))));
        assert!(matches!(
            patch(r#"[{"op":"frob","path":"/a"}]"#),
            Err(Error::BadOutput(_))
        ));
    }
}
