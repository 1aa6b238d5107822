//! The one error type of the plugin host.

/// What can go wrong loading or calling a plugin.
///
/// Call errors (`Trap`, `Deadline`, `MemoryLimit`, `BadOutput`) leave the plugin
/// usable: every call runs on a fresh instance, so the next call starts clean.
/// Load errors (`Compile`, `Io`, `Limits`) mean the new version is not running;
/// the caller keeps the old one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The guest trapped: a panic, `unreachable`, a stack overflow, an
    /// out-of-bounds access, or an instantiation failure. Carries wasmtime's
    /// message and the first bytes the guest wrote to stdout/stderr.
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The call ran past its timeout (epoch deadline) or used up its fuel.
    #[error("plugin exceeded its deadline of {0:?}")]
    Deadline(std::time::Duration),
    /// The guest tried to grow its memory past the plugin's memory cap, in bytes.
    #[error("plugin exceeded its memory limit of {0} bytes")]
    MemoryLimit(usize),
    /// The guest returned something the host refuses: an oversized message, too
    /// many warnings, a patch that is not a JSON Patch array, a bad status code.
    #[error("plugin returned bad output: {0}")]
    BadOutput(String),
    /// The bytes are not a valid component, or it does not implement the world
    /// (missing exports, imports the host does not provide).
    #[error("plugin does not compile: {0}")]
    Compile(String),
    /// Reading or writing the precompiled-component cache failed.
    #[error("plugin cache i/o")]
    Io(#[from] std::io::Error),
    /// The requested limits cannot be enforced by this host, e.g. a memory cap
    /// above the pool's slot size, or fuel on a host built without fuel metering.
    #[error("unsupported plugin limits: {0}")]
    Limits(String),
}

impl Error {
    /// Short stable name of the variant, for metrics labels and logs:
    /// `trap`, `deadline`, `memory_limit`, `bad_output`, `compile`, `io`, `limits`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Trap(_) => "trap",
            Error::Deadline(_) => "deadline",
            Error::MemoryLimit(_) => "memory_limit",
            Error::BadOutput(_) => "bad_output",
            Error::Compile(_) => "compile",
            Error::Io(_) => "io",
            Error::Limits(_) => "limits",
        }
    }
}
