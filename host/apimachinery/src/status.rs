//! `Status.reason`: the machine-readable reason of a failed request, as Kubernetes'
//! `metav1.StatusReason` defines it (kube-core's `Status` carries it as a string; clients such
//! as kubectl branch on it); and [`error_chain`], an error's message with its causes.

use std::fmt;

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No reason given (`""`).
    Unknown,
    /// 401: the request carries no valid credentials.
    Unauthorized,
    /// 403: the caller may not do this.
    Forbidden,
    /// 404: the object or route does not exist.
    NotFound,
    /// 409: an object of that name exists.
    AlreadyExists,
    /// 409: the object changed since it was read.
    Conflict,
    /// 410: the resource is gone.
    Gone,
    /// 422: the object failed validation.
    Invalid,
    /// 500: the server could not finish in time.
    ServerTimeout,
    /// 504: the request timed out.
    Timeout,
    /// 429: slow down (e.g. a PodDisruptionBudget forbids an eviction now).
    TooManyRequests,
    /// 400: the request is malformed.
    BadRequest,
    /// 405: the verb is not allowed on this resource.
    MethodNotAllowed,
    /// 406: no acceptable representation.
    NotAcceptable,
    /// 413: the body is too large.
    RequestEntityTooLarge,
    /// 415: the body's media type is not understood.
    UnsupportedMediaType,
    /// 500: the server failed.
    InternalError,
    /// 410: the requested resourceVersion was compacted away.
    Expired,
    /// 503: try again later.
    ServiceUnavailable,
}

const ALL: [Reason; 19] = [
    Reason::Unknown,
    Reason::Unauthorized,
    Reason::Forbidden,
    Reason::NotFound,
    Reason::AlreadyExists,
    Reason::Conflict,
    Reason::Gone,
    Reason::Invalid,
    Reason::ServerTimeout,
    Reason::Timeout,
    Reason::TooManyRequests,
    Reason::BadRequest,
    Reason::MethodNotAllowed,
    Reason::NotAcceptable,
    Reason::RequestEntityTooLarge,
    Reason::UnsupportedMediaType,
    Reason::InternalError,
    Reason::Expired,
    Reason::ServiceUnavailable,
];

impl Reason {
    /// The wire form (`"NotFound"`; `""` for [`Reason::Unknown`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unknown => "",
            Reason::Unauthorized => "Unauthorized",
            Reason::Forbidden => "Forbidden",
            Reason::NotFound => "NotFound",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Gone => "Gone",
            Reason::Invalid => "Invalid",
            Reason::ServerTimeout => "ServerTimeout",
            Reason::Timeout => "Timeout",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::BadRequest => "BadRequest",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::NotAcceptable => "NotAcceptable",
            Reason::RequestEntityTooLarge => "RequestEntityTooLarge",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::InternalError => "InternalError",
            Reason::Expired => "Expired",
            Reason::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    /// The reason with this wire form, if Kubernetes defines it.
    pub fn parse(s: &str) -> Option<Reason> {
        ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The reason Kubernetes pairs with an HTTP code when none is given
    /// (`reasonForCode` in apimachinery's errors package).
    pub fn for_code(code: u16) -> Reason {
        match code {
            400 => Reason::BadRequest,
            401 => Reason::Unauthorized,
            403 => Reason::Forbidden,
            404 => Reason::NotFound,
            405 => Reason::MethodNotAllowed,
            406 => Reason::NotAcceptable,
            409 => Reason::Conflict,
            410 => Reason::Gone,
            413 => Reason::RequestEntityTooLarge,
            415 => Reason::UnsupportedMediaType,
            422 => Reason::Invalid,
            429 => Reason::TooManyRequests,
            500 => Reason::InternalError,
            503 => Reason::ServiceUnavailable,
            504 => Reason::Timeout,
            _ => Reason::Unknown,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// An error with its causes, as Go prints wrapped errors (`a: b: c`; a cause already in the
/// message is not repeated).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out = format!("{out}: {text}");
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_forms_round_trip() {
        for r in ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
        assert_eq!(Reason::parse("Bogus"), None);
        assert_eq!(Reason::for_code(422), Reason::Invalid);
        assert_eq!(Reason::Conflict, "Conflict");
    }
}
