//! JWT verification keys: the HS256 secret, PEM public keys and a JWKS file,
//! all read once at start.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::DecodingKey;

use super::config::{read_text, JwtAlgorithm, JwtConfig, MIN_HS256_SECRET_BYTES};
use super::AuthError;

/// One key and the single algorithm it verifies.
pub(crate) struct VerificationKey {
    /// The JWKS `kid`; keys from the secret or PEM files have none.
    pub(crate) kid: Option<String>,
    pub(crate) algorithm: JwtAlgorithm,
    pub(crate) key: DecodingKey,
    /// Where the key came from, for logs.
    pub(crate) origin: String,
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Every configured key: the statically configured ones (secret, PEM files)
/// and the JWKS ones, which are chosen by `kid`.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    pub(crate) configured: Vec<VerificationKey>,
    pub(crate) jwks: Vec<VerificationKey>,
}

impl KeySet {
    pub(crate) fn load(config: &JwtConfig) -> Result<KeySet, AuthError> {
        let mut keys = KeySet::default();
        if let Some(secret) = &config.hs256_secret {
            keys.configured
                .push(hs256_key(secret.expose().as_bytes(), "hs256_secret")?);
        }
        if let Some(path) = &config.hs256_secret_file {
            let text = read_text(path, "HS256 secret file")?;
            let origin = format!("HS256 secret file {}", path.display());
            keys.configured
                .push(hs256_key(text.trim().as_bytes(), &origin)?);
        }
        for path in &config.public_keys_pem_files {
            keys.configured.push(pem_key(path)?);
        }
        if let Some(path) = &config.jwks_file {
            keys.jwks = jwks_keys(path)?;
        }
        Ok(keys)
    }

    /// The algorithms some key can verify.
    pub(crate) fn algorithms(&self) -> HashSet<JwtAlgorithm> {
        self.configured
            .iter()
            .chain(&self.jwks)
            .map(|k| k.algorithm)
            .collect()
    }

    /// The keys to try for a token with this `alg` and `kid`: the JWKS keys with
    /// that `kid` if there are any, else the configured keys (and, for a token
    /// without `kid`, the JWKS keys) for that algorithm.
    pub(crate) fn candidates(&self, alg: JwtAlgorithm, kid: Option<&str>) -> Vec<&VerificationKey> {
        let fits = |k: &&VerificationKey| k.algorithm == alg;
        if let Some(kid) = kid {
            let by_kid: Vec<_> = self
                .jwks
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .filter(fits)
                .collect();
            if !by_kid.is_empty() {
                return by_kid;
            }
            return self.configured.iter().filter(fits).collect();
        }
        self.configured
            .iter()
            .chain(&self.jwks)
            .filter(fits)
            .collect()
    }
}

fn hs256_key(secret: &[u8], origin: &str) -> Result<VerificationKey, AuthError> {
    if secret.len() < MIN_HS256_SECRET_BYTES {
        return Err(AuthError::config(format!(
            "{origin}: an HS256 secret needs at least {MIN_HS256_SECRET_BYTES} bytes"
        )));
    }
    let key = DecodingKey::from_secret(secret)
        .map_err(|err| AuthError::config(format!("{origin}: unusable HS256 secret: {err}")))?;
    Ok(VerificationKey {
        kid: None,
        algorithm: JwtAlgorithm::HS256,
        key,
        origin: origin.to_string(),
    })
}

fn pem_key(path: &Path) -> Result<VerificationKey, AuthError> {
    let fail =
        |what: &str| AuthError::config(format!("public key file {}: {what}", path.display()));
    let text = read_text(path, "public key file")?;
    if text.contains("PRIVATE KEY-----") {
        return Err(fail(
            "holds a private key; configure its public key (`openssl pkey -pubout`)",
        ));
    }
    let (key, algorithm) = if text.contains("-----BEGIN RSA PUBLIC KEY-----") {
        (
            DecodingKey::from_rsa_pem(text.as_bytes()),
            JwtAlgorithm::RS256,
        )
    } else if text.contains("-----BEGIN PUBLIC KEY-----") {
        match DecodingKey::from_rsa_pem(text.as_bytes()) {
            Ok(key) => (Ok(key), JwtAlgorithm::RS256),
            Err(_) => (
                DecodingKey::from_ec_pem(text.as_bytes()),
                JwtAlgorithm::ES256,
            ),
        }
    } else {
        return Err(fail(
            "expected a PEM `PUBLIC KEY` or `RSA PUBLIC KEY` block",
        ));
    };
    let key = key.map_err(|_| fail("not an RSA or EC public key"))?;
    if !usable(&key, algorithm) {
        return Err(fail(
            "the key cannot verify RS256 or ES256 (EC keys must be on P-256)",
        ));
    }
    Ok(VerificationKey {
        kid: None,
        algorithm,
        key,
        origin: path.display().to_string(),
    })
}

fn jwks_keys(path: &Path) -> Result<Vec<VerificationKey>, AuthError> {
    let fail = |what: String| AuthError::config(format!("JWKS file {}: {what}", path.display()));
    let text = read_text(path, "JWKS file")?;
    let set: JwkSet = serde_json::from_str(&text).map_err(|err| fail(err.to_string()))?;
    let mut keys: Vec<VerificationKey> = Vec::new();
    for (index, jwk) in set.keys.iter().enumerate() {
        let name = match &jwk.common.key_id {
            Some(kid) => format!("key {kid:?}"),
            None => format!("key #{}", index + 1),
        };
        let Some(algorithm) = jwk_algorithm(jwk).map_err(|what| fail(format!("{name}: {what}")))?
        else {
            tracing::info!(jwks = %path.display(), key = %name, "skipping a JWKS key that cannot verify RS256 or ES256 signatures");
            continue;
        };
        let key = DecodingKey::from_jwk(jwk)
            .ok()
            .filter(|key| usable(key, algorithm))
            .ok_or_else(|| fail(format!("{name}: not a valid {algorithm} public key")))?;
        let kid = jwk.common.key_id.clone();
        if kid.is_some() && keys.iter().any(|k| k.kid == kid) {
            return Err(fail(format!("{name}: the kid is used twice")));
        }
        let origin = format!("JWKS file {} {name}", path.display());
        keys.push(VerificationKey {
            kid,
            algorithm,
            key,
            origin,
        });
    }
    if keys.is_empty() {
        return Err(fail("no RS256 or ES256 signature key".into()));
    }
    Ok(keys)
}

/// The algorithm a JWK verifies; `None` for keys to skip (encryption keys,
/// other algorithms or curves), an error for keys that do not belong there.
fn jwk_algorithm(jwk: &Jwk) -> Result<Option<JwtAlgorithm>, String> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Ok(None);
    }
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => JwtAlgorithm::RS256,
        AlgorithmParameters::EllipticCurve(params) if params.curve == EllipticCurve::P256 => {
            JwtAlgorithm::ES256
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err(
                "symmetric (oct) keys are refused in a JWKS file; use hs256_secret_file".into(),
            )
        }
        _ => return Ok(None),
    };
    let declared = match jwk.common.key_algorithm {
        None => return Ok(Some(by_type)),
        Some(KeyAlgorithm::RS256) => JwtAlgorithm::RS256,
        Some(KeyAlgorithm::ES256) => JwtAlgorithm::ES256,
        Some(_) => return Ok(None),
    };
    if declared != by_type {
        return Err(format!("alg {declared} does not fit the key type"));
    }
    Ok(Some(by_type))
}

/// Whether the crypto backend accepts `key` for `algorithm`: verifying a dummy
/// signature must fail as a mismatch, not as an unusable key.
fn usable(key: &DecodingKey, algorithm: JwtAlgorithm) -> bool {
    jsonwebtoken::crypto::verify("AAAA", b"probe", key, to_jwt(algorithm)).is_ok()
}

pub(crate) fn to_jwt(algorithm: JwtAlgorithm) -> jsonwebtoken::Algorithm {
    match algorithm {
        JwtAlgorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        JwtAlgorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        JwtAlgorithm::HS256 => jsonwebtoken::Algorithm::HS256,
    }
}
