//! X.509 client certificates: the cluster's client CA (`<dir>/client-ca.crt` and `.key`,
//! made on first start, like k3s's), issuing client certificates from it, and reading the
//! user from a verified certificate as Kubernetes does (CN = user name, each O = a group).
//! The TLS layer verifies the chain; this module only names the user.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use super::{write_private, AuthnError};
use crate::UserInfo;

/// The client CA.
#[derive(Clone)]
pub struct ClientCa {
    /// CA certificate (PEM).
    pub cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for ClientCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCa").finish_non_exhaustive()
    }
}

fn key_err(e: impl std::fmt::Display) -> AuthnError {
    AuthnError::Key(e.to_string())
}

fn ca_params() -> Result<CertificateParams, AuthnError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(key_err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "keelson-client-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    Ok(params)
}

impl ClientCa {
    /// Loads the client CA from `dir`, creating it on first start.
    pub fn ensure(dir: &Path) -> Result<Self, AuthnError> {
        let (cert, key) = (dir.join("client-ca.crt"), dir.join("client-ca.key"));
        if !(cert.exists() && key.exists()) {
            let pair = KeyPair::generate().map_err(key_err)?;
            let ca = ca_params()?.self_signed(&pair).map_err(key_err)?;
            write_private(&key, pair.serialize_pem().as_bytes())?;
            write_private(&cert, ca.pem().as_bytes())?;
        }
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| AuthnError::Io {
                path: p.into(),
                source,
            })
        };
        Ok(Self {
            cert_pem: read(&cert)?,
            key_pem: read(&key)?,
        })
    }

    /// Signs a certificate request with this CA (see [`sign_request`]).
    pub fn sign_request(&self, csr_pem: &str, seconds: i64) -> Result<String, AuthnError> {
        sign_request(&self.cert_pem, &self.key_pem, csr_pem, seconds, false)
    }

    /// Issues a client certificate for `user` in `groups` (at most two), valid for `days`;
    /// returns the certificate and key (PEM).
    pub fn issue(
        &self,
        user: &str,
        groups: &[&str],
        days: i64,
    ) -> Result<(String, String), AuthnError> {
        let ca_key = KeyPair::from_pem(&self.key_pem).map_err(key_err)?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, ca_key).map_err(key_err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(key_err)?;
        params.distinguished_name.push(DnType::CommonName, user);
        // rcgen keeps one value per attribute type; the second O goes in under its OID.
        let o_types = [
            DnType::OrganizationName,
            DnType::CustomDnType(vec![2, 5, 4, 10]),
        ];
        if groups.len() > o_types.len() {
            return Err(AuthnError::Key(
                "at most two groups per issued certificate".into(),
            ));
        }
        for (ty, g) in o_types.into_iter().zip(groups) {
            params.distinguished_name.push(ty, *g);
        }
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let now = time_now();
        params.not_before = now - std::time::Duration::from_secs(300);
        params.not_after = now + std::time::Duration::from_secs((days.max(0) as u64) * 86_400);
        let key = KeyPair::generate().map_err(key_err)?;
        let cert = params.signed_by(&key, &issuer).map_err(key_err)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// Signs a PEM certificate request (the public key and subject it names) with the CA in
/// `ca_cert_pem`/`ca_key_pem`, valid for `seconds`, for client or server use; returns the
/// certificate (PEM). The request's names are kept; the CA chooses the validity.
pub fn sign_request(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    csr_pem: &str,
    seconds: i64,
    server: bool,
) -> Result<String, AuthnError> {
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(key_err)?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key).map_err(key_err)?;
    let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| AuthnError::InvalidCertificate(format!("certificate request: {e}")))?;
    let now = time_now();
    csr.params.not_before = now - std::time::Duration::from_secs(300);
    csr.params.not_after = now + std::time::Duration::from_secs(seconds.max(600) as u64);
    csr.params.is_ca = IsCa::NoCa;
    csr.params.extended_key_usages = vec![match server {
        true => rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        false => rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    }];
    let cert = csr.signed_by(&issuer).map_err(key_err)?;
    Ok(cert.pem())
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// The user a verified client certificate names: CN is the user, each O a group.
pub fn user_from_der(der: &[u8]) -> Result<UserInfo, AuthnError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| AuthnError::InvalidCertificate(e.to_string()))?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| AuthnError::InvalidCertificate("no common name".into()))?;
    let groups: Vec<&str> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .collect();
    Ok(UserInfo::new(name, &groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_names_user_and_groups() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClientCa::ensure(dir.path()).unwrap();
        let (pem, _) = ca.issue("alice", &["dev", "ops"], 1).unwrap();
        let der = rustls_pemfile_like(&pem);
        let user = user_from_der(&der).unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(user.groups, ["dev", "ops", "system:authenticated"]);
        assert!(user_from_der(&der[..der.len() / 2]).is_err());
        // A request signed by the CA names its own subject.
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "dave");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "devs");
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let signed = ca.sign_request(&csr, 3600).unwrap();
        let user = user_from_der(&rustls_pemfile_like(&signed)).unwrap();
        assert_eq!(
            (user.name.as_str(), user.groups[0].as_str()),
            ("dave", "devs")
        );
        assert!(ca.sign_request("not a request", 3600).is_err());
        // Reloaded, the same CA.
        assert_eq!(ClientCa::ensure(dir.path()).unwrap().cert_pem, ca.cert_pem);
    }

    fn rustls_pemfile_like(pem: &str) -> Vec<u8> {
        use base64::Engine;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    }
}
