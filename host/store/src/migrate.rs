//! Moving the embedded store into etcd (`keelson store migrate`): every live key is written
//! in the order of its revision, so what was written later is written later; the target must
//! be empty unless forced. etcd assigns its own revisions, so resourceVersions change (clients
//! re-list, as after any store move); uids and contents do not.

use std::collections::BTreeMap;
use std::path::Path;

use etcd_client::{Client, GetOptions};
use rusqlite::Connection;

use crate::{Error, KeyValue, Result};

/// What a migration copied.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Keys copied, by resource (the key segment after `/registry/`).
    pub by_resource: BTreeMap<String, u64>,
    /// All keys copied.
    pub total: u64,
    /// The source store's revision.
    pub source_revision: i64,
    /// etcd's revision after the copy.
    pub target_revision: i64,
}

/// The live keys of the embedded store in `data_dir`, oldest modification first, and the
/// store's revision (read in one transaction: consistent even if a server still runs on it).
pub fn read_embedded(data_dir: &Path) -> Result<(Vec<KeyValue>, i64)> {
    let path = data_dir.join("state.db");
    if !path.exists() {
        return Err(Error::Config(format!(
            "{}: no embedded store here",
            path.display()
        )));
    }
    crate::sqlite_file::check_format(&path)?;
    let mut conn = Connection::open(&path)?;
    let tx = conn.transaction()?;
    let revision = crate::sqlite_file::revision_of(&tx)?;
    let mut items = Vec::new();
    {
        let mut stmt = tx.prepare(
            "SELECT l.key, l.value, l.create_revision, l.revision, l.deleted FROM log l
             JOIN (SELECT key, MAX(revision) AS r FROM log GROUP BY key) m
             ON l.key = m.key AND l.revision = m.r ORDER BY l.revision",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                KeyValue {
                    key: r.get(0)?,
                    value: r.get(1)?,
                    create_revision: r.get(2)?,
                    mod_revision: r.get(3)?,
                },
                r.get::<_, i64>(4)? != 0,
            ))
        })?;
        for row in rows {
            let (kv, deleted) = row?;
            if !deleted {
                items.push(kv);
            }
        }
    }
    Ok((items, revision))
}

/// The resource a key belongs to: `/registry/<group>/<plural>/…` → `plural.group` (core: `plural`).
fn resource_of(key: &str) -> String {
    let mut parts = key.strip_prefix("/registry/").unwrap_or(key).split('/');
    match (parts.next(), parts.next()) {
        (Some("core"), Some(plural)) => plural.to_string(),
        (Some(group), Some(plural)) => format!("{plural}.{group}"),
        (Some(other), None) => other.to_string(),
        _ => String::new(),
    }
}

/// Copies the embedded store in `data_dir` into the etcd cluster at `endpoints`
/// (`http://host:port`), in revision order. Refuses a target that has keys under
/// `/registry/` unless `force`. `progress(done, total)` is called as keys are written.
pub async fn embedded_to_etcd(
    data_dir: &Path,
    endpoints: &[String],
    force: bool,
    mut progress: impl FnMut(u64, u64),
) -> Result<Report> {
    let dir = data_dir.to_path_buf();
    let (items, source_revision) = tokio::task::spawn_blocking(move || read_embedded(&dir))
        .await
        .map_err(|e| Error::Config(format!("reading the store: {e}")))??;
    let client = Client::connect(endpoints, None).await?;
    let mut kv = client.kv_client();
    let existing = kv
        .get(
            "/registry/",
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await?
        .count();
    if existing > 0 && !force {
        return Err(Error::Config(format!(
            "the target etcd already holds {existing} keys under /registry/; refusing to mix stores (pass --force to overwrite)"
        )));
    }
    let mut report = Report {
        source_revision,
        ..Default::default()
    };
    let total = items.len() as u64;
    progress(0, total);
    for item in items {
        let resp = kv.put(item.key.as_str(), item.value, None).await?;
        if let Some(h) = resp.header() {
            report.target_revision = h.revision();
        }
        *report
            .by_resource
            .entry(resource_of(&item.key))
            .or_default() += 1;
        report.total += 1;
        progress(report.total, total);
    }
    Ok(report)
}
