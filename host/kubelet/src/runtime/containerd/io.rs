//! A containerd task's stdout and stderr: two FIFOs per container run that the runc shim
//! writes and an agent thread each reads into the container's log ([`OutputSink`]). Each
//! reader opens its FIFO blocking (so it sees EOF only once the shim closed its end) and ends
//! when the process and everything that inherited the descriptors have exited.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::runtime::{OutputSink, Stream};

/// The FIFOs of one container run and the threads reading them.
pub(crate) struct Fifos {
    pub(crate) dir: PathBuf,
    /// The stdin FIFO, when the process gets one.
    pub(crate) stdin: Option<PathBuf>,
    pub(crate) stdout: PathBuf,
    pub(crate) stderr: PathBuf,
    done: Vec<oneshot::Receiver<()>>,
}

fn mkfifo(path: &Path) -> std::io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Fifos {
    /// Makes the FIFOs in `dir` (a stdin FIFO too when `stdin`) and starts reading stdout and
    /// stderr into `sink`.
    pub(crate) fn open_with_stdin(
        dir: PathBuf,
        sink: Arc<dyn OutputSink>,
        stdin: bool,
    ) -> std::io::Result<Self> {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let stdin = match stdin {
            true => {
                let path = dir.join("stdin");
                mkfifo(&path)?;
                Some(path)
            }
            false => None,
        };
        let stdout = dir.join("stdout");
        let stderr = dir.join("stderr");
        mkfifo(&stdout)?;
        mkfifo(&stderr)?;
        let mut done = Vec::new();
        for (path, stream) in [(&stdout, Stream::Stdout), (&stderr, Stream::Stderr)] {
            let (tx, rx) = oneshot::channel();
            let (path, sink) = (path.clone(), sink.clone());
            std::thread::Builder::new()
                .name("container-io".into())
                .spawn(move || {
                    if let Ok(mut file) = std::fs::File::open(&path) {
                        let mut buf = vec![0u8; 32 * 1024];
                        while let Ok(n) = file.read(&mut buf) {
                            if n == 0 {
                                break;
                            }
                            sink.write(stream, &buf[..n]);
                        }
                    }
                    let _ = tx.send(());
                })?;
            done.push(rx);
        }
        Ok(Fifos {
            dir,
            stdin,
            stdout,
            stderr,
            done,
        })
    }

    /// Unblocks readers whose FIFO was never opened by a writer (the task did not start): a
    /// read-write open never blocks and counts as the writer their open waits for.
    pub(crate) fn abandon(&self) {
        unblock(&[&self.stdout, &self.stderr]);
    }

    /// Ends the stderr reader of a process in a terminal (the terminal carries both streams).
    pub(crate) fn without_stderr(&self) {
        let stderr = self.stderr.clone();
        std::thread::spawn(move || unblock(&[&stderr]));
    }

    /// Waits (at most `limit`) until both readers reached EOF, then removes the FIFOs.
    pub(crate) async fn finish(mut self, limit: std::time::Duration) {
        let all = futures::future::join_all(self.done.drain(..));
        if tokio::time::timeout(limit, all).await.is_err() {
            // A process that inherited the descriptors still runs; stop waiting for it.
            self.abandon();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Opens each FIFO as a writer for a moment, so a reader blocked opening it proceeds and then
/// sees EOF.
fn unblock(paths: &[&PathBuf]) {
    let writers: Vec<_> = paths
        .iter()
        .filter_map(|p| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(p)
                .ok()
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(50));
    drop(writers);
}
