//! The auth configuration file: tokens file, JWT verification and role bindings.
//!
//! ```toml
//! tokens_file = "tokens.toml"            # relative paths are relative to this file
//!
//! [jwt]
//! issuer = "https://sso.example.com"
//! audience = "waybill"
//! algorithms = ["RS256"]                 # default: those the configured keys can verify
//! jwks_file = "jwks.json"
//!
//! [[binding]]
//! subjects = ["group:release-managers"]
//! roles = ["approver"]
//! projects = ["shop"]                    # empty or absent: every project
//! stages = ["prod"]                      # empty or absent: every stage
//! ```
//!
//! A binding restricted to stages grants its roles there, and at project
//! level only reading the project.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use waybill_ledger::name::name_problem;

use super::{AuthError, Role, Subject};

/// Claim that names the principal, unless configured otherwise.
pub const DEFAULT_PRINCIPAL_CLAIM: &str = "sub";
/// Claim that lists the principal's groups, unless configured otherwise.
pub const DEFAULT_GROUPS_CLAIM: &str = "groups";
/// Clock skew tolerated on `exp` and `nbf`, unless configured otherwise.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 60;
/// Shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// A secret string: deserialized like a string, never shown by `Debug`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself; keep it out of logs and messages.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The whole auth configuration (see the module docs for an example).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// A TOML file of `[[token]]` entries holding SHA-256 hashes of bearer tokens.
    pub tokens_file: Option<PathBuf>,
    /// JWT verification; absent means JWTs are refused.
    pub jwt: Option<JwtConfig>,
    /// Role bindings, written `[[binding]]`.
    #[serde(default, rename = "binding")]
    pub bindings: Vec<BindingConfig>,
}

/// A JWT signing algorithm Waybill accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// HMAC with SHA-256 (shared secret).
    HS256,
}

impl JwtAlgorithm {
    /// Every accepted algorithm.
    pub const ALL: [JwtAlgorithm; 3] = [
        JwtAlgorithm::RS256,
        JwtAlgorithm::ES256,
        JwtAlgorithm::HS256,
    ];

    /// The `alg` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::RS256 => "RS256",
            JwtAlgorithm::ES256 => "ES256",
            JwtAlgorithm::HS256 => "HS256",
        }
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How JWTs are verified and mapped to principals.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The only accepted `iss`.
    pub issuer: String,
    /// The `aud` that tokens must contain.
    pub audience: String,
    /// Accepted algorithms; empty means every algorithm a configured key can verify.
    #[serde(default)]
    pub algorithms: Vec<JwtAlgorithm>,
    /// HS256 shared secret (prefer `hs256_secret_file`).
    pub hs256_secret: Option<Secret>,
    /// A file holding the HS256 shared secret (surrounding whitespace is ignored).
    pub hs256_secret_file: Option<PathBuf>,
    /// PEM files of RSA or EC (P-256) public keys.
    #[serde(default)]
    pub public_keys_pem_files: Vec<PathBuf>,
    /// A JWKS JSON file; keys are picked by the token's `kid`.
    pub jwks_file: Option<PathBuf>,
    /// Claim naming the principal.
    #[serde(default = "default_principal_claim")]
    pub principal_claim: String,
    /// Claim listing the principal's groups (a string array or a single string).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
}

fn default_principal_claim() -> String {
    DEFAULT_PRINCIPAL_CLAIM.to_string()
}

fn default_groups_claim() -> String {
    DEFAULT_GROUPS_CLAIM.to_string()
}

fn default_leeway() -> u64 {
    DEFAULT_LEEWAY_SECONDS
}

impl JwtConfig {
    /// A configuration for `issuer` and `audience` with default claims and no keys.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> JwtConfig {
        JwtConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            algorithms: Vec::new(),
            hs256_secret: None,
            hs256_secret_file: None,
            public_keys_pem_files: Vec::new(),
            jwks_file: None,
            principal_claim: default_principal_claim(),
            groups_claim: default_groups_claim(),
            leeway_seconds: DEFAULT_LEEWAY_SECONDS,
        }
    }

    fn validate(&self) -> Result<(), AuthError> {
        let fail = |what: &str| Err(AuthError::config(format!("[jwt]: {what}")));
        if self.issuer.trim().is_empty() {
            return fail("issuer must not be empty");
        }
        if self.audience.trim().is_empty() {
            return fail("audience must not be empty");
        }
        if self.principal_claim.is_empty() || self.groups_claim.is_empty() {
            return fail("principal_claim and groups_claim must not be empty");
        }
        if self.hs256_secret.is_some() && self.hs256_secret_file.is_some() {
            return fail("set hs256_secret or hs256_secret_file, not both");
        }
        if self.hs256_secret.is_none()
            && self.hs256_secret_file.is_none()
            && self.public_keys_pem_files.is_empty()
            && self.jwks_file.is_none()
        {
            return fail(
                "no verification key: set hs256_secret(_file), public_keys_pem_files or jwks_file",
            );
        }
        Ok(())
    }

    fn resolve_paths(&mut self, base: &Path) {
        resolve_opt(&mut self.hs256_secret_file, base);
        resolve_opt(&mut self.jwks_file, base);
        for path in &mut self.public_keys_pem_files {
            *path = base.join(&*path);
        }
    }
}

/// A role binding: `roles` for `subjects` on `projects` × `stages`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingConfig {
    /// Who the binding applies to.
    pub subjects: Vec<Subject>,
    /// The roles granted.
    pub roles: Vec<Role>,
    /// Projects it applies to; empty means every project.
    #[serde(default)]
    pub projects: Vec<String>,
    /// Stages it applies to; empty means every stage and project-level
    /// operations. A binding on stages still lets its subjects read the
    /// project (the viewer role at project level), nothing more there.
    #[serde(default)]
    pub stages: Vec<String>,
}

impl BindingConfig {
    pub(crate) fn validate(&self, index: usize) -> Result<(), AuthError> {
        let fail = |what: String| Err(AuthError::config(format!("binding #{}: {what}", index + 1)));
        if self.subjects.is_empty() {
            return fail("subjects must not be empty".into());
        }
        if self.roles.is_empty() {
            return fail("roles must not be empty".into());
        }
        for (kind, names) in [("project", &self.projects), ("stage", &self.stages)] {
            for name in names {
                if let Some(problem) = name_problem(name) {
                    return fail(format!("{name:?} is not a valid {kind} name: {problem}"));
                }
            }
        }
        Ok(())
    }
}

impl AuthConfig {
    /// Reads and validates a TOML auth configuration. Relative paths in it are
    /// resolved against the file's directory.
    pub fn load(path: impl AsRef<Path>) -> Result<AuthConfig, AuthError> {
        let path = path.as_ref();
        let mut config: AuthConfig = read_toml(path, "auth config")?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        config.resolve_paths(base);
        config
            .validate()
            .map_err(|err| AuthError::config(format!("{}: {}", path.display(), strip(err))))?;
        Ok(config)
    }

    /// Checks everything that can be checked without reading the files it names.
    pub fn validate(&self) -> Result<(), AuthError> {
        if let Some(jwt) = &self.jwt {
            jwt.validate()?;
        }
        for (index, binding) in self.bindings.iter().enumerate() {
            binding.validate(index)?;
        }
        Ok(())
    }

    /// Every file this configuration names (tokens file, JWT secret, keys
    /// and JWKS), as resolved by [`AuthConfig::load`].
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.tokens_file.iter().cloned().collect();
        if let Some(jwt) = &self.jwt {
            files.extend(jwt.hs256_secret_file.iter().cloned());
            files.extend(jwt.public_keys_pem_files.iter().cloned());
            files.extend(jwt.jwks_file.iter().cloned());
        }
        files
    }

    fn resolve_paths(&mut self, base: &Path) {
        resolve_opt(&mut self.tokens_file, base);
        if let Some(jwt) = &mut self.jwt {
            jwt.resolve_paths(base);
        }
    }
}

fn resolve_opt(path: &mut Option<PathBuf>, base: &Path) {
    if let Some(path) = path {
        *path = base.join(&*path);
    }
}

fn strip(err: AuthError) -> String {
    match err {
        AuthError::Config(message) => message,
        other => other.to_string(),
    }
}

/// Reads a file as UTF-8 text; the error names the file and what it is for.
pub(crate) fn read_text(path: &Path, what: &str) -> Result<String, AuthError> {
    std::fs::read_to_string(path)
        .map_err(|err| AuthError::config(format!("cannot read {what} {}: {err}", path.display())))
}

/// Reads and parses a TOML file. The error gives file, line, column and the
/// parser's message, but never echoes the file's text (it may hold secrets).
pub(crate) fn read_toml<T: DeserializeOwned>(path: &Path, what: &str) -> Result<T, AuthError> {
    let text = read_text(path, what)?;
    toml::from_str(&text).map_err(|err| {
        let at = match err.span() {
            Some(span) => {
                let before = text.get(..span.start).unwrap_or(&text);
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(":{line}:{column}")
            }
            None => String::new(),
        };
        AuthError::config(format!("{what} {}{at}: {}", path.display(), err.message()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AuthConfig, String> {
        toml::from_str::<AuthConfig>(text).map_err(|e| e.message().to_string())
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let mut jwt = JwtConfig::new("iss", "aud");
        jwt.hs256_secret = Some(Secret::new("very-secret-value-0123456789abcdef"));
        let config = AuthConfig {
            jwt: Some(jwt),
            ..AuthConfig::default()
        };
        let debug = format!("{config:?}");
        assert!(!debug.contains("very-secret-value"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn bindings_are_validated() {
        let config = parse(
            r#"
            [[binding]]
            subjects = ["user:alice"]
            roles = ["approver"]
            projects = ["Shop"]
            "#,
        )
        .expect("parses");
        let err = config
            .validate()
            .expect_err("uppercase project")
            .to_string();
        assert!(
            err.contains("binding #1") && err.contains("\"Shop\""),
            "{err}"
        );

        let err = parse("[[binding]]\nsubjects = [\"team:x\"]\nroles = [\"viewer\"]\n")
            .expect_err("bad subject");
        assert!(err.contains("team:x"), "{err}");
        let err =
            parse("[[binding]]\nsubjects = [\"*\"]\nroles = [\"root\"]\n").expect_err("bad role");
        assert!(err.contains("root"), "{err}");
    }

    #[test]
    fn jwt_needs_a_key_and_known_algorithms() {
        let config = parse("[jwt]\nissuer = \"i\"\naudience = \"a\"\n").expect("parses");
        let err = config.validate().expect_err("no key").to_string();
        assert!(err.contains("no verification key"), "{err}");

        let err = parse("[jwt]\nissuer = \"i\"\naudience = \"a\"\nalgorithms = [\"none\"]\n")
            .expect_err("alg none");
        assert!(err.contains("none"), "{err}");
    }
}
