//! Who is calling and whether they may: the request layer ([`layer`]) authenticates
//! (in-process identity, client certificate, bearer token from the token file or a
//! ServiceAccount JWT, else anonymous), applies impersonation, and authorizes (system:masters,
//! then the Node authorizer, then RBAC) before dispatch. [`feed`] keeps the authorizers'
//! view of roles, bindings and pods current; [`escalation`] guards writes of roles and
//! bindings; [`tokens`] serves TokenRequest, TokenReview and the issuer's discovery documents.

mod attributes;
pub(crate) mod client_cert;
pub(crate) mod csr_signer;
pub(crate) mod escalation;
pub(crate) mod feed;
pub(crate) mod layer;
mod policy;
pub(crate) mod tokens;

use std::path::{Path, PathBuf};

use keelson_auth::authn::{ServiceAccountTokens, TokenFile};
use keelson_auth::node::NodeAuthorizer;
use keelson_auth::rbac::Rbac;
use keelson_auth::{Attributes, Decision};

use crate::UserInfo;

pub(crate) use attributes::of_request;
pub(crate) use policy::reconcile as reconcile_policy;

/// How requests are authorized (`--authorization-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthorizationMode {
    /// Node authorizer, then RBAC (Kubernetes' `Node,RBAC`).
    #[default]
    NodeRbac,
    /// Every authenticated request is allowed.
    AlwaysAllow,
}

impl std::str::FromStr for AuthorizationMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let modes: Vec<&str> = s.split(',').map(str::trim).collect();
        match modes.as_slice() {
            ["AlwaysAllow"] => Ok(Self::AlwaysAllow),
            ["Node", "RBAC"] | ["RBAC", "Node"] | ["RBAC"] => Ok(Self::NodeRbac),
            _ => Err(format!(
                "unsupported authorization mode {s:?} (supported: Node,RBAC and AlwaysAllow)"
            )),
        }
    }
}

/// Authentication and authorization settings (the `keelson server` flags).
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `--token-auth-file`: Kubernetes' static token CSV.
    pub token_auth_file: Option<PathBuf>,
    /// `--authorization-mode`.
    pub authorization_mode: AuthorizationMode,
    /// `--anonymous-auth`: requests without credentials run as `system:anonymous`.
    pub anonymous_auth: bool,
    /// `--service-account-issuer`.
    pub service_account_issuer: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            token_auth_file: None,
            authorization_mode: AuthorizationMode::default(),
            anonymous_auth: true,
            service_account_issuer: keelson_auth::authn::serviceaccount::DEFAULT_ISSUER.into(),
        }
    }
}

/// The authenticators and authorizers of one server.
#[derive(Debug)]
pub struct Auth {
    pub(crate) tokens: TokenFile,
    pub(crate) service_accounts: ServiceAccountTokens,
    pub(crate) rbac: Rbac,
    pub(crate) node: NodeAuthorizer,
    pub(crate) mode: AuthorizationMode,
    pub(crate) anonymous: bool,
}

/// Why the authentication setup failed.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct AuthSetupError(#[from] keelson_auth::authn::AuthnError);

impl Auth {
    /// Loads the token file and the ServiceAccount signing keys (in `tls_dir`), and adds the
    /// admin token.
    pub fn load(
        config: &AuthConfig,
        tls_dir: &Path,
        admin_token: &str,
    ) -> Result<Self, AuthSetupError> {
        let mut tokens = match &config.token_auth_file {
            Some(path) => TokenFile::load(path)?,
            None => TokenFile::default(),
        };
        tokens.insert(admin_token, UserInfo::admin());
        Ok(Self {
            tokens,
            service_accounts: ServiceAccountTokens::ensure(
                tls_dir,
                &config.service_account_issuer,
            )?,
            rbac: Rbac::default(),
            node: NodeAuthorizer::default(),
            mode: config.authorization_mode,
            anonymous: config.anonymous_auth,
        })
    }

    /// The decision for `user` doing `a`: system:masters always, then the Node authorizer,
    /// then RBAC (or everything under AlwaysAllow).
    pub fn authorize(&self, user: &UserInfo, a: &Attributes) -> Decision {
        if keelson_auth::is_master(user) || self.mode == AuthorizationMode::AlwaysAllow {
            return Decision::Allow(String::new());
        }
        let node = self.node.authorize(user, a);
        if !matches!(node, Decision::NoOpinion(_)) {
            return node;
        }
        match self.rbac.authorize(user, a) {
            Decision::NoOpinion(r) if r.is_empty() => Decision::NoOpinion(node.reason().into()),
            other => other,
        }
    }
}
