//! `deploy/`: each systemd unit's `ExecStart` is a command line the binary accepts, and the
//! install script is valid shell.

use std::process::Command;

fn exec_start(unit: &str) -> Vec<String> {
    let path = format!("{}/../../deploy/{unit}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("{path} has no ExecStart"));
    line.split_whitespace().map(String::from).collect()
}

#[test]
fn units_start_commands_the_binary_accepts() {
    for unit in ["keelson-server.service", "keelson-agent.service"] {
        let argv = exec_start(unit);
        assert_eq!(argv[0], "/usr/local/bin/keelson", "{unit}");
        // Flags are checked before `--help` is acted on: an unknown one fails.
        let out = Command::new(env!("CARGO_BIN_EXE_keelson"))
            .args(&argv[1..])
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "{unit}: {out:?}");
    }
    let script = format!("{}/../../deploy/install.sh", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("sh").args(["-n", &script]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = Command::new("sh")
        .args([&script, "neither"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a wrong role is refused: {out:?}"
    );
}
