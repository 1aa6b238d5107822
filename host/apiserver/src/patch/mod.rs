//! Patch semantics beyond RFC 6902/7386 (which the json-patch crate provides): Kubernetes'
//! strategic merge patch with per-type merge keys, and server-side apply with managedFields.

mod apply;
mod fieldset;
mod patch_meta;
mod strategic;

pub(crate) use apply::{apply, track_update, ApplyConflict};
pub(crate) use patch_meta::{list_strategy, ListStrategy};
pub(crate) use strategic::strategic_merge;
