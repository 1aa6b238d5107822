//! The embedded backend: a revision log in one SQLite file (k3s's kine is the model).
//!
//! Every write appends a row `(revision, key, value, create_revision, deleted)`; the current value
//! of a key is its newest row. The current state is also kept in memory, so reads never touch the
//! disk. One writer thread applies writes in batches (group commit): each batch is one SQLite
//! transaction in WAL mode with `synchronous=FULL`, so a write is acknowledged only after fsync.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::{Backend, Error, Event, EventKind, KeyValue, Result};

/// Largest number of writes committed in one transaction.
const MAX_BATCH: usize = 256;

enum Op {
    Create(String, Vec<u8>),
    Update(String, Vec<u8>, i64),
    Delete(String, i64),
    Compact(i64),
    /// Checkpoint the write-ahead log into the database file (on shutdown).
    Flush,
}

struct Request {
    op: Op,
    reply: oneshot::Sender<Result<KeyValue>>,
}

#[derive(Default)]
struct State {
    current: BTreeMap<String, KeyValue>,
    revision: i64,
    compacted: i64,
}

/// The embedded SQLite revision log.
pub struct SqliteBackend {
    state: Arc<RwLock<State>>,
    writes: std::sync::mpsc::Sender<Request>,
    events: broadcast::Sender<Event>,
    path: std::path::PathBuf,
}

impl SqliteBackend {
    /// Opens or creates the log at `path` and loads the current state into memory.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?;
        }
        // Refuse a newer format before writing anything; snapshot and upgrade an older one.
        crate::sqlite_file::check_format(path)?;
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS log (
                revision INTEGER PRIMARY KEY,
                key TEXT NOT NULL,
                value BLOB NOT NULL,
                create_revision INTEGER NOT NULL,
                deleted INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS log_key ON log (key, revision);
             CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )?;
        conn.execute(
            "INSERT OR IGNORE INTO meta (name, value) VALUES ('format', ?1)",
            [crate::sqlite_file::FORMAT],
        )?;
        let mut state = State::default();
        {
            let mut stmt = conn.prepare(
                "SELECT l.key, l.value, l.create_revision, l.revision, l.deleted FROM log l
                 JOIN (SELECT key, MAX(revision) AS r FROM log GROUP BY key) m
                 ON l.key = m.key AND l.revision = m.r",
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
                    state.current.insert(kv.key.clone(), kv);
                }
            }
        }
        state.revision = conn.query_row("SELECT COALESCE(MAX(revision), 0) FROM log", [], |r| {
            r.get(0)
        })?;
        let last: Option<i64> = conn
            .query_row("SELECT value FROM meta WHERE name = 'revision'", [], |r| {
                r.get(0)
            })
            .optional()?;
        state.revision = state.revision.max(last.unwrap_or(0));
        state.compacted = conn
            .query_row("SELECT value FROM meta WHERE name = 'compacted'", [], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(0);
        let state = Arc::new(RwLock::new(state));
        let (events, _) = broadcast::channel(16_384);
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = Writer {
            conn,
            state: state.clone(),
            events: events.clone(),
        };
        std::thread::Builder::new()
            .name("keelson-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::Config(format!("spawn writer: {e}")))?;
        Ok(Self {
            state,
            writes: tx,
            events,
            path: path.to_path_buf(),
        })
    }

    async fn submit(&self, op: Op) -> Result<KeyValue> {
        let (reply, rx) = oneshot::channel();
        self.writes
            .send(Request { op, reply })
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl Backend for SqliteBackend {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.read().current.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64)> {
        let state = self.read();
        let items = state
            .current
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        Ok((items, state.revision))
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        self.submit(Op::Create(key.to_string(), value)).await
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected: i64) -> Result<KeyValue> {
        self.submit(Op::Update(key.to_string(), value, expected))
            .await
    }

    async fn delete(&self, key: &str, expected: i64) -> Result<KeyValue> {
        self.submit(Op::Delete(key.to_string(), expected)).await
    }

    async fn current_revision(&self) -> Result<i64> {
        Ok(self.read().revision)
    }

    async fn watch(&self, after: i64) -> Result<mpsc::Receiver<Result<Event>>> {
        // Subscribe first, then replay history from disk, then skip live duplicates.
        let mut live = self.events.subscribe();
        let (compacted, revision) = {
            let s = self.read();
            (s.compacted, s.revision)
        };
        if after < compacted {
            return Err(Error::Expired {
                requested: after,
                oldest: compacted,
            });
        }
        let history = if after < revision {
            read_history(&self.path, after)?
        } else {
            Vec::new()
        };
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            let mut last = after;
            for ev in history {
                last = ev.kv.mod_revision;
                if tx.send(Ok(ev)).await.is_err() {
                    return;
                }
            }
            loop {
                match live.recv().await {
                    Ok(ev) if ev.kv.mod_revision <= last => continue,
                    Ok(ev) => {
                        last = ev.kv.mod_revision;
                        if tx.send(Ok(ev)).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx
                            .send(Err(Error::Expired {
                                requested: last,
                                oldest: last + 1,
                            }))
                            .await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(rx)
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        self.submit(Op::Compact(revision)).await.map(|_| ())
    }

    async fn flush(&self) -> Result<()> {
        self.submit(Op::Flush).await.map(|_| ())
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn snapshot(&self, dest: &Path) -> Result<i64> {
        let (path, dest) = (self.path.clone(), dest.to_path_buf());
        tokio::task::spawn_blocking(move || crate::sqlite_file::backup_file(&path, &dest))
            .await
            .map_err(|e| Error::Config(format!("snapshot task: {e}")))?
    }

    async fn size(&self) -> Result<u64> {
        let wal = self.path.with_extension("db-wal");
        Ok([&self.path, &wal]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum())
    }
}

/// Reads every logged event after `after`, from a separate read connection.
fn read_history(path: &Path, after: i64) -> Result<Vec<Event>> {
    let conn = Connection::open(path)?;
    let mut stmt = conn.prepare(
        "SELECT key, value, create_revision, revision, deleted FROM log WHERE revision > ?1 ORDER BY revision",
    )?;
    let rows = stmt.query_map([after], |r| {
        let kv = KeyValue {
            key: r.get(0)?,
            value: r.get(1)?,
            create_revision: r.get(2)?,
            mod_revision: r.get(3)?,
        };
        let kind = if r.get::<_, i64>(4)? != 0 {
            EventKind::Deleted
        } else if kv.create_revision != kv.mod_revision {
            EventKind::Updated
        } else {
            EventKind::Created
        };
        Ok(Event {
            kind,
            kv,
            prev: None,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// A request's reply channel and its validated outcome (event, whether it deletes).
type Outcome = (oneshot::Sender<Result<KeyValue>>, Result<(Event, bool)>);

struct Writer {
    conn: Connection,
    state: Arc<RwLock<State>>,
    events: broadcast::Sender<Event>,
}

impl Writer {
    fn run(mut self, rx: std::sync::mpsc::Receiver<Request>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            let (flushes, writes): (Vec<Request>, Vec<Request>) =
                batch.into_iter().partition(|r| matches!(r.op, Op::Flush));
            if !writes.is_empty() {
                self.commit(writes);
            }
            for flush in flushes {
                let done = self
                    .conn
                    .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
                    .map(|()| KeyValue::default())
                    .map_err(Error::from);
                let _ = flush.reply.send(done);
            }
        }
    }

    /// Validates, logs and applies one batch in a single transaction.
    fn commit(&mut self, batch: Vec<Request>) {
        let (mut revision, compacted) = {
            let s = self.state.read().unwrap_or_else(|e| e.into_inner());
            (s.revision, s.compacted)
        };
        // Changes of this batch not yet visible in `state`.
        let mut overlay: BTreeMap<String, Option<KeyValue>> = BTreeMap::new();
        let mut results: Vec<Outcome> = Vec::new();
        let mut compact_to = None;
        {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            let lookup =
                |overlay: &BTreeMap<String, Option<KeyValue>>, key: &str| match overlay.get(key) {
                    Some(v) => v.clone(),
                    None => state.current.get(key).cloned(),
                };
            for req in batch {
                let outcome = match req.op {
                    Op::Create(key, value) => match lookup(&overlay, &key) {
                        Some(_) => Err(Error::AlreadyExists(key)),
                        None => {
                            revision += 1;
                            let kv = KeyValue {
                                key: key.clone(),
                                value,
                                create_revision: revision,
                                mod_revision: revision,
                            };
                            overlay.insert(key, Some(kv.clone()));
                            Ok((
                                Event {
                                    kind: EventKind::Created,
                                    kv,
                                    prev: None,
                                },
                                false,
                            ))
                        }
                    },
                    Op::Update(key, value, expected) => match lookup(&overlay, &key) {
                        None => Err(Error::NotFound(key)),
                        Some(old) if expected != 0 && old.mod_revision != expected => {
                            Err(Error::Conflict(key))
                        }
                        Some(old) => {
                            revision += 1;
                            let kv = KeyValue {
                                key: key.clone(),
                                value,
                                create_revision: old.create_revision,
                                mod_revision: revision,
                            };
                            overlay.insert(key, Some(kv.clone()));
                            Ok((
                                Event {
                                    kind: EventKind::Updated,
                                    kv,
                                    prev: Some(old.value),
                                },
                                false,
                            ))
                        }
                    },
                    Op::Delete(key, expected) => match lookup(&overlay, &key) {
                        None => Err(Error::NotFound(key)),
                        Some(old) if expected != 0 && old.mod_revision != expected => {
                            Err(Error::Conflict(key))
                        }
                        Some(old) => {
                            revision += 1;
                            let kv = KeyValue {
                                mod_revision: revision,
                                ..old
                            };
                            overlay.insert(key, None);
                            Ok((
                                Event {
                                    kind: EventKind::Deleted,
                                    kv,
                                    prev: None,
                                },
                                true,
                            ))
                        }
                    },
                    // Taken out of every batch by `run`.
                    Op::Flush => continue,
                    Op::Compact(rev) => {
                        compact_to = Some(rev.min(revision).max(compacted));
                        Ok((
                            Event {
                                kind: EventKind::Updated,
                                kv: KeyValue {
                                    key: String::new(),
                                    value: Vec::new(),
                                    create_revision: 0,
                                    mod_revision: rev,
                                },
                                prev: None,
                            },
                            false,
                        ))
                    }
                };
                results.push((req.reply, outcome));
            }
        }
        let written = self.write_log(&results, revision, compact_to);
        if let Err(e) = written {
            tracing::error!(error = %e, "store commit failed");
            for (reply, _) in results {
                let _ = reply.send(Err(Error::Config(format!("commit failed: {e}"))));
            }
            return;
        }
        {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            for (key, v) in overlay {
                match v {
                    Some(kv) => state.current.insert(key, kv),
                    None => state.current.remove(&key),
                };
            }
            state.revision = revision;
            if let Some(c) = compact_to {
                state.compacted = c;
            }
        }
        for (reply, outcome) in results {
            match outcome {
                Ok((ev, _)) => {
                    if !ev.kv.key.is_empty() {
                        let _ = self.events.send(ev.clone());
                    }
                    let _ = reply.send(Ok(ev.kv));
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            }
        }
    }

    fn write_log(
        &mut self,
        results: &[Outcome],
        revision: i64,
        compact_to: Option<i64>,
    ) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO log (revision, key, value, create_revision, deleted) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (_, outcome) in results {
                if let Ok((ev, deleted)) = outcome {
                    if ev.kv.key.is_empty() {
                        continue;
                    }
                    insert.execute(params![
                        ev.kv.mod_revision,
                        ev.kv.key,
                        ev.kv.value,
                        ev.kv.create_revision,
                        *deleted as i64
                    ])?;
                }
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO meta (name, value) VALUES ('revision', ?1)",
            [revision],
        )?;
        if let Some(c) = compact_to {
            // Keep the newest row of every live key; drop superseded rows and old tombstones.
            tx.execute(
                "DELETE FROM log WHERE revision <= ?1 AND revision < (SELECT MAX(p.revision) FROM log p WHERE p.key = log.key)",
                [c],
            )?;
            tx.execute("DELETE FROM log WHERE revision <= ?1 AND deleted = 1", [c])?;
            tx.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES ('compacted', ?1)",
                [c],
            )?;
        }
        tx.commit()
    }
}
