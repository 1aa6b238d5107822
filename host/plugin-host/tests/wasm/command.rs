//! WASI commands (the kubelet's `wasm` runtime) run on the plugin host: arguments, environment
//! and output reach the guest and come back, exit codes survive, the memory cap ends a guest as
//! OOMKilled, the CPU share slows a busy guest, a CPU-time budget stops it, and preopened
//! directories are readable and (unless read-only) writable.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keelson_plugin_host::{Command, CommandRun, Exit, OutputSink, Preopen, Stream};

use crate::support::{host, wasm_dir};

#[derive(Default)]
struct Captured(Mutex<Vec<(Stream, String)>>);

impl OutputSink for Captured {
    fn write(&self, stream: Stream, bytes: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .push((stream, String::from_utf8_lossy(bytes).into_owned()));
    }
}

impl Captured {
    fn text(&self, stream: Stream) -> String {
        let all = self.0.lock().unwrap();
        all.iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, t)| t.as_str())
            .collect()
    }
}

fn demo() -> Arc<Command> {
    let bytes = std::fs::read(wasm_dir().join("wasi-demo.wasm")).expect("wasi-demo.wasm");
    host()
        .load_command("wasi-demo", &bytes)
        .expect("load wasi-demo")
}

fn run(args: &[&str], env: &[(&str, &str)]) -> (Exit, Arc<Captured>, Duration) {
    let out = Arc::new(Captured::default());
    let mut argv = vec!["wasi-demo".to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let (exit, _cpu) = rt
        .block_on(
            demo().run(CommandRun {
                args: argv,
                env: env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                output: out.clone(),
                memory_bytes: 32 << 20,
                cpu_millis: None,
                cpu_time: None,
                preopens: vec![],
                usage: None,
            }),
        )
        .expect("run");
    (exit, out, started.elapsed())
}

#[test]
fn args_env_and_exit_code() {
    let (exit, out, _) = run(
        &[
            "--env", "--print", "hello", "--stderr", "oops", "--exit", "7",
        ],
        &[("GREETING", "hi")],
    );
    assert_eq!(exit, Exit::Code(7));
    let stdout = out.text(Stream::Stdout);
    assert!(stdout.contains("GREETING=hi"), "{stdout}");
    assert!(stdout.contains("hello\n"), "{stdout}");
    assert_eq!(out.text(Stream::Stderr), "oops\n");
    let (exit, _, _) = run(&["--print", "done"], &[]);
    assert_eq!(exit, Exit::Code(0));
}

#[test]
fn memory_cap_ends_the_guest_as_oom() {
    let (exit, _, _) = run(&["--alloc-mb", "100"], &[]);
    assert!(
        matches!(
            exit,
            Exit::Failed {
                reason: "OOMKilled",
                ..
            }
        ),
        "{exit:?}"
    );
    assert_eq!(exit.code(), 137);
}

#[test]
fn sleeping_guest_takes_its_time() {
    let (exit, _, elapsed) = run(&["--sleep-ms", "300"], &[]);
    assert_eq!(exit, Exit::Code(0));
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
}

#[test]
fn cpu_budget_and_share() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let spin = |cpu_millis, cpu_time| CommandRun {
        args: vec!["wasi-demo".into(), "--lines".into(), "200000".into()],
        env: vec![],
        output: Arc::new(Captured::default()),
        memory_bytes: 32 << 20,
        cpu_millis,
        cpu_time,
        preopens: vec![],
        usage: None,
    };
    let command = demo();
    let (exit, full_cpu) = rt.block_on(command.run(spin(None, None))).unwrap();
    assert_eq!(exit, Exit::Code(0));
    // A quarter of a core: the same work takes at least ~4x its CPU time in wall time
    // (compared with CPU time, not the first run's wall time, so a loaded machine
    // cannot make the first run look slow).
    let started = Instant::now();
    let (exit, _) = rt.block_on(command.run(spin(Some(250), None))).unwrap();
    assert_eq!(exit, Exit::Code(0));
    if full_cpu >= Duration::from_millis(20) {
        assert!(
            started.elapsed() >= full_cpu * 2,
            "{:?} vs {full_cpu:?} of CPU",
            started.elapsed()
        );
    }
    // A budget far below what the work needs stops it.
    if full_cpu >= Duration::from_millis(40) {
        let (exit, _) = rt
            .block_on(command.run(spin(None, Some(Duration::from_millis(10)))))
            .unwrap();
        assert!(
            matches!(
                exit,
                Exit::Failed {
                    reason: "DeadlineExceeded",
                    ..
                }
            ),
            "{exit:?}"
        );
    }
}

#[test]
fn preopened_directories_read_write_and_read_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.txt"), "from the host\n").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let run = |read_only: bool| {
        let out = Arc::new(Captured::default());
        let args = [
            "wasi-demo",
            "--cat",
            "/data/in.txt",
            "--write",
            "/data/out.txt",
            "guest",
        ];
        let (exit, _) = rt
            .block_on(demo().run(CommandRun {
                args: args.iter().map(|a| a.to_string()).collect(),
                env: vec![],
                output: out.clone(),
                memory_bytes: 32 << 20,
                cpu_millis: None,
                cpu_time: None,
                preopens: vec![Preopen {
                    host: dir.path().to_path_buf(),
                    guest: "/data".into(),
                    read_only,
                }],
                usage: None,
            }))
            .unwrap();
        assert_eq!(exit, Exit::Code(0));
        out
    };
    let out = run(true);
    assert!(out.text(Stream::Stdout).contains("from the host\n"));
    assert!(out.text(Stream::Stderr).contains("write /data/out.txt"));
    assert!(!dir.path().join("out.txt").exists());
    run(false);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
        "guest\n"
    );
}
