//! Throwaway etcds for tests and benchmarks — one member or a cluster of several — started
//! from `PATH` on free loopback ports with their
//! data in temp dirs, ready once `/health` reports a leader, killed on drop.

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

/// The ports and URLs of one member.
struct Member {
    name: String,
    endpoint: String,
    peer_url: String,
}

impl Member {
    fn new(name: String) -> std::io::Result<Self> {
        let (client, peer) = (free_port()?, free_port()?);
        Ok(Member {
            name,
            endpoint: format!("127.0.0.1:{client}"),
            peer_url: format!("http://127.0.0.1:{peer}"),
        })
    }

    /// Starts the member of `initial_cluster` (etcd's `name=peer-url,…`).
    fn spawn(self, initial_cluster: &str) -> std::io::Result<LocalEtcd> {
        let dir = tempfile::Builder::new().prefix("keelson-etcd-").tempdir()?;
        let client_url = format!("http://{}", self.endpoint);
        let child = Command::new("etcd")
            .args(["--name", &self.name])
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
                &self.peer_url,
                "--initial-advertise-peer-urls",
                &self.peer_url,
            ])
            .args(["--initial-cluster", initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(LocalEtcd {
            child,
            _dir: dir,
            endpoint: self.endpoint,
        })
    }
}

impl LocalEtcd {
    /// Starts etcd and waits (up to 20 s) until it is healthy. An error of kind `NotFound`
    /// means etcd is not installed (Debian: `apt install etcd-server`).
    pub fn start() -> std::io::Result<Self> {
        let mut members = start_members(1)?;
        Ok(members.remove(0))
    }

    /// Waits (up to 20 s) until this member reports a leader.
    fn wait_healthy(&mut self) -> std::io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !healthy(&self.endpoint) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(std::io::Error::other(format!(
                    "etcd exited at start: {status}"
                )));
            }
            if Instant::now() >= deadline {
                return Err(std::io::Error::other("etcd was not healthy within 20 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The `--store` URL for Keelson.
    pub fn store_url(&self) -> String {
        format!("etcd://{}", self.endpoint)
    }

    /// Stops this member at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `n` members of one new etcd cluster, all healthy.
fn start_members(n: usize) -> std::io::Result<Vec<LocalEtcd>> {
    let members = (0..n)
        .map(|i| Member::new(format!("m{i}")))
        .collect::<std::io::Result<Vec<_>>>()?;
    let initial = members
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer_url))
        .collect::<Vec<_>>()
        .join(",");
    let mut running = members
        .into_iter()
        .map(|m| m.spawn(&initial))
        .collect::<std::io::Result<Vec<_>>>()?;
    for member in &mut running {
        member.wait_healthy()?;
    }
    Ok(running)
}

/// A throwaway etcd cluster of several members on loopback (for the HA tests).
pub struct LocalEtcdCluster {
    /// The members, each killable on its own.
    pub members: Vec<LocalEtcd>,
}

impl LocalEtcdCluster {
    /// Starts `n` members and waits until every one reports a leader.
    pub fn start(n: usize) -> std::io::Result<Self> {
        Ok(Self {
            members: start_members(n)?,
        })
    }

    /// The `--store` URL naming every member: `etcd://a,b,c`.
    pub fn store_url(&self) -> String {
        let endpoints: Vec<&str> = self.members.iter().map(|m| m.endpoint.as_str()).collect();
        format!("etcd://{}", endpoints.join(","))
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
