//! Turning request metadata into a [`Principal`].

use std::sync::{Arc, RwLock};

use tonic::metadata::MetadataMap;

use super::bearer::{bearer, Credential};
use super::config::BindingConfig;
use super::jwt::JwtVerifier;
use super::principal::Grants;
use super::tokens::TokenStore;
use super::{AuthConfig, AuthError, Authorizer, Principal, Role};

/// Authenticates requests (bearer tokens and JWTs) and holds the [`Authorizer`]
/// built from the same configuration. Everything is read at construction,
/// and again by [`Authenticator::reload`]; `Debug` shows no secret.
#[derive(Debug)]
pub struct Authenticator {
    credentials: RwLock<Arc<Credentials>>,
    authorizer: Authorizer,
    insecure_dev: bool,
}

/// What credentials are checked against, and the role bindings read with
/// them: swapped as one by a reload, so that a principal is judged against
/// the bindings of the configuration that authenticated it.
#[derive(Debug)]
struct Credentials {
    tokens: Option<TokenStore>,
    jwt: Option<JwtVerifier>,
    bindings: Arc<Vec<BindingConfig>>,
}

/// Reads and checks everything `config` names.
fn load(config: AuthConfig) -> Result<Credentials, AuthError> {
    config.validate()?;
    let tokens = config
        .tokens_file
        .as_deref()
        .map(TokenStore::load)
        .transpose()?;
    let jwt = config.jwt.as_ref().map(JwtVerifier::new).transpose()?;
    Authorizer::validate(&config.bindings)?;
    tracing::info!(
        tokens = tokens.as_ref().map_or(0, TokenStore::len),
        jwt_algorithms = ?jwt.as_ref().map(JwtVerifier::algorithms),
        bindings = config.bindings.len(),
        "authentication configured"
    );
    Ok(Credentials {
        tokens,
        jwt,
        bindings: Arc::new(config.bindings),
    })
}

impl Authenticator {
    /// Validates `config` and reads the tokens file, keys and JWKS it names.
    pub fn new(config: AuthConfig) -> Result<Authenticator, AuthError> {
        let credentials = load(config)?;
        let authorizer = Authorizer::default();
        authorizer.replace(credentials.bindings.clone());
        Ok(Authenticator {
            credentials: RwLock::new(Arc::new(credentials)),
            authorizer,
            insecure_dev: false,
        })
    }

    /// Puts a new configuration in force (tokens, JWT keys, role bindings)
    /// for every request from now on, or, if anything in it is wrong,
    /// changes nothing and says what. Insecure-dev mode stays as it was.
    pub fn reload(&self, config: AuthConfig) -> Result<(), AuthError> {
        let credentials = load(config)?;
        let bindings = credentials.bindings.clone();
        *self.credentials.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(credentials);
        // For principals authenticated elsewhere (services): the ones this
        // authenticator makes carry the bindings read with their credentials.
        self.authorizer.replace(bindings);
        Ok(())
    }

    fn credentials(&self) -> Arc<Credentials> {
        self.credentials
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `--insecure-dev`: a request without credentials becomes the anonymous
    /// principal holding every role. Invalid credentials are still refused.
    pub fn with_insecure_dev(mut self, insecure_dev: bool) -> Authenticator {
        if insecure_dev {
            tracing::warn!(
                "INSECURE DEV MODE: requests without credentials act as `anonymous` with \
                 every role on every project; never run this outside a local trial"
            );
        }
        self.insecure_dev = insecure_dev;
        self.authorizer = self.authorizer.with_insecure_dev(insecure_dev);
        self
    }

    /// Whether any credential can be accepted: a tokens file or JWT keys.
    /// Without either, only insecure-dev mode admits anyone.
    pub fn accepts_credentials(&self) -> bool {
        let credentials = self.credentials();
        credentials.tokens.is_some() || credentials.jwt.is_some()
    }

    /// What is in force, for people: the tokens, the JWT algorithms and the
    /// role bindings, or that nothing can be accepted.
    pub fn describe(&self) -> String {
        let credentials = self.credentials();
        let mut parts = Vec::new();
        if let Some(tokens) = &credentials.tokens {
            parts.push(counted(tokens.len(), "bearer token"));
        }
        if let Some(jwt) = &credentials.jwt {
            let algorithms: Vec<String> =
                jwt.algorithms().iter().map(|a| format!("{a:?}")).collect();
            parts.push(format!("JWTs ({})", algorithms.join(", ")));
        }
        let bindings = credentials.bindings.len();
        let accepted = if parts.is_empty() {
            "no credentials accepted".to_string()
        } else {
            parts.join(", ")
        };
        let dev = if self.insecure_dev {
            "; INSECURE DEV MODE: requests without credentials act as admin"
        } else {
            ""
        };
        format!("{accepted}; {}{dev}", counted(bindings, "role binding"))
    }

    /// Whether insecure-dev mode is on.
    pub fn insecure_dev(&self) -> bool {
        self.insecure_dev
    }

    /// The role bindings.
    pub fn authorizer(&self) -> &Authorizer {
        &self.authorizer
    }

    /// The principal behind `authorization: Bearer <credential>`.
    pub fn authenticate(&self, metadata: &MetadataMap) -> Result<Principal, AuthError> {
        let result = self.identify(metadata);
        if let Err(err) = &result {
            tracing::debug!(error = %err, "authentication refused");
        }
        result
    }

    /// Authenticates, then requires `role` on `project` (and `stage`).
    pub fn authorize(
        &self,
        metadata: &MetadataMap,
        role: Role,
        project: &str,
        stage: Option<&str>,
    ) -> Result<Principal, AuthError> {
        let principal = self.authenticate(metadata)?;
        self.authorizer.require(&principal, role, project, stage)?;
        Ok(principal)
    }

    fn identify(&self, metadata: &MetadataMap) -> Result<Principal, AuthError> {
        let credentials = self.credentials();
        let mut principal = Self::check(&credentials, metadata, self.insecure_dev)?;
        principal.grants = Grants::new(credentials.bindings.clone());
        Ok(principal)
    }

    fn check(
        credentials: &Credentials,
        metadata: &MetadataMap,
        insecure_dev: bool,
    ) -> Result<Principal, AuthError> {
        let nothing_accepted = credentials.tokens.is_none() && credentials.jwt.is_none();
        match bearer(metadata)? {
            None if insecure_dev => Ok(Principal::anonymous()),
            _ if nothing_accepted => Err(AuthError::unauthenticated(
                "this server accepts no credentials: it runs without an auth config \
                 (`waybill serve --auth-config FILE`, or `--insecure-dev` for a local trial)",
            )),
            None => Err(AuthError::unauthenticated(
                "no credentials: send `authorization: Bearer <token>`",
            )),
            Some(Credential::Jwt(token)) => match &credentials.jwt {
                Some(jwt) => jwt.verify(token),
                None => Err(AuthError::unauthenticated(
                    "JWT authentication is not configured",
                )),
            },
            Some(Credential::Token(token)) => credentials
                .tokens
                .as_ref()
                .and_then(|tokens| tokens.authenticate(token))
                .ok_or_else(|| AuthError::unauthenticated("unknown bearer token")),
        }
    }
}

/// `1 role binding`, `2 role bindings`.
fn counted(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}
