//! Starts and stops real servers for the tests: `keelson server` on a free port and a temp data
//! dir (its process group is killed on drop, and its log printed if the test failed), and etcd.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The kubectl binaries the suites run with (stock Google Cloud SDK builds).
pub(crate) const KUBECTL_133: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";
/// kubectl 1.29: the first that reads OpenAPI v3.
pub(crate) const KUBECTL_129: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.29";
/// kubectl 1.28: reads OpenAPI v2 as protobuf.
pub(crate) const KUBECTL_128: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.28";
/// The oldest kubectl we support (OpenAPI v2 as protobuf).
pub(crate) const KUBECTL_127: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.27";

/// A free TCP port on 127.0.0.1.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `keelson server`.
pub(crate) struct Server {
    child: Option<Child>,
    /// Its data dir (kept for restarts).
    pub dir: tempfile::TempDir,
    /// The HTTPS port.
    pub port: u16,
    store: String,
    args: Vec<String>,
    scheduler: bool,
    agent: bool,
    log: PathBuf,
}

impl Server {
    /// Starts a server on the embedded store.
    pub(crate) fn start() -> Self {
        Self::start_with_store("embedded")
    }

    /// Starts a server on the given store URL.
    pub(crate) fn start_with_store(store: &str) -> Self {
        Self::start_full(store, &[])
    }

    /// Starts a server on the embedded store with extra `keelson server` flags.
    pub(crate) fn start_with_args(args: &[&str]) -> Self {
        Self::start_full("embedded", args)
    }

    /// Starts a server on the embedded store with its scheduler running (the other
    /// constructors pass `--disable-scheduler`, so pods stay as the suites wrote them).
    pub(crate) fn start_with_scheduler(args: &[&str]) -> Self {
        Self::start_inner("embedded", args, true)
    }

    /// Starts a server with its scheduler and its in-process node agent (the other
    /// constructors pass `--disable-agent`, so no real node joins); the agent's log port is
    /// picked freely, CrashLoopBackOff starts at 1 s and containerd is off unless `args` name one.
    pub(crate) fn start_with_agent(args: &[&str]) -> Self {
        // The proxy would program the host's own nftables: networking tests run it in a
        // namespace of their own.
        let mut all = vec![
            "--kubelet-port",
            "0",
            "--crash-loop-backoff",
            "1",
            "--disable-proxy",
        ];
        if !args.contains(&"--containerd") && !args.contains(&"--container-runtime-endpoint") {
            // Never a system containerd: suites that want one start their own.
            all.extend(["--containerd", "none"]);
        }
        all.extend_from_slice(args);
        let mut s = Self::build(tempfile::tempdir().unwrap(), "embedded", &all, true);
        s.agent = true;
        s.spawn(free_port());
        s
    }

    /// Starts a server on `store` with its scheduler and controllers running and extra flags
    /// (one of several servers sharing an etcd).
    pub(crate) fn start_ha(store: &str, args: &[&str]) -> Self {
        Self::start_inner(store, args, true)
    }

    fn start_full(store: &str, args: &[&str]) -> Self {
        Self::start_inner(store, args, false)
    }

    /// Starts a server on an existing data dir (e.g. one `keelson snapshot restore` wrote).
    pub(crate) fn start_in_dir(dir: tempfile::TempDir, store: &str) -> Self {
        Self::start_dir(dir, store, &[], false)
    }

    fn start_inner(store: &str, args: &[&str], scheduler: bool) -> Self {
        let mut s = Self::build(tempfile::tempdir().unwrap(), store, args, scheduler);
        s.spawn(free_port());
        s
    }

    fn start_dir(dir: tempfile::TempDir, store: &str, args: &[&str], scheduler: bool) -> Self {
        let mut s = Self::build(dir, store, args, scheduler);
        s.spawn(free_port());
        s
    }

    fn build(dir: tempfile::TempDir, store: &str, args: &[&str], scheduler: bool) -> Self {
        let log = dir.path().join("server.log");
        Server {
            child: None,
            dir,
            port: 0,
            store: store.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            scheduler,
            agent: false,
            log,
        }
    }

    fn spawn(&mut self, port: u16) {
        use std::os::unix::process::CommandExt;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_keelson"))
            .args([
                "server",
                "--secure-port",
                &port.to_string(),
                "--store",
                &self.store,
            ])
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(&self.args)
            .args((!self.scheduler).then_some("--disable-scheduler"))
            .args((!self.agent).then_some("--disable-agent"))
            .env("KEELSON_LOG", "info,keelson_apiserver=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start keelson");
        self.child = Some(child);
        self.port = port;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.kubeconfig().exists()
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("keelson did not start; log:\n{}", self.log_text());
    }

    /// Kills the server with SIGKILL (its whole process group).
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_kill_group(c.id());
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM to the server and waits (up to `limit`) for it to exit; returns whether
    /// it exited successfully and how long it took. The server is stopped either way.
    pub(crate) fn terminate(&mut self, limit: Duration) -> (bool, Duration) {
        let started = Instant::now();
        let Some(mut child) = self.child.take() else {
            return (false, Duration::ZERO);
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = child.try_wait() {
                return (status.success(), started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        unsafe_kill_group(child.id());
        let _ = child.wait();
        (false, started.elapsed())
    }

    /// Starts the server again on the same port and data dir.
    pub(crate) fn restart(&mut self) {
        self.kill();
        let port = self.port;
        self.spawn(port);
    }

    /// Starts a stopped server again on the same port and data dir.
    pub(crate) fn start_again(&mut self) {
        let port = self.port;
        self.spawn(port);
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// The extra flags it was started with.
    pub(crate) fn args(&self) -> &[String] {
        &self.args
    }

    /// Path of the admin kubeconfig.
    pub(crate) fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig.yaml")
    }

    /// The admin bearer token.
    pub(crate) fn token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// The CA certificate (PEM).
    pub(crate) fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("tls/ca.crt")).unwrap()
    }

    /// The server log so far.
    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs a kubectl binary against this server.
    pub(crate) fn kubectl(&self, bin: &str, args: &[&str]) -> Output {
        self.kubectl_env(bin, args, &[])
    }

    /// Runs kubectl with extra environment variables (EDITOR, …).
    pub(crate) fn kubectl_env(&self, bin: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let home = self.dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", &home)
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run kubectl")
    }

    /// Runs kubectl with stdin.
    pub(crate) fn kubectl_stdin(&self, bin: &str, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let home = self.dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut child = Command::new(bin)
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", &home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- keelson server log ----\n{}", self.log_text());
        }
    }
}

fn unsafe_kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-9", "--", &format!("-{pid}")])
        .status();
}

/// A real etcd on free loopback ports, killed on drop.
pub(crate) fn etcd() -> keelson_store::local_etcd::LocalEtcd {
    keelson_store::local_etcd::LocalEtcd::start().expect("etcd (apt install etcd-server)")
}

/// A real etcd cluster of `n` members on loopback, killed on drop.
pub(crate) fn etcd_cluster(n: usize) -> keelson_store::local_etcd::LocalEtcdCluster {
    keelson_store::local_etcd::LocalEtcdCluster::start(n).expect("etcd (apt install etcd-server)")
}

/// Runs `keelson <args…>` (the binary under test) to completion.
pub(crate) fn keelson(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run keelson")
}

/// Asserts a command succeeded and returns its stdout.
pub(crate) fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "command failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    stdout
}

/// Asserts a command failed and returns its stderr.
pub(crate) fn fails(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !out.status.success(),
        "command unexpectedly succeeded: {stdout}"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Polls `f` until it returns true or the timeout passes.
pub(crate) fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Another `keelson` process (controller-manager, scheduler, simulated nodes, …) pointed at a
/// server by its kubeconfig; killed (SIGKILL, whole process group) on drop, its log printed if
/// the test failed.
pub(crate) struct Component {
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Component {
    /// Starts `keelson sim nodes <args>` with the server's kubeconfig.
    pub(crate) fn sim_nodes(server: &Server, args: &[&str]) -> Self {
        Self::start(server, &[&["sim", "nodes"][..], args].concat())
    }

    /// Starts `keelson scheduler <args>` with the server's kubeconfig.
    pub(crate) fn scheduler(server: &Server, args: &[&str]) -> Self {
        Self::start(server, &[&["scheduler"][..], args].concat())
    }

    /// Starts `keelson <args…>` with `--kubeconfig` of `server`.
    pub(crate) fn start(server: &Server, args: &[&str]) -> Self {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("component.log");
        let child = Command::new(env!("CARGO_BIN_EXE_keelson"))
            .args(args)
            .arg("--kubeconfig")
            .arg(server.kubeconfig())
            .env("KEELSON_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .process_group(0)
            .spawn()
            .expect("start keelson component");
        Self {
            child: Some(child),
            log,
            _dir: dir,
        }
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Kills it with SIGKILL (no chance to release what it holds).
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_kill_group(c.id());
            let _ = c.wait();
        }
    }

    /// Its log so far.
    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- keelson component log ----\n{}", self.log_text());
        }
    }
}
