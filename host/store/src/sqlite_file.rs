//! File-level operations on the embedded store's SQLite file: its format version (checked
//! before anything is written; an older file is snapshotted, then upgraded in place), online
//! backups (SQLite's backup API, one step under one read transaction, so the copy is one
//! consistent revision while the writer goes on), and preparing a restored copy.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::{Error, Result};

/// Format version of the embedded store this binary writes. Version 0 (no `format` row) is
/// the layout before versions were recorded; it has the same tables.
pub(crate) const FORMAT: i64 = 1;

fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// The recorded format of an open store: `None` for an empty (new) file, `Some(0)` for a
/// store from before versions were recorded.
pub(crate) fn format_of(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    if !has_table(conn, "log")? {
        return Ok(None);
    }
    if !has_table(conn, "meta")? {
        return Ok(Some(0));
    }
    Ok(Some(
        conn.query_row("SELECT value FROM meta WHERE name = 'format'", [], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(0),
    ))
}

/// Checks the format of the store at `path` before the backend opens it for writing: a newer
/// format is refused (nothing is written); an older one is snapshotted into
/// `<dir>/snapshots/` and then upgraded in place. Returns the snapshot taken, if any.
pub(crate) fn check_format(path: &Path) -> Result<Option<crate::SnapshotInfo>> {
    if !path.exists() {
        return Ok(None);
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let found = format_of(&conn)?;
    match found {
        None => Ok(None),
        Some(v) if v == FORMAT => Ok(None),
        Some(v) if v > FORMAT => Err(Error::FormatTooNew {
            file: path.to_path_buf(),
            found: v,
            supported: FORMAT,
        }),
        Some(v) => {
            let dir = path
                .parent()
                .unwrap_or_else(|| Path::new("."))
                .join("snapshots");
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?;
            let payload = dir.join(".format-upgrade.payload");
            let revision = backup(&conn, &payload)?;
            let name = format!(
                "pre-format-{FORMAT}-from-{v}-{}",
                crate::snapshot::default_name(revision)
            );
            let info = crate::snapshot::seal(&dir, &name, "embedded", revision, &payload)?;
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
            )?;
            set_format(&conn)?;
            tracing::warn!(
                file = %path.display(),
                from = v,
                to = FORMAT,
                snapshot = %info.path.display(),
                "upgraded the store format after a snapshot"
            );
            Ok(Some(info))
        }
    }
}

/// Records this binary's format version.
pub(crate) fn set_format(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO meta (name, value) VALUES ('format', ?1)",
        [FORMAT],
    )
    .map(|_| ())
}

/// The newest revision recorded in a store file.
pub(crate) fn revision_of(conn: &Connection) -> rusqlite::Result<i64> {
    let logged: i64 = conn.query_row("SELECT COALESCE(MAX(revision), 0) FROM log", [], |r| {
        r.get(0)
    })?;
    let meta: Option<i64> = if has_table(conn, "meta")? {
        conn.query_row("SELECT value FROM meta WHERE name = 'revision'", [], |r| {
            r.get(0)
        })
        .optional()?
    } else {
        None
    };
    Ok(logged.max(meta.unwrap_or(0)))
}

/// Copies the database behind `source` to `dest` with SQLite's online backup API in a single
/// step (one read transaction: a consistent copy even while another connection writes), and
/// returns the revision the copy holds.
pub(crate) fn backup(source: &Connection, dest: &Path) -> Result<i64> {
    let _ = std::fs::remove_file(dest);
    let mut out = Connection::open(dest)?;
    {
        let backup = rusqlite::backup::Backup::new(source, &mut out)?;
        loop {
            match backup.step(-1)? {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => continue,
                // Busy/Locked: the writer holds a lock for a moment.
                _ => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
    }
    // A self-contained file: no WAL beside it.
    out.pragma_update(None, "journal_mode", "DELETE")?;
    let revision = revision_of(&out)?;
    drop(out);
    Ok(revision)
}

/// Takes an online backup of the store file at `path` into `dest`; returns its revision.
pub(crate) fn backup_file(path: &Path, dest: &Path) -> Result<i64> {
    let source = Connection::open(path)?;
    backup(&source, dest)
}

/// Makes a restored copy ready to serve: checks it is a store of a format this binary reads,
/// sets its revision to `revision` and marks everything at or below it compacted (history is
/// dropped; current values keep their revisions), and records the format.
pub(crate) fn prepare_restored(path: &Path, revision: i64) -> Result<()> {
    let conn = Connection::open(path)?;
    match format_of(&conn)? {
        None => {
            return Err(Error::Config(format!(
                "{}: the snapshot holds no store",
                path.display()
            )))
        }
        Some(v) if v > FORMAT => {
            return Err(Error::FormatTooNew {
                file: path.to_path_buf(),
                found: v,
                supported: FORMAT,
            })
        }
        Some(_) => {}
    }
    let tx = conn.unchecked_transaction()?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
         DELETE FROM log WHERE revision < (SELECT MAX(p.revision) FROM log p WHERE p.key = log.key);
         DELETE FROM log WHERE deleted = 1;",
    )?;
    for name in ["revision", "compacted"] {
        tx.execute(
            "INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)",
            rusqlite::params![name, revision],
        )?;
    }
    set_format(&tx)?;
    tx.commit()?;
    conn.execute_batch("VACUUM;")?;
    Ok(())
}
