//! `keelson certificate check|rotate`: the data dir's certificates and their expiry, and
//! renewing the serving certificate under the same CA (a running server picks it up for new
//! connections without a restart).

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `keelson certificate`.
#[derive(Args, Debug)]
pub(crate) struct CertificateCommand {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// List every certificate in the data dir with its expiry.
    Check(CommonArgs),
    /// Renew the serving certificate (new key, same CA and names).
    Rotate {
        /// Validity of the new certificate, in days.
        #[arg(long, default_value_t = 365)]
        days: u64,
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(Args, Debug)]
struct CommonArgs {
    /// The server's data dir [default: /var/lib/keelson as root, else $XDG_DATA_HOME/keelson].
    #[arg(long, env = "KEELSON_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_parser = ["text", "json"], default_value = "text")]
    output: String,
}

impl CommonArgs {
    fn dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(super::server::default_data_dir)
    }
}

fn print(certs: &[keelson_apiserver::certs::CertificateInfo], output: &str) -> anyhow::Result<()> {
    if output == "json" {
        println!("{}", serde_json::to_string_pretty(certs)?);
        return Ok(());
    }
    println!(
        "{:<40} {:<20} {:<12} {:<22} {:>6}  NOTE",
        "FILE", "SUBJECT", "ISSUER", "EXPIRES", "DAYS"
    );
    for c in certs {
        let expires = chrono::DateTime::from_timestamp(c.not_after_unix, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default();
        let note = if c.seconds_left < 0 {
            "EXPIRED"
        } else if c.expiring_soon() {
            "expires within 30 days: rotate"
        } else {
            ""
        };
        println!(
            "{:<40} {:<20} {:<12} {:<22} {:>6}  {note}",
            c.file.display(),
            c.subject,
            c.issuer,
            expires,
            c.seconds_left / 86_400
        );
    }
    Ok(())
}

impl CertificateCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        match self.action {
            Action::Check(c) => print(&keelson_apiserver::certs::check(&c.dir())?, &c.output),
            Action::Rotate { days, common } => {
                let validity = std::time::Duration::from_secs(days.max(1) * 86_400);
                let new = keelson_apiserver::certs::rotate(&common.dir(), validity)?;
                if common.output != "json" {
                    println!(
                        "rotated {}: a running server serves it to new connections within a second",
                        new.file.display()
                    );
                }
                print(&[new], &common.output)
            }
        }
    }
}
