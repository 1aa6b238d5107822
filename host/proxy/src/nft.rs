//! Runs `nft`: applies a script as one transaction (`nft -f -`) and checks that the table
//! still holds what the proxy wrote (someone may have flushed it).

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::ruleset::TABLE;
use crate::Error;

/// How to run nft: the program and leading arguments (e.g. `ip netns exec NS nft`).
#[derive(Debug, Clone)]
pub struct Nft {
    argv: Vec<String>,
}

impl Default for Nft {
    fn default() -> Self {
        Nft {
            argv: vec!["nft".into()],
        }
    }
}

impl Nft {
    /// nft run through `argv` (its first element is the program).
    pub fn with_argv(argv: Vec<String>) -> Self {
        Nft { argv }
    }

    fn command(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.argv[0]);
        c.args(&self.argv[1..]);
        c.kill_on_drop(true);
        c
    }

    /// Applies `script` in one transaction: all of it or, on error, none of it.
    pub async fn apply(&self, script: &str) -> Result<(), Error> {
        let mut child = self
            .command()
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(Error::Spawn)?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = script.as_bytes().to_vec();
        let writer = tokio::spawn(async move {
            let r = stdin.write_all(&input).await;
            drop(stdin);
            r
        });
        let out = child.wait_with_output().await.map_err(Error::Spawn)?;
        let _ = writer.await;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Nft(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ))
        }
    }

    /// Whether the table is still the proxy's. The quick check lists the small `canary`
    /// set (gone after `delete table` or `flush ruleset`); the thorough one lists the
    /// dispatch chain (emptied by `flush table`, which keeps set elements), which makes nft
    /// read every rule of the table and costs accordingly.
    pub async fn intact(&self, thorough: bool) -> Result<bool, Error> {
        let (args, needle) = if thorough {
            (["list", "chain", "ip", TABLE, "services"], "@service-ips")
        } else {
            (["list", "set", "ip", TABLE, "canary"], "127.0.0.1")
        };
        let out = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .await
            .map_err(Error::Spawn)?;
        Ok(out.status.success() && String::from_utf8_lossy(&out.stdout).contains(needle))
    }
}
