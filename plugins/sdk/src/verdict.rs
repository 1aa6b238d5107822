//! Constructors for [`Verdict`] and [`MutateVerdict`].

use crate::{MutateVerdict, Patch, Verdict};

impl Verdict {
    /// Let the request through.
    pub fn allow() -> Self {
        Verdict {
            allowed: true,
            message: String::new(),
            code: 0,
            warnings: Vec::new(),
        }
    }

    /// Refuse the request with 403 Forbidden and `message` (at most 4096 bytes).
    pub fn deny(message: impl Into<String>) -> Self {
        Verdict {
            allowed: false,
            message: message.into(),
            code: 0,
            warnings: Vec::new(),
        }
    }

    /// Refuse with an explicit HTTP status code (400–599).
    pub fn deny_with_code(message: impl Into<String>, code: u16) -> Self {
        Verdict {
            code,
            ..Verdict::deny(message)
        }
    }

    /// Adds a warning for the client (at most 16, each at most 512 bytes).
    pub fn with_warning(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }
}

impl MutateVerdict {
    /// Allow without changes.
    pub fn unchanged() -> Self {
        MutateVerdict {
            verdict: Verdict::allow(),
            patch: None,
        }
    }

    /// Allow and apply `patch` (no patch at all when it is empty).
    pub fn patched(patch: Patch) -> Self {
        MutateVerdict {
            verdict: Verdict::allow(),
            patch: (!patch.is_empty()).then(|| patch.to_json()),
        }
    }

    /// Refuse the request with 403 Forbidden and `message`.
    pub fn deny(message: impl Into<String>) -> Self {
        MutateVerdict {
            verdict: Verdict::deny(message),
            patch: None,
        }
    }
}
