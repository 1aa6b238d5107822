//! Certificate lifecycle in the data dir: listing every certificate with its expiry
//! (`keelson certificate check`), renewing the serving certificate under the same CA
//! (`keelson certificate rotate`), the rustls resolver that serves a rotated certificate to new
//! connections without a restart, and the expiry warning (log and `/metrics`, 30 days ahead).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How far ahead of an expiry the server warns.
pub const WARN_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// One certificate file and when it expires.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateInfo {
    /// The file.
    pub file: PathBuf,
    /// Subject common name.
    pub subject: String,
    /// Issuer common name.
    pub issuer: String,
    /// Expiry, seconds since the Unix epoch.
    pub not_after_unix: i64,
    /// Seconds left until expiry (negative once expired).
    pub seconds_left: i64,
    /// Is it a CA?
    pub is_ca: bool,
}

impl CertificateInfo {
    /// Expires within [`WARN_BEFORE`] (or has expired).
    pub fn expiring_soon(&self) -> bool {
        self.seconds_left < WARN_BEFORE.as_secs() as i64
    }
}

/// What can go wrong with certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read or written.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not a certificate or key we can use.
    #[error("{}: {reason}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
}

fn read(file: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(file).map_err(|source| CertError::Io {
        file: file.to_path_buf(),
        source,
    })
}

fn invalid(file: &Path, reason: impl std::fmt::Display) -> CertError {
    CertError::Invalid {
        file: file.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Parses the first certificate of a PEM file.
pub fn inspect(file: &Path) -> Result<CertificateInfo, CertError> {
    let text = read(file)?;
    let der = rustls_pemfile::certs(&mut text.as_bytes())
        .next()
        .ok_or_else(|| invalid(file, "no certificate in the file"))?
        .map_err(|e| invalid(file, e))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| invalid(file, e))?;
    let cn = |name: &x509_parser::x509::X509Name<'_>| {
        name.iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let not_after = cert.validity().not_after.timestamp();
    Ok(CertificateInfo {
        file: file.to_path_buf(),
        subject: cn(cert.subject()),
        issuer: cn(cert.issuer()),
        not_after_unix: not_after,
        seconds_left: not_after - unix_now(),
        is_ca: cert.is_ca(),
    })
}

/// Every certificate (`*.crt`) under `<data_dir>/tls`, sorted by file name.
pub fn check(data_dir: &Path) -> Result<Vec<CertificateInfo>, CertError> {
    let dir = crate::pki::tls_dir(data_dir);
    let entries = std::fs::read_dir(&dir).map_err(|source| CertError::Io {
        file: dir.clone(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("crt"))
        .collect();
    files.sort();
    files.iter().map(|f| inspect(f)).collect()
}

/// Renews the serving certificate (new key, same SANs, signed by the same CA, valid for
/// `validity`). Written beside the old one and renamed into place, key first: a running
/// server serves it to new connections within a second. Returns the new certificate.
pub fn rotate(data_dir: &Path, validity: Duration) -> Result<CertificateInfo, CertError> {
    let dir = crate::pki::tls_dir(data_dir);
    let (ca_crt, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
    if !ca_key.exists() {
        return Err(invalid(
            &ca_key,
            "missing: this data dir was created before Keelson kept its CA key, so certificates cannot be renewed under the same CA",
        ));
    }
    let key = rcgen::KeyPair::from_pem(&read(&ca_key)?).map_err(|e| invalid(&ca_key, e))?;
    let issuer =
        rcgen::Issuer::from_ca_cert_pem(&read(&ca_crt)?, key).map_err(|e| invalid(&ca_crt, e))?;
    let not_after = SystemTime::now() + validity;
    let (cert_pem, key_pem) =
        crate::pki::serving_cert(&issuer, not_after.into()).map_err(|e| invalid(&ca_crt, e))?;
    let (crt, key) = (dir.join("server.crt"), dir.join("server.key"));
    for (path, text) in [(&key, &key_pem), (&crt, &cert_pem)] {
        let tmp = path.with_extension("new");
        crate::pki::write_private(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|source| CertError::Io {
                file: path.clone(),
                source,
            })?;
    }
    inspect(&crt)
}

/// Loads `server.crt` and `server.key` as a rustls certified key (checking they match).
fn load(dir: &Path) -> Result<CertifiedKey, CertError> {
    let (crt, key) = (dir.join("server.crt"), dir.join("server.key"));
    let certs = rustls_pemfile::certs(&mut read(&crt)?.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(&crt, e))?;
    let private = rustls_pemfile::private_key(&mut read(&key)?.as_bytes())
        .map_err(|e| invalid(&key, e))?
        .ok_or_else(|| invalid(&key, "no private key"))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(certs, private, &provider).map_err(|e| invalid(&crt, e))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

struct Loaded {
    key: Arc<CertifiedKey>,
    /// Modification times of server.crt and server.key it was loaded from.
    stamp: (Option<SystemTime>, Option<SystemTime>),
    checked: Instant,
}

/// Serves `<data_dir>/tls/server.crt`, re-reading it (at most once a second, on a handshake)
/// when the file changed; a half-rotated pair (key and certificate not matching) is ignored
/// until the pair is complete.
pub(crate) struct ReloadingCert {
    dir: PathBuf,
    loaded: Mutex<Loaded>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("dir", &self.dir)
            .finish()
    }
}

impl ReloadingCert {
    /// Loads the serving certificate of `data_dir`.
    pub(crate) fn new(data_dir: &Path) -> Result<Self, CertError> {
        let dir = crate::pki::tls_dir(data_dir);
        let stamp = Self::stamp(&dir);
        let key = Arc::new(load(&dir)?);
        Ok(Self {
            dir,
            loaded: Mutex::new(Loaded {
                key,
                stamp,
                checked: Instant::now(),
            }),
        })
    }

    fn stamp(dir: &Path) -> (Option<SystemTime>, Option<SystemTime>) {
        (
            modified(&dir.join("server.crt")),
            modified(&dir.join("server.key")),
        )
    }

    fn current(&self) -> Arc<CertifiedKey> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if loaded.checked.elapsed() >= Duration::from_secs(1) {
            loaded.checked = Instant::now();
            let stamp = Self::stamp(&self.dir);
            if stamp != loaded.stamp {
                match load(&self.dir) {
                    Ok(key) => {
                        loaded.key = Arc::new(key);
                        loaded.stamp = stamp;
                        tracing::info!(dir = %self.dir.display(), "serving certificate reloaded");
                    }
                    Err(e) => tracing::warn!(error = %e, "serving certificate not reloaded yet"),
                }
            }
        }
        loaded.key.clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertLabels {
    file: String,
}

/// Checks the data dir's certificates now and every hour: logs a warning for each that
/// expires within 30 days and exports `keelson_certificate_expiry_timestamp_seconds` and
/// `keelson_certificate_expiring_soon` (1 within 30 days) per file on `/metrics`.
pub(crate) fn spawn_expiry_watch(metrics: &crate::Metrics, data_dir: PathBuf) {
    let expiry = Family::<CertLabels, Gauge>::default();
    let soon = Family::<CertLabels, Gauge>::default();
    metrics.with_registry(|r| {
        r.register(
            "keelson_certificate_expiry_timestamp_seconds",
            "When each certificate in the data dir expires",
            expiry.clone(),
        );
        r.register(
            "keelson_certificate_expiring_soon",
            "1 when the certificate expires within 30 days",
            soon.clone(),
        );
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let dir = data_dir.clone();
            let Ok(Ok(certs)) = tokio::task::spawn_blocking(move || check(&dir)).await else {
                continue;
            };
            for c in certs {
                let labels = CertLabels {
                    file: c.file.display().to_string(),
                };
                expiry.get_or_create(&labels).set(c.not_after_unix);
                soon.get_or_create(&labels)
                    .set(i64::from(c.expiring_soon()));
                if c.expiring_soon() {
                    tracing::warn!(
                        file = %c.file.display(),
                        days_left = c.seconds_left / 86_400,
                        "certificate expires within 30 days: run `keelson certificate rotate`"
                    );
                }
            }
        }
    });
}
