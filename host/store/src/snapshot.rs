//! Snapshot files: the container format (magic, JSON header with backend, revision and SHA-256
//! of the payload, then the payload), listing, pruning, verification and restore into a new
//! data dir.
//!
//! The payload is the backend's own consistent copy: an SQLite database made with SQLite's
//! online backup API for the embedded store, etcd's maintenance snapshot (a bbolt file) for
//! etcd. A file that does not start with the magic, whose header does not parse, whose length
//! does not match the header, or whose payload does not hash to the recorded checksum is
//! refused with an error naming the file, before anything is written.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// First bytes of every snapshot file.
const MAGIC: &[u8; 8] = b"KEELSNAP";
/// Version of the container format.
const CONTAINER_VERSION: u32 = 1;
/// File name extension of snapshots.
pub const EXTENSION: &str = "ksnap";
/// Largest header we accept (a header is a few hundred bytes).
const MAX_HEADER: u32 = 64 * 1024;

/// What a snapshot file records about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotInfo {
    /// The snapshot's name (its file name without the extension).
    pub name: String,
    /// `embedded` or `etcd`: what the payload is.
    pub backend: String,
    /// The store revision the snapshot holds: every write up to it, none after (for etcd, the
    /// revision read just before the snapshot began: every write up to it is included).
    pub revision: i64,
    /// When it was taken (seconds since the Unix epoch).
    pub created_unix: u64,
    /// Payload size in bytes.
    pub size: u64,
    /// SHA-256 of the payload, hex.
    pub sha256: String,
    /// Container format version.
    pub version: u32,
    /// Where the file is (not stored in the file).
    #[serde(skip)]
    pub path: PathBuf,
}

fn bad(file: &Path, reason: impl Into<String>) -> Error {
    Error::Snapshot {
        file: file.to_path_buf(),
        reason: reason.into(),
    }
}

fn io(file: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| bad(file, e.to_string())
}

/// The default name of a snapshot taken at `revision` now.
pub fn default_name(revision: i64) -> String {
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    format!("snapshot-{now}-r{revision}")
}

/// Refuses names that are not plain file names.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "invalid snapshot name {name:?}: use letters, digits, '-', '_' and '.'"
        )))
    }
}

/// Wraps `payload` (a file the backend wrote) into `<dir>/<name>.ksnap` and removes `payload`.
/// The file is written under a temporary name and renamed, so a crash leaves no half snapshot.
pub fn seal(
    dir: &Path,
    name: &str,
    backend: &str,
    revision: i64,
    payload: &Path,
) -> Result<SnapshotInfo> {
    check_name(name)?;
    let path = dir.join(format!("{name}.{EXTENSION}"));
    if path.exists() {
        let _ = std::fs::remove_file(payload);
        return Err(bad(&path, "a snapshot of that name exists"));
    }
    let (size, sha256) = hash_file(payload)?;
    let created_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let info = SnapshotInfo {
        name: name.to_string(),
        backend: backend.to_string(),
        revision,
        created_unix,
        size,
        sha256,
        version: CONTAINER_VERSION,
        path: path.clone(),
    };
    let header = serde_json::to_vec(&info).map_err(|e| bad(&path, e.to_string()))?;
    let tmp = dir.join(format!(".{name}.{EXTENSION}.tmp"));
    let written = (|| -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        out.write_all(MAGIC)?;
        out.write_all(&(header.len() as u32).to_le_bytes())?;
        out.write_all(&header)?;
        std::io::copy(&mut std::fs::File::open(payload)?, &mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    let _ = std::fs::remove_file(payload);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(bad(&path, e.to_string()));
    }
    Ok(info)
}

fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    hash_reader(&mut f, u64::MAX).map_err(io(path))
}

fn hash_reader(r: &mut impl Read, limit: u64) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    let mut r = r.take(limit);
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hex(&hasher.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a snapshot's header (no checksum check) and returns it with the payload's offset.
pub fn inspect(path: &Path) -> Result<(SnapshotInfo, u64)> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let len = f.metadata().map_err(io(path))?.len();
    let mut magic = [0u8; 8];
    if f.read_exact(&mut magic).is_err() || &magic != MAGIC {
        return Err(bad(path, "not a Keelson snapshot (wrong magic bytes)"));
    }
    let mut n = [0u8; 4];
    f.read_exact(&mut n)
        .map_err(|_| bad(path, "truncated: the header is cut off"))?;
    let n = u32::from_le_bytes(n);
    if n > MAX_HEADER || 12 + n as u64 > len {
        return Err(bad(path, "truncated or corrupt: bad header length"));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)
        .map_err(|_| bad(path, "truncated: the header is cut off"))?;
    let mut info: SnapshotInfo =
        serde_json::from_slice(&header).map_err(|e| bad(path, format!("corrupt header: {e}")))?;
    if info.version > CONTAINER_VERSION {
        return Err(bad(
            path,
            format!(
                "snapshot format {} is newer than this keelson supports ({CONTAINER_VERSION})",
                info.version
            ),
        ));
    }
    let offset = 12 + n as u64;
    let actual = len - offset;
    if actual != info.size {
        return Err(bad(
            path,
            format!(
                "truncated or padded: payload is {actual} bytes, header says {}",
                info.size
            ),
        ));
    }
    info.path = path.to_path_buf();
    Ok((info, offset))
}

/// Reads a snapshot's header and checks the payload against its SHA-256.
pub fn verify(path: &Path) -> Result<(SnapshotInfo, u64)> {
    let (info, offset) = inspect(path)?;
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    f.seek(SeekFrom::Start(offset)).map_err(io(path))?;
    let (_, sha) = hash_reader(&mut f, info.size).map_err(io(path))?;
    if sha != info.sha256 {
        return Err(bad(
            path,
            format!(
                "checksum mismatch: payload hashes to {sha}, header says {}",
                info.sha256
            ),
        ));
    }
    Ok((info, offset))
}

/// Every readable snapshot in `dir`, oldest first (files that fail to parse are skipped with a
/// warning; `verify` names their problem).
pub fn list(dir: &Path) -> Result<Vec<SnapshotInfo>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(bad(dir, e.to_string())),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
            continue;
        }
        match inspect(&path) {
            Ok((info, _)) => out.push(info),
            Err(e) => tracing::warn!(error = %e, "skipping unreadable snapshot"),
        }
    }
    out.sort_by(|a, b| (a.created_unix, &a.name).cmp(&(b.created_unix, &b.name)));
    Ok(out)
}

/// Deletes the named snapshot in `dir`.
pub fn delete(dir: &Path, name: &str) -> Result<PathBuf> {
    check_name(name)?;
    let path = dir.join(format!("{name}.{EXTENSION}"));
    std::fs::remove_file(&path).map_err(io(&path))?;
    Ok(path)
}

/// Deletes all but the newest `keep` snapshots in `dir` (only those whose name starts with
/// `prefix`, when given); returns what it deleted.
pub fn prune(dir: &Path, keep: usize, prefix: Option<&str>) -> Result<Vec<SnapshotInfo>> {
    let mut all = list(dir)?;
    if let Some(p) = prefix {
        all.retain(|s| s.name.starts_with(p));
    }
    let excess = all.len().saturating_sub(keep);
    let doomed: Vec<SnapshotInfo> = all.into_iter().take(excess).collect();
    for s in &doomed {
        std::fs::remove_file(&s.path).map_err(io(&s.path))?;
    }
    Ok(doomed)
}

/// Snapshots the embedded store of `data_dir` without a server (SQLite's online backup, so
/// a server still running on it is no problem either) into `<data_dir>/snapshots/`.
pub fn save_embedded(data_dir: &Path, name: Option<&str>) -> Result<SnapshotInfo> {
    let state = data_dir.join("state.db");
    if !state.exists() {
        return Err(bad(&state, "no embedded store here"));
    }
    if let Some(n) = name {
        check_name(n)?;
    }
    crate::sqlite_file::check_format(&state)?;
    let dir = data_dir.join("snapshots");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let payload = dir.join(format!(".payload-offline-{}.tmp", std::process::id()));
    let revision = match crate::sqlite_file::backup_file(&state, &payload) {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&payload);
            return Err(e);
        }
    };
    let name = name
        .map(str::to_string)
        .unwrap_or_else(|| default_name(revision));
    seal(&dir, &name, "embedded", revision, &payload)
}

/// Copies the verified payload of `snapshot` to `dest`.
pub(crate) fn extract(snapshot: &Path, offset: u64, size: u64, dest: &Path) -> Result<()> {
    let copied = (|| -> std::io::Result<u64> {
        let mut f = std::fs::File::open(snapshot)?;
        f.seek(SeekFrom::Start(offset))?;
        let mut out = std::fs::File::create(dest)?;
        let n = std::io::copy(&mut f.take(size), &mut out)?;
        out.sync_all()?;
        Ok(n)
    })();
    match copied {
        Ok(n) if n == size => Ok(()),
        Ok(n) => Err(bad(snapshot, format!("payload ended after {n} bytes"))),
        Err(e) => Err(bad(dest, e.to_string())),
    }
}

/// What [`restore`] produced.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The snapshot restored.
    pub info: SnapshotInfo,
    /// For an embedded snapshot: the store's revision after restore (snapshot revision plus
    /// the bump); watches from any older revision get 410 Expired.
    pub revision: i64,
    /// For an etcd snapshot: the etcd data dir written (start etcd on it).
    pub etcd_data_dir: Option<PathBuf>,
}

/// Restores `snapshot` into the new data dir `data_dir` after verifying its checksum.
///
/// An embedded snapshot becomes `<data_dir>/state.db`: objects keep their uids and
/// resourceVersions; the store's revision is raised by `bump` and everything at or below it
/// is marked compacted, so clients that watched the old server get 410 and re-list instead of
/// missing events. An etcd snapshot is restored with `etcdctl snapshot restore` into
/// `<data_dir>/etcd` (start etcd there, then `keelson server --store etcd://…`).
/// Refuses a data dir that already holds a store; on any error nothing is left behind.
pub fn restore(snapshot: &Path, data_dir: &Path, bump: i64) -> Result<Restored> {
    let (info, offset) = verify(snapshot)?;
    let state = data_dir.join("state.db");
    let etcd_dir = data_dir.join("etcd");
    for existing in [&state, &etcd_dir] {
        if existing.exists() {
            return Err(bad(
                existing,
                "exists: restore writes a new data dir; pick an empty one",
            ));
        }
    }
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    match info.backend.as_str() {
        "embedded" => {
            let tmp = data_dir.join(".state.db.restoring");
            let _ = std::fs::remove_file(&tmp);
            let done = extract(snapshot, offset, info.size, &tmp)
                .and_then(|()| crate::sqlite_file::prepare_restored(&tmp, info.revision + bump))
                .map_err(|e| match e {
                    Error::Sqlite(e) => bad(snapshot, format!("payload is not a store: {e}")),
                    e => e,
                })
                .and_then(|()| std::fs::rename(&tmp, &state).map_err(io(&state)));
            if let Err(e) = done {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            Ok(Restored {
                revision: info.revision + bump,
                info,
                etcd_data_dir: None,
            })
        }
        "etcd" => {
            let tmp = data_dir.join(".etcd-snapshot.db");
            extract(snapshot, offset, info.size, &tmp)?;
            let out = std::process::Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(["snapshot", "restore"])
                .arg(&tmp)
                .arg("--data-dir")
                .arg(&etcd_dir)
                .output();
            let _ = std::fs::remove_file(&tmp);
            match out {
                Ok(o) if o.status.success() => Ok(Restored {
                    revision: info.revision,
                    info,
                    etcd_data_dir: Some(etcd_dir),
                }),
                Ok(o) => {
                    let _ = std::fs::remove_dir_all(&etcd_dir);
                    Err(bad(
                        snapshot,
                        format!(
                            "etcdctl snapshot restore failed: {}",
                            String::from_utf8_lossy(&o.stderr).trim()
                        ),
                    ))
                }
                Err(e) => Err(bad(snapshot, format!("running etcdctl: {e}"))),
            }
        }
        other => Err(bad(snapshot, format!("unknown backend {other:?}"))),
    }
}
