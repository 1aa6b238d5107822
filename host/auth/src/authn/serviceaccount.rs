//! ServiceAccount tokens: ES256-signed JWTs in Kubernetes' bound-token form (`iss`, `sub`,
//! `aud`, `exp`, and the `kubernetes.io` claim naming the namespace, ServiceAccount and the
//! optional Pod, Secret or Node the token is bound to, each with its uid). The signing key
//! lives in `<dir>/service-account.key` (0600); [`ServiceAccountTokens::rotate`] keeps the
//! old public keys (`<dir>/service-account-old/<kid>.jwk`) so tokens issued before still
//! verify. The issuer's discovery documents come from [`ServiceAccountTokens::jwks`] and
//! [`ServiceAccountTokens::openid_configuration`]. Whether the bound objects still exist is
//! the caller's check: this module knows no objects.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rcgen::PublicKeyData;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Digest;

use super::{write_private, AuthnError};
use crate::UserInfo;

/// Kubernetes' default issuer (k3s uses the same).
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// A name and uid an object claim carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Name.
    pub name: String,
    /// Uid.
    pub uid: String,
}

/// The `kubernetes.io` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundClaims {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount.
    pub serviceaccount: ObjectRef,
    /// The Pod the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    /// The Secret the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectRef>,
    /// The Node the token is bound to (or the node of the bound Pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Vec<String>,
    exp: i64,
    iat: i64,
    nbf: i64,
    jti: String,
    #[serde(rename = "kubernetes.io")]
    kubernetes: BoundClaims,
}

/// What a TokenRequest asks for.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// Audiences (empty = the API server's own).
    pub audiences: Vec<String>,
    /// Lifetime in seconds.
    pub expiration_seconds: i64,
    /// The subject and bound objects.
    pub bound: BoundClaims,
}

struct PublicKey {
    key: DecodingKey,
    jwk: Value,
}

/// Issues and verifies ServiceAccount tokens.
pub struct ServiceAccountTokens {
    issuer: String,
    audiences: Vec<String>,
    kid: String,
    signing: EncodingKey,
    keys: HashMap<String, PublicKey>,
}

impl std::fmt::Debug for ServiceAccountTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountTokens")
            .field("issuer", &self.issuer)
            .field("kid", &self.kid)
            .field("keys", &self.keys.len())
            .finish()
    }
}

fn key_path(dir: &Path) -> PathBuf {
    dir.join("service-account.key")
}

fn old_dir(dir: &Path) -> PathBuf {
    dir.join("service-account-old")
}

fn key_err(e: impl std::fmt::Display) -> AuthnError {
    AuthnError::Key(e.to_string())
}

/// The JWK and kid of a P-256 key pair (kid = base64url(sha256(SubjectPublicKeyInfo)), as
/// Kubernetes computes it).
fn public_jwk(pair: &rcgen::KeyPair) -> (String, Value) {
    let kid = B64.encode(sha2::Sha256::digest(pair.subject_public_key_info()));
    let raw = pair.public_key_raw();
    let (x, y) = (B64.encode(&raw[1..33]), B64.encode(&raw[33..65]));
    let jwk = json!({"use": "sig", "kty": "EC", "kid": kid, "crv": "P-256", "alg": "ES256", "x": x, "y": y});
    (kid, jwk)
}

fn decoding(jwk: &Value) -> Result<DecodingKey, AuthnError> {
    let part = |k: &str| {
        jwk[k]
            .as_str()
            .ok_or_else(|| key_err(format!("JWK without {k}")))
    };
    DecodingKey::from_ec_components(part("x")?, part("y")?).map_err(key_err)
}

impl ServiceAccountTokens {
    /// Loads the signing key from `dir`, creating it on first start, and every retired
    /// public key.
    pub fn ensure(dir: &Path, issuer: &str) -> Result<Self, AuthnError> {
        let path = key_path(dir);
        if !path.exists() {
            let pair = rcgen::KeyPair::generate().map_err(key_err)?;
            write_private(&path, pair.serialize_pem().as_bytes())?;
        }
        let pem = std::fs::read_to_string(&path).map_err(|source| AuthnError::Io {
            path: path.clone(),
            source,
        })?;
        let pair = rcgen::KeyPair::from_pem(&pem).map_err(key_err)?;
        let (kid, jwk) = public_jwk(&pair);
        let mut keys = HashMap::new();
        keys.insert(
            kid.clone(),
            PublicKey {
                key: decoding(&jwk)?,
                jwk,
            },
        );
        if let Ok(entries) = std::fs::read_dir(old_dir(dir)) {
            for entry in entries.flatten() {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let Ok(jwk) = serde_json::from_str::<Value>(&text) else {
                    tracing::warn!(file = %entry.path().display(), "ignoring an unreadable retired key");
                    continue;
                };
                let old_kid = jwk["kid"].as_str().unwrap_or_default().to_string();
                keys.insert(
                    old_kid,
                    PublicKey {
                        key: decoding(&jwk)?,
                        jwk,
                    },
                );
            }
        }
        Ok(Self {
            issuer: issuer.into(),
            audiences: vec![issuer.into()],
            kid,
            signing: EncodingKey::from_ec_pem(pem.as_bytes()).map_err(key_err)?,
            keys,
        })
    }

    /// Retires the current key (its public half keeps verifying old tokens) and makes a new
    /// one; a server picks it up on its next start.
    pub fn rotate(dir: &Path) -> Result<String, AuthnError> {
        let path = key_path(dir);
        if let Ok(pem) = std::fs::read_to_string(&path) {
            let pair = rcgen::KeyPair::from_pem(&pem).map_err(key_err)?;
            let (kid, jwk) = public_jwk(&pair);
            write_private(
                &old_dir(dir).join(format!("{kid}.jwk")),
                jwk.to_string().as_bytes(),
            )?;
        }
        let pair = rcgen::KeyPair::generate().map_err(key_err)?;
        write_private(&path, pair.serialize_pem().as_bytes())?;
        Ok(public_jwk(&pair).0)
    }

    /// The issuer (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The API server's own audiences.
    pub fn api_audiences(&self) -> &[String] {
        &self.audiences
    }

    /// Signs a token; returns it and its expiry (Unix seconds).
    pub fn issue(&self, req: &TokenRequest) -> Result<(String, i64), AuthnError> {
        let now = chrono::Utc::now().timestamp();
        let exp = now + req.expiration_seconds;
        let bound = &req.bound;
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: format!(
                "system:serviceaccount:{}:{}",
                bound.namespace, bound.serviceaccount.name
            ),
            aud: match req.audiences.is_empty() {
                true => self.audiences.clone(),
                false => req.audiences.clone(),
            },
            exp,
            iat: now,
            nbf: now,
            jti: uuid_like(),
            kubernetes: bound.clone(),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.signing).map_err(key_err)?;
        Ok((token, exp))
    }

    /// Verifies a bearer token for `audiences` (empty = the API server's own). `Ok(None)`
    /// when the token is not one of ours (not a JWT, or another issuer).
    pub fn verify(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<Option<(UserInfo, BoundClaims)>, AuthnError> {
        let invalid = |e: &dyn std::fmt::Display| AuthnError::InvalidToken(e.to_string());
        let mut parts = token.split('.');
        let (Some(_), Some(payload), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Ok(None);
        };
        let Some(iss) = B64
            .decode(payload)
            .ok()
            .and_then(|p| serde_json::from_slice::<Value>(&p).ok())
            .and_then(|v| v["iss"].as_str().map(String::from))
        else {
            return Ok(None);
        };
        if iss != self.issuer {
            return Ok(None);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(&e))?;
        let key = match header.kid.as_deref() {
            Some(kid) => self.keys.get(kid),
            None => None,
        }
        .ok_or_else(|| invalid(&"signed by an unknown key"))?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[&self.issuer]);
        let audiences = if audiences.is_empty() {
            &self.audiences
        } else {
            audiences
        };
        validation.set_audience(audiences);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|e| invalid(&e))?;
        let claims = data.claims;
        let bound = claims.kubernetes;
        let expected = format!(
            "system:serviceaccount:{}:{}",
            bound.namespace, bound.serviceaccount.name
        );
        if claims.sub != expected {
            return Err(invalid(&"subject does not match the kubernetes.io claim"));
        }
        Ok(Some((
            UserInfo::service_account(&bound.namespace, &bound.serviceaccount.name),
            bound,
        )))
    }

    /// `/openid/v1/jwks`: every public key that verifies tokens.
    pub fn jwks(&self) -> Value {
        let mut keys: Vec<&Value> = self.keys.values().map(|k| &k.jwk).collect();
        keys.sort_by_key(|k| k["kid"].as_str().map(String::from));
        json!({ "keys": keys })
    }

    /// `/.well-known/openid-configuration`, pointing at `jwks_uri` under `external_url`.
    pub fn openid_configuration(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/openid/v1/jwks", self.issuer.trim_end_matches('/')),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        })
    }
}

fn uuid_like() -> String {
    let b: [u8; 16] = rand::random();
    B64.encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(exp: i64) -> TokenRequest {
        TokenRequest {
            audiences: vec![],
            expiration_seconds: exp,
            bound: BoundClaims {
                namespace: "dev".into(),
                serviceaccount: ObjectRef {
                    name: "builder".into(),
                    uid: "u1".into(),
                },
                pod: Some(ObjectRef {
                    name: "p".into(),
                    uid: "u2".into(),
                }),
                secret: None,
                node: None,
            },
        }
    }

    #[test]
    fn issue_verify_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = ServiceAccountTokens::ensure(dir.path(), DEFAULT_ISSUER).unwrap();
        let (token, _) = tokens.issue(&request(600)).unwrap();
        let (user, bound) = tokens.verify(&token, &[]).unwrap().unwrap();
        assert_eq!(user.name, "system:serviceaccount:dev:builder");
        assert_eq!(bound.pod.unwrap().uid, "u2");
        // Wrong audience, tampering, truncation, expiry: refused; a foreign string: not ours.
        assert!(tokens.verify(&token, &["other".into()]).is_err());
        let mut tampered = token.clone();
        tampered.pop();
        assert!(tokens.verify(&tampered, &[]).is_err());
        assert!(tokens
            .verify(&token[..token.len() / 2], &[])
            .unwrap_or(None)
            .is_none());
        let (expired, _) = tokens.issue(&request(-10)).unwrap();
        assert!(tokens.verify(&expired, &[]).is_err());
        assert!(tokens.verify("abc123", &[]).unwrap().is_none());
        // A token signed by another key (another cluster with the same issuer) is refused.
        let other = tempfile::tempdir().unwrap();
        let foreign = ServiceAccountTokens::ensure(other.path(), DEFAULT_ISSUER).unwrap();
        let (theirs, _) = foreign.issue(&request(600)).unwrap();
        assert!(tokens.verify(&theirs, &[]).is_err());
        // After rotation the old token still verifies, and the JWKS lists both keys.
        ServiceAccountTokens::rotate(dir.path()).unwrap();
        let rotated = ServiceAccountTokens::ensure(dir.path(), DEFAULT_ISSUER).unwrap();
        assert!(rotated.verify(&token, &[]).unwrap().is_some());
        assert_eq!(rotated.jwks()["keys"].as_array().unwrap().len(), 2);
        let mode = std::fs::metadata(dir.path().join("service-account.key")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    }
}
