//! Network namespaces for the networking suites: a "node" namespace whose only way out is a
//! veth into a dead-end "sink" namespace (so no packet for a Service, pod or outside address
//! can leave the machine), pods bridged on `kbr0` (10.42.0.0/24, gateway 10.42.0.1), tiny
//! HTTP backends and clients whose sockets live in a pod's namespace, a loopback relay that
//! lets processes in the node namespace reach the API server, and `keelson agent` run inside
//! the node namespace. Everything is removed on drop, also when a test fails.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::Server;

/// The node's address (on its uplink to the sink namespace): NodePorts answer here.
pub(crate) const NODE_IP: &str = "192.168.255.1";

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One network namespace, deleted on drop.
pub(crate) struct Netns {
    /// Its name under /run/netns.
    pub name: String,
    owned: bool,
}

impl Netns {
    fn new(name: String) -> Self {
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(&["ip", "netns", "add", &name]);
        run(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Netns { name, owned: true }
    }

    /// A handle on a namespace someone else owns (not deleted on drop).
    pub(crate) fn existing(name: String) -> Self {
        Netns { name, owned: false }
    }

    /// Runs a command inside the namespace; returns its output.
    pub(crate) fn exec(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs `f` on a thread inside this namespace: sockets it creates stay in it.
    pub(crate) fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            let file = std::fs::File::open(&path).unwrap();
            // SAFETY: setns on this thread only, with a valid namespace fd.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    }

    /// The `ip keelson` table as nft lists it (empty when it does not exist).
    pub(crate) fn nft_table(&self) -> String {
        String::from_utf8_lossy(&self.exec(&["nft", "list", "table", "ip", "keelson"]).stdout)
            .into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.name));
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A node namespace, its sink, and pods on its bridge.
pub(crate) struct Topology {
    /// The node.
    pub node: Netns,
    _sink: Netns,
    /// Pods by name, with their address.
    pub pods: Vec<(String, String, Netns)>,
    prefix: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Topology {
    /// A node namespace with forwarding on, the bridge and the dead-end uplink.
    pub(crate) fn new() -> Self {
        let prefix = format!(
            "kn{}x{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let node = Netns::new(format!("{prefix}-node"));
        let sink = Netns::new(format!("{prefix}-sink"));
        let n = node.name.as_str();
        run(&["ip", "-n", n, "link", "add", "kbr0", "type", "bridge"]);
        run(&["ip", "-n", n, "addr", "add", "10.42.0.1/24", "dev", "kbr0"]);
        run(&["ip", "-n", n, "link", "set", "kbr0", "up"]);
        run(&[
            "ip", "-n", n, "link", "add", "up0", "type", "veth", "peer", "name", "up1", "netns",
            &sink.name,
        ]);
        run(&[
            "ip",
            "-n",
            n,
            "addr",
            "add",
            &format!("{NODE_IP}/24"),
            "dev",
            "up0",
        ]);
        run(&["ip", "-n", n, "link", "set", "up0", "up"]);
        run(&["ip", "-n", &sink.name, "link", "set", "up1", "up"]);
        // A node has a default route; here it ends in the sink, which forwards nothing.
        run(&["ip", "-n", n, "route", "add", "default", "dev", "up0"]);
        for (key, value) in [
            ("net/ipv4/ip_forward", "1"),
            // Bridged pod-to-pod replies must pass conntrack to be un-NATed (what a CNI
            // bridge node sets up via br_netfilter).
            ("net/bridge/bridge-nf-call-iptables", "1"),
        ] {
            // /proc/sys/net is the namespace's own; no sysctl binary needed.
            let out = node.exec(&["sh", "-c", &format!("echo {value} > /proc/sys/{key}")]);
            assert!(out.status.success(), "{key}: {out:?}");
        }
        Topology {
            node,
            _sink: sink,
            pods: Vec::new(),
            prefix,
        }
    }

    /// Adds a pod namespace with `ip` (in 10.42.0.0/24) on the bridge.
    pub(crate) fn pod(&mut self, name: &str, ip: &str) -> &Netns {
        let ns = Netns::new(format!("{}-{name}", self.prefix));
        let veth = format!("v{}{}", self.pods.len(), &self.prefix[2..]);
        let veth: String = veth.chars().take(15).collect();
        let n = self.node.name.as_str();
        run(&[
            "ip", "-n", n, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns",
            &ns.name,
        ]);
        run(&["ip", "-n", n, "link", "set", &veth, "master", "kbr0", "up"]);
        run(&[
            "ip",
            "-n",
            &ns.name,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            "eth0",
        ]);
        run(&["ip", "-n", &ns.name, "link", "set", "eth0", "up"]);
        run(&[
            "ip",
            "-n",
            &ns.name,
            "route",
            "add",
            "default",
            "via",
            "10.42.0.1",
        ]);
        self.pods.push((name.to_string(), ip.to_string(), ns));
        &self.pods.last().unwrap().2
    }

    /// The pod namespace called `name`.
    pub(crate) fn ns(&self, name: &str) -> &Netns {
        &self.pods.iter().find(|p| p.0 == name).unwrap().2
    }
}

/// A background thread serving sockets until dropped.
pub(crate) struct Serving {
    stop: Arc<AtomicBool>,
}

impl Serving {
    /// A handle that sets `stop` when dropped.
    pub(crate) fn new(stop: Arc<AtomicBool>) -> Self {
        Serving { stop }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(listener: TcpListener, handle: impl Fn(TcpStream) + Send + 'static) -> Serving {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        while !flag.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    handle(s)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    Serving { stop }
}

/// An HTTP server in `ns` on `addr` answering every request with `body`.
pub(crate) fn http_backend(ns: &Netns, addr: &str, body: &'static str) -> Serving {
    let addr: SocketAddr = addr.parse().unwrap();
    let listener = ns.enter(move || TcpListener::bind(addr).unwrap());
    serve(listener, move |mut s| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        });
    })
}

/// An HTTP GET from `ns` (like `wget -qO-`): the body, or the connection error.
pub(crate) fn http_get(ns: &Netns, addr: &str) -> std::io::Result<String> {
    let addr: SocketAddr = addr.parse().unwrap();
    ns.enter(move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        write!(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
    })
}

/// Relays 127.0.0.1:`port` inside `ns` to 127.0.0.1:`port` of the test's own namespace, so
/// a process in the node namespace reaches the API server with the unchanged kubeconfig
/// (two loopback sockets, no route between the namespaces).
pub(crate) fn api_relay(ns: &Netns, port: u16) -> Serving {
    let listener = ns.enter(move || TcpListener::bind(("127.0.0.1", port)).unwrap());
    serve(listener, move |inside| {
        std::thread::spawn(move || {
            let Ok(outside) = TcpStream::connect(("127.0.0.1", port)) else {
                return;
            };
            let (mut a, mut b) = (inside.try_clone().unwrap(), outside.try_clone().unwrap());
            let t = std::thread::spawn(move || {
                let _ = std::io::copy(&mut a, &mut b);
                let _ = b.shutdown(std::net::Shutdown::Write);
            });
            let (mut a, mut b) = (outside, inside);
            let _ = std::io::copy(&mut a, &mut b);
            let _ = b.shutdown(std::net::Shutdown::Write);
            let _ = t.join();
        });
    })
}

/// A `keelson` process (the agent with its service proxy, or the DNS server) running inside
/// the node namespace; killed with its process group on drop, its log printed if the test
/// failed.
pub(crate) struct Agent {
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
    ns: String,
    kubeconfig: PathBuf,
    args: Vec<String>,
}

impl Agent {
    /// Starts the agent of node `knode` in `ns` against `server`.
    pub(crate) fn start(server: &Server, ns: &Netns, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = [
            "agent",
            "--node-name",
            "knode",
            "--node-ip",
            NODE_IP,
            "--kubelet-port",
            "0",
            "--data-dir",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(dir.path().display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::start_in(server, ns, dir, args)
    }

    /// Starts `keelson <args>` in `ns` against `server`.
    pub(crate) fn command(server: &Server, ns: &Netns, args: &[&str]) -> Self {
        let args = args.iter().map(|s| s.to_string()).collect();
        Self::start_in(server, ns, tempfile::tempdir().unwrap(), args)
    }

    fn start_in(server: &Server, ns: &Netns, dir: tempfile::TempDir, args: Vec<String>) -> Self {
        let mut a = Agent {
            child: None,
            log: dir.path().join("keelson.log"),
            _dir: dir,
            ns: ns.name.clone(),
            kubeconfig: server.kubeconfig(),
            args,
        };
        a.spawn();
        a
    }

    fn spawn(&mut self) {
        use std::os::unix::process::CommandExt;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, env!("CARGO_BIN_EXE_keelson")])
            .args(&self.args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env("KEELSON_LOG", "info,keelson_proxy=debug,keelson_dns=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start keelson agent");
        self.child = Some(child);
    }

    /// Kills it with SIGKILL: its rules stay in the kernel.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signals a process group this test started.
            unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            let _ = c.wait();
        }
    }

    /// Starts it again with the same data dir.
    pub(crate) fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Its log so far.
    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- {:?} log ---\n{}", self.args.first(), self.log_text());
        }
    }
}
