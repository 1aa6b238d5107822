//! A WASI command for Keelson's `wasm` RuntimeClass, built for wasm32-wasip2:
//!
//! ```text
//! wasi-demo [--print TEXT]… [--env] [--lines N] [--sleep-ms N] [--alloc-mb N]
//!           [--cat FILE] [--write FILE TEXT] [--exit N]
//! ```
//!
//! Each flag acts in order: `--print` writes TEXT and a newline to stdout, `--env` prints every
//! environment variable as `NAME=value`, `--lines N` prints `line 1` … `line N`, `--sleep-ms`
//! sleeps, `--alloc-mb` allocates and touches that many MiB, `--stderr TEXT` writes to stderr,
//! `--cat FILE` prints a file, `--write FILE TEXT` writes TEXT and a newline to a file,
//! and `--exit N` ends with exit code N at once. Without `--exit` it ends with 0.

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("args: {}", args.join(" "));
    let mut it = args.iter();
    let mut kept: Vec<Vec<u8>> = Vec::new();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_default();
        match flag.as_str() {
            "--print" => println!("{}", value()),
            "--stderr" => eprintln!("{}", value()),
            "--env" => {
                let mut vars: Vec<(String, String)> = std::env::vars().collect();
                vars.sort();
                for (k, v) in vars {
                    println!("{k}={v}");
                }
            }
            "--lines" => {
                for i in 1..=value().parse::<u64>().unwrap_or(0) {
                    println!("line {i}");
                }
            }
            "--sleep-ms" => {
                let _ = std::io::stdout().flush();
                let ms = value().parse().unwrap_or(0);
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
            "--alloc-mb" => {
                let mb: usize = value().parse().unwrap_or(0);
                let mut block = vec![0u8; mb << 20];
                for i in (0..block.len()).step_by(4096) {
                    block[i] = 1;
                }
                kept.push(block);
                println!("allocated {mb} MiB");
            }
            "--cat" => match std::fs::read_to_string(value()) {
                Ok(text) => print!("{text}"),
                Err(e) => eprintln!("cat: {e}"),
            },
            "--write" => {
                let (path, text) = (value(), value());
                if let Err(e) = std::fs::write(&path, format!("{text}\n")) {
                    eprintln!("write {path}: {e}");
                }
            }
            "--exit" => {
                let _ = std::io::stdout().flush();
                exit(value().parse().unwrap_or(1));
            }
            other => eprintln!("unknown flag {other}"),
        }
    }
    drop(kept);
}

/// Bindings for `wasi:cli/exit#exit-with-code` (see `wit/exit.wit`).
mod bindings {
    #![allow(missing_docs)]
    wit_bindgen::generate!({ path: "wit", world: "demo", features: ["cli-exit-with-code"] });
}

/// Ends with `code` through `wasi:cli/exit#exit-with-code` (WASI 0.2's stable `exit` only
/// carries success or failure).
fn exit(code: u8) -> ! {
    let _ = std::io::stdout().flush();
    bindings::wasi::cli::exit::exit_with_code(code);
    std::process::exit(code.into())
}
