//! X.509 client certificates at the TLS listener: any certificate is accepted during the
//! handshake (proof of key possession still checked) and judged afterwards against the
//! client CA, so one from another CA is a 401 — Kubernetes' x509 authenticator behaviour —
//! rather than a failed handshake.

/// What a connection's client certificate says: the user it names once its chain verifies
/// against the client CA, or that it does not verify (401, as Kubernetes' x509 authenticator).
#[derive(Debug, Clone)]
pub(crate) enum PeerCertificate {
    /// CN = name, O = groups.
    User(crate::UserInfo),
    /// Signed by another CA, expired, or naming no user.
    Invalid,
}

/// Accepts any client certificate during the handshake (still checking that the client holds
/// its key) so that one from another CA becomes a 401 rather than a failed handshake, as in
/// Kubernetes; the chain is verified afterwards by [`peer_certificate`].
#[derive(Debug)]
pub(crate) struct RequestClientCert {
    inner: std::sync::Arc<dyn rustls::server::danger::ClientCertVerifier>,
}

impl RequestClientCert {
    /// Wraps the verifier that checks chains against the client CA.
    pub(crate) fn new(
        inner: std::sync::Arc<dyn rustls::server::danger::ClientCertVerifier>,
    ) -> Self {
        Self { inner }
    }
}

impl rustls::server::danger::ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The verdict on a connection's client certificate, if it sent one.
pub(crate) fn peer_certificate(
    conn: &rustls::ServerConnection,
    verifier: &RequestClientCert,
) -> Option<PeerCertificate> {
    let chain = conn.peer_certificates()?;
    let (end, intermediates) = chain.split_first()?;
    let now = rustls::pki_types::UnixTime::now();
    if let Err(e) = verifier.inner.verify_client_cert(end, intermediates, now) {
        tracing::debug!(error = %e, "client certificate refused");
        return Some(PeerCertificate::Invalid);
    }
    Some(match keelson_auth::authn::x509::user_from_der(end) {
        Ok(user) => PeerCertificate::User(user),
        Err(e) => {
            tracing::debug!(error = %e, "verified client certificate names no user");
            PeerCertificate::Invalid
        }
    })
}
