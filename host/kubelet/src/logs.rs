//! Container log files, in the CRI format the kubelet uses (`<RFC 3339 nano> <stream> <F|P>
//! <line>`), one file per container run: `<root>/<ns>_<pod>_<uid>/<container>/<restart>.log`.
//! [`LogWriter`] receives a running guest's output; [`LogStore`] knows which run of each
//! container is current (for `--previous` and `-f`) and renders logs as `kubectl logs` shows
//! them (`tailLines`, `sinceSeconds`, `timestamps`, `limitBytes`).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use k8s_openapi::jiff::Timestamp;

use crate::runtime::{OutputSink, Stream};

/// Identifies a container of a pod: (namespace, pod name, container name).
pub(crate) type ContainerKey = (String, String, String);

/// The current run of a container.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) dir: PathBuf,
    pub(crate) restart: i32,
    pub(crate) running: bool,
}

/// All log files of the node and the current run of every container.
pub(crate) struct LogStore {
    root: PathBuf,
    runs: Mutex<HashMap<ContainerKey, Run>>,
}

/// What a log request asks for.
#[derive(Debug, Default, Clone)]
pub(crate) struct LogOptions {
    pub(crate) previous: bool,
    pub(crate) follow: bool,
    pub(crate) timestamps: bool,
    pub(crate) tail_lines: Option<usize>,
    pub(crate) since_seconds: Option<i64>,
    pub(crate) since_time: Option<Timestamp>,
    pub(crate) limit_bytes: Option<usize>,
}

impl LogStore {
    pub(crate) fn new(root: PathBuf) -> Self {
        LogStore {
            root,
            runs: Mutex::new(HashMap::new()),
        }
    }

    /// The directory of a pod's logs and volumes.
    pub(crate) fn pod_dir(&self, ns: &str, pod: &str, uid: &str) -> PathBuf {
        self.root.join(format!("{ns}_{pod}_{uid}"))
    }

    /// Opens the log of run `restart` of a container and marks it current and running.
    pub(crate) fn start(
        &self,
        key: &ContainerKey,
        uid: &str,
        restart: i32,
    ) -> std::io::Result<LogWriter> {
        let dir = self.pod_dir(&key.0, &key.1, uid).join(&key.2);
        std::fs::create_dir_all(&dir)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{restart}.log")))?;
        self.lock().insert(
            key.clone(),
            Run {
                dir,
                restart,
                running: true,
            },
        );
        Ok(LogWriter {
            file: Mutex::new((file, Vec::new(), Vec::new())),
            attached: tokio::sync::broadcast::channel(ATTACH_BACKLOG).0,
        })
    }

    /// Records that a run of a container is known without being started now (an adopted pod):
    /// logs of earlier runs stay readable.
    pub(crate) fn adopt(&self, key: &ContainerKey, uid: &str, restart: i32) {
        let dir = self.pod_dir(&key.0, &key.1, uid).join(&key.2);
        self.lock().entry(key.clone()).or_insert(Run {
            dir,
            restart,
            running: false,
        });
    }

    /// Marks the current run of a container as ended.
    pub(crate) fn finish(&self, key: &ContainerKey) {
        if let Some(run) = self.lock().get_mut(key) {
            run.running = false;
        }
    }

    /// Forgets a pod and deletes its logs.
    pub(crate) fn remove_pod(&self, ns: &str, pod: &str, uid: &str) {
        self.lock().retain(|k, _| !(k.0 == ns && k.1 == pod));
        let _ = std::fs::remove_dir_all(self.pod_dir(ns, pod, uid));
    }

    pub(crate) fn run(&self, key: &ContainerKey) -> Option<Run> {
        self.lock().get(key).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ContainerKey, Run>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Renders CRI log lines as `kubectl logs` prints them.
pub(crate) fn render(text: &str, opts: &LogOptions, now: Timestamp) -> Vec<u8> {
    let since = opts
        .since_seconds
        .map(|s| now - k8s_openapi::jiff::SignedDuration::from_secs(s))
        .into_iter()
        .chain(opts.since_time)
        .max();
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(4, ' ');
        let (Some(ts), Some(_stream), Some(tag), msg) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if let (Some(since), Ok(t)) = (since, ts.parse::<Timestamp>()) {
            if t < since {
                continue;
            }
        }
        let mut out = String::new();
        if opts.timestamps {
            out.push_str(ts);
            out.push(' ');
        }
        out.push_str(msg.unwrap_or_default());
        if tag == "F" {
            out.push('\n');
        }
        lines.push(out);
    }
    if let Some(n) = opts.tail_lines {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    let mut bytes = lines.concat().into_bytes();
    if let Some(limit) = opts.limit_bytes {
        bytes.truncate(limit);
    }
    bytes
}

/// The file of run `restart` in a container's log dir.
pub(crate) fn run_file(dir: &Path, restart: i32) -> PathBuf {
    dir.join(format!("{restart}.log"))
}

/// Writes one container run's output as CRI log lines, and passes it on to the clients
/// attached to the container (`kubectl attach`) as it comes.
pub(crate) struct LogWriter {
    /// The file and the unfinished line of stdout and of stderr.
    file: Mutex<(std::fs::File, Vec<u8>, Vec<u8>)>,
    /// Output as it comes, for attached clients; closed when the run ends (the writer drops).
    attached: tokio::sync::broadcast::Sender<(Stream, bytes::Bytes)>,
}

/// Chunks an attached client may fall behind by before it misses output.
const ATTACH_BACKLOG: usize = 256;

/// Longest partial line kept before it is written as a `P` record.
const MAX_PARTIAL: usize = 16 * 1024;

fn record(file: &mut std::fs::File, stream: Stream, tag: char, line: &[u8]) {
    let ts = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.9fZ");
    let name = match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    };
    let mut rec = format!("{ts} {name} {tag} ").into_bytes();
    rec.extend_from_slice(line);
    rec.push(b'\n');
    if let Err(e) = file.write_all(&rec) {
        tracing::warn!(error = %e, "cannot write container log");
    }
}

impl LogWriter {
    /// The output from now on, until the run ends.
    pub(crate) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<(Stream, bytes::Bytes)> {
        self.attached.subscribe()
    }

    /// Writes out unfinished lines (at the end of a run).
    pub(crate) fn close(&self) {
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let (file, out, err) = &mut *guard;
        for (stream, buf) in [(Stream::Stdout, out), (Stream::Stderr, err)] {
            if !buf.is_empty() {
                record(file, stream, 'F', buf);
                buf.clear();
            }
        }
    }
}

impl OutputSink for LogWriter {
    fn write(&self, stream: Stream, bytes: &[u8]) {
        if self.attached.receiver_count() > 0 {
            let _ = self
                .attached
                .send((stream, bytes::Bytes::copy_from_slice(bytes)));
        }
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let (file, out, err) = &mut *guard;
        let buf = match stream {
            Stream::Stdout => out,
            Stream::Stderr => err,
        };
        buf.extend_from_slice(bytes);
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            record(file, stream, 'F', &line[..line.len() - 1]);
        }
        if buf.len() > MAX_PARTIAL {
            let line = std::mem::take(buf);
            record(file, stream, 'P', &line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_cri_lines_and_renders_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf());
        let key = ("ns".to_string(), "p".to_string(), "c".to_string());
        let w = store.start(&key, "u1", 0).unwrap();
        w.write(Stream::Stdout, b"one\ntw");
        w.write(Stream::Stderr, b"err\n");
        w.write(Stream::Stdout, b"o\nthree");
        w.close();
        store.finish(&key);
        let run = store.run(&key).unwrap();
        assert!(!run.running);
        let text = std::fs::read_to_string(run_file(&run.dir, 0)).unwrap();
        assert_eq!(text.lines().count(), 4);
        assert!(
            text.lines().nth(1).unwrap().contains(" stderr F err"),
            "{text}"
        );
        let all = render(&text, &LogOptions::default(), Timestamp::now());
        assert_eq!(String::from_utf8(all).unwrap(), "one\nerr\ntwo\nthree\n");
        let tail = LogOptions {
            tail_lines: Some(2),
            ..Default::default()
        };
        assert_eq!(render(&text, &tail, Timestamp::now()), b"two\nthree\n");
        let stamped = LogOptions {
            timestamps: true,
            limit_bytes: Some(10),
            ..Default::default()
        };
        assert_eq!(render(&text, &stamped, Timestamp::now()).len(), 10);
        let future = Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_secs(60);
        let since = LogOptions {
            since_seconds: Some(1),
            ..Default::default()
        };
        assert!(render(&text, &since, future).is_empty());
        let since_time = LogOptions {
            since_time: Some(future),
            ..Default::default()
        };
        assert!(render(&text, &since_time, Timestamp::now()).is_empty());
        store.remove_pod("ns", "p", "u1");
        assert!(store.run(&key).is_none());
        assert!(!dir.path().join("ns_p_u1").exists());
    }
}
