//! First-start credentials in the data dir: a CA, a serving certificate whose SANs cover the
//! loopback addresses, the hostname and the `kubernetes.default.svc` names, an admin bearer
//! token, the node join token (`node-token`), and `kubeconfig.yaml`. All are reused on restart; only the kubeconfig is rewritten
//! with the real port.

use std::path::{Path, PathBuf};

use base64::Engine;

use crate::auth::client_cert::RequestClientCert;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// PEM material and the admin token, as loaded from (or written to) the data dir.
#[derive(Clone)]
pub(crate) struct Credentials {
    /// CA certificate (PEM).
    pub ca_pem: String,
    /// The admin bearer token (user `admin`, group `system:masters`).
    pub admin_token: String,
    /// The node join token (`<data-dir>/node-token`) agents present to join.
    pub node_token: String,
    /// The CA that signs client certificates (PEM).
    pub client_ca_pem: String,
}

/// Writes a file readable by its owner only, atomically: a reader (kubectl reading the
/// kubeconfig while the server restarts) sees the old contents or the new, never a half.
pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

pub(crate) fn tls_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tls")
}

/// Loads the credentials, creating any that are missing.
pub(crate) fn ensure(data_dir: &Path) -> std::io::Result<Credentials> {
    let dir = tls_dir(data_dir);
    std::fs::create_dir_all(&dir)?;
    let (ca, cert, key, token) = (
        dir.join("ca.crt"),
        dir.join("server.crt"),
        dir.join("server.key"),
        data_dir.join("token"),
    );
    let ca_key = dir.join("ca.key");
    if ca.exists() && ca_key.exists() && !(cert.exists() && key.exists()) {
        // The CA came from elsewhere (another server of the cluster, see `cluster_secrets`):
        // this server's own serving certificate is signed by it.
        const TEN_YEARS: std::time::Duration = std::time::Duration::from_secs(3650 * 86_400);
        crate::certs::rotate(data_dir, TEN_YEARS).map_err(std::io::Error::other)?;
    }
    if !(ca.exists() && cert.exists() && key.exists()) {
        let made = generate().map_err(std::io::Error::other)?;
        write_private(&ca, &made.0)?;
        write_private(&cert, &made.1)?;
        write_private(&key, &made.2)?;
        // Kept so `keelson certificate rotate` can renew under the same CA.
        write_private(&ca_key, &made.3)?;
    }
    let node_token = data_dir.join("node-token");
    for path in [&token, &node_token] {
        if !path.exists() {
            let bytes: [u8; 24] = rand::random();
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            write_private(path, &hex)?;
        }
    }
    let client_ca =
        keelson_auth::authn::x509::ClientCa::ensure(&dir).map_err(std::io::Error::other)?;
    Ok(Credentials {
        client_ca_pem: client_ca.cert_pem,
        ca_pem: std::fs::read_to_string(ca)?,
        admin_token: std::fs::read_to_string(token)?.trim().to_string(),
        node_token: std::fs::read_to_string(node_token)?.trim().to_string(),
    })
}

/// A new CA, and a serving certificate signed by it: (CA cert, cert, key, CA key) as PEM.
fn generate() -> Result<(String, String, String, String), rcgen::Error> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "keelson-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca_pem = ca_cert.pem();
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let (cert, key) = serving_cert(&issuer, rcgen::date_time_ymd(2036, 1, 1))?;
    Ok((ca_pem, cert, key, ca_key_pem))
}

/// A serving certificate (new key) for the loopback addresses, the hostname and the
/// `kubernetes.default.svc` names, signed by `issuer`: (cert, key) as PEM.
pub(crate) fn serving_cert(
    issuer: &Issuer<'_, KeyPair>,
    not_after: time::OffsetDateTime,
) -> Result<(String, String), rcgen::Error> {
    let mut sans = vec![
        "127.0.0.1".to_string(),
        "::1".into(),
        "localhost".into(),
        "10.43.0.1".into(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
    ];
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        let h = h.trim();
        if !h.is_empty() && !sans.iter().any(|s| s == h) {
            sans.push(h.to_string());
        }
    }
    let mut params = CertificateParams::new(sans)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "keelson-apiserver");
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::minutes(5);
    params.not_after = not_after;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes `<data-dir>/kubeconfig.yaml` (mode 0600) for `https://127.0.0.1:<port>`.
pub(crate) fn write_kubeconfig(path: &Path, creds: &Credentials, port: u16) -> std::io::Result<()> {
    let ca = base64::engine::general_purpose::STANDARD.encode(creds.ca_pem.as_bytes());
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: https://127.0.0.1:{port}\n  name: keelson\ncontexts:\n- context:\n    cluster: keelson\n    user: admin\n  name: keelson\ncurrent-context: keelson\npreferences: {{}}\nusers:\n- name: admin\n  user:\n    token: {}\n",
        creds.admin_token
    );
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_private(path, &text)
}

/// A rustls server config serving `<data_dir>/tls/server.crt`, re-read when it is rotated,
/// offering HTTP/2 and HTTP/1.1, and the verifier that judges client certificates (signed by
/// the client CA in `creds`) after the handshake.
pub(crate) fn server_tls(
    creds: &Credentials,
    data_dir: &Path,
) -> std::io::Result<(rustls::ServerConfig, std::sync::Arc<RequestClientCert>)> {
    let resolver = crate::certs::ReloadingCert::new(data_dir).map_err(std::io::Error::other)?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut creds.client_ca_pem.as_bytes()) {
        roots.add(ca?).map_err(std::io::Error::other)?;
    }
    // Client certificates are optional: without one a request authenticates by token.
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(std::io::Error::other)?;
    let verifier = std::sync::Arc::new(RequestClientCert::new(verifier));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_client_cert_verifier(verifier.clone())
        .with_cert_resolver(std::sync::Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((config, verifier))
}
