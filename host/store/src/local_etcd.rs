//! A throwaway etcd for tests and benchmarks: started from `PATH` on free loopback ports with its
//! data in a temp dir, ready once `/health` reports a leader, killed on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running etcd process.
pub struct LocalEtcd {
    child: Child,
    _dir: tempfile::TempDir,
    /// `127.0.0.1:<client port>`.
    pub endpoint: String,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Asks etcd's `/health` over plain HTTP/1.0 whether it has a leader.
fn healthy(endpoint: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(endpoint) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"GET /health HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.contains("\"health\":\"true\"")
}

impl LocalEtcd {
    /// Starts etcd and waits (up to 20 s) until it is healthy. An error of kind `NotFound`
    /// means etcd is not installed (Debian: `apt install etcd-server`).
    pub fn start() -> std::io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("keelson-etcd-").tempdir()?;
        let (client, peer) = (free_port()?, free_port()?);
        let endpoint = format!("127.0.0.1:{client}");
        let (client_url, peer_url) = (
            format!("http://{endpoint}"),
            format!("http://127.0.0.1:{peer}"),
        );
        let child = Command::new("etcd")
            .arg("--data-dir")
            .arg(dir.path())
            .args([
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &format!("default={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut etcd = LocalEtcd {
            child,
            _dir: dir,
            endpoint,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !healthy(&etcd.endpoint) {
            if let Ok(Some(status)) = etcd.child.try_wait() {
                return Err(std::io::Error::other(format!(
                    "etcd exited at start: {status}"
                )));
            }
            if Instant::now() >= deadline {
                return Err(std::io::Error::other("etcd was not healthy within 20 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(etcd)
    }

    /// The `--store` URL for Keelson.
    pub fn store_url(&self) -> String {
        format!("etcd://{}", self.endpoint)
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
