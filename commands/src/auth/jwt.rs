//! JWT verification: signature with a configured key, allowed algorithm,
//! `exp`, `nbf`, `iss` and `aud`; then the claims become a [`Principal`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::Validation;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::config::{JwtAlgorithm, JwtConfig};
use super::keys::{to_jwt, KeySet};
use super::{AuthError, AuthMethod, Principal, SERVICE_PREFIX};

/// Verifies JWTs against the configured keys and policy.
#[derive(Debug)]
pub(crate) struct JwtVerifier {
    keys: KeySet,
    /// One validation per allowed algorithm: the backend wants every algorithm
    /// of a validation to fit the key's family.
    validations: Vec<(JwtAlgorithm, Validation)>,
    principal_claim: String,
    groups_claim: String,
}

/// The part of the JOSE header read before verification.
#[derive(Deserialize)]
struct PeekedHeader {
    alg: Value,
    #[serde(default)]
    kid: Option<String>,
}

impl JwtVerifier {
    pub(crate) fn new(config: &JwtConfig) -> Result<JwtVerifier, AuthError> {
        let keys = KeySet::load(config)?;
        let available = keys.algorithms();
        let mut allowed: Vec<JwtAlgorithm> = Vec::new();
        if config.algorithms.is_empty() {
            allowed.extend(
                JwtAlgorithm::ALL
                    .into_iter()
                    .filter(|alg| available.contains(alg)),
            );
        }
        for alg in &config.algorithms {
            if !available.contains(alg) {
                return Err(AuthError::config(format!(
                    "[jwt]: algorithm {alg} is allowed but no configured key verifies it"
                )));
            }
            if !allowed.contains(alg) {
                allowed.push(*alg);
            }
        }
        let validations = allowed
            .into_iter()
            .map(|alg| {
                let mut validation = Validation::new(to_jwt(alg));
                validation.set_required_spec_claims(&["exp", "iss", "aud"]);
                validation.validate_exp = true;
                validation.validate_nbf = true;
                validation.validate_aud = true;
                validation.leeway = config.leeway_seconds;
                validation.set_issuer(&[&config.issuer]);
                validation.set_audience(&[&config.audience]);
                (alg, validation)
            })
            .collect();
        Ok(JwtVerifier {
            keys,
            validations,
            principal_claim: config.principal_claim.clone(),
            groups_claim: config.groups_claim.clone(),
        })
    }

    /// The algorithms accepted, in a stable order.
    pub(crate) fn algorithms(&self) -> Vec<JwtAlgorithm> {
        self.validations.iter().map(|(alg, _)| *alg).collect()
    }

    pub(crate) fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = peek_header(token)?;
        let alg = match header.alg.as_str() {
            Some(alg) if alg.eq_ignore_ascii_case("none") => {
                return Err(AuthError::unauthenticated(
                    "unsigned JWTs (alg none) are refused",
                ))
            }
            Some(alg) => JwtAlgorithm::ALL
                .into_iter()
                .find(|known| known.as_str() == alg)
                .ok_or_else(|| AuthError::unauthenticated("the JWT algorithm is not supported"))?,
            None => return Err(AuthError::unauthenticated("malformed JWT header")),
        };
        let validation = self
            .validations
            .iter()
            .find(|(allowed, _)| *allowed == alg)
            .map(|(_, validation)| validation)
            .ok_or_else(|| {
                AuthError::unauthenticated(format!("JWT algorithm {alg} is not allowed"))
            })?;
        let candidates = self.keys.candidates(alg, header.kid.as_deref());
        if candidates.is_empty() {
            return Err(AuthError::unauthenticated(format!(
                "no configured {alg} key matches the JWT"
            )));
        }
        for candidate in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &candidate.key, validation) {
                Ok(data) => {
                    tracing::trace!(key = %candidate.origin, "jwt verified");
                    return self.principal(&data.claims);
                }
                // Only a signature mismatch lets another key be tried: the claims
                // are checked after the signature, so any other error is final.
                Err(err) if matches!(err.kind(), ErrorKind::InvalidSignature) => continue,
                Err(err) => return Err(AuthError::unauthenticated(describe(err.kind()))),
            }
        }
        Err(AuthError::unauthenticated("invalid JWT signature"))
    }

    fn principal(&self, claims: &Map<String, Value>) -> Result<Principal, AuthError> {
        let name = claims
            .get(&self.principal_claim)
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            .ok_or_else(|| {
                AuthError::unauthenticated(format!(
                    "the JWT has no non-empty string {:?} claim",
                    self.principal_claim
                ))
            })?;
        if name.starts_with(SERVICE_PREFIX) {
            return Err(AuthError::unauthenticated(format!(
                "JWT principals may not start with {SERVICE_PREFIX:?} (reserved for services)"
            )));
        }
        let bad_groups = || {
            AuthError::unauthenticated(format!(
                "the JWT {:?} claim must be a string or an array of strings",
                self.groups_claim
            ))
        };
        let groups = match claims.get(&self.groups_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(group)) => vec![group.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map(str::to_string).ok_or_else(bad_groups))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(bad_groups()),
        };
        Ok(Principal::new(name, groups, AuthMethod::Jwt))
    }
}

fn peek_header(token: &str) -> Result<PeekedHeader, AuthError> {
    let malformed = || AuthError::unauthenticated("malformed JWT header");
    let encoded = token.split('.').next().ok_or_else(malformed)?;
    let json = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| malformed())?;
    serde_json::from_slice(&json).map_err(|_| malformed())
}

/// Why a JWT was refused, without echoing anything from it.
fn describe(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "the JWT has expired".into(),
        ErrorKind::ImmatureSignature => "the JWT is not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "the JWT issuer is not accepted".into(),
        ErrorKind::InvalidAudience => "the JWT audience is not accepted".into(),
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            claim @ ("exp" | "nbf" | "iss" | "aud" | "sub") => {
                format!("the JWT has no {claim} claim")
            }
            _ => "the JWT lacks a required claim".into(),
        },
        ErrorKind::InvalidClaimFormat(_) => "the JWT has a malformed registered claim".into(),
        ErrorKind::InvalidSignature => "invalid JWT signature".into(),
        ErrorKind::InvalidAlgorithm => "the JWT algorithm does not fit the key".into(),
        _ => "malformed JWT".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peeks_alg_and_kid() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#);
        let peeked = peek_header(&format!("{header}.e30.c2ln")).expect("valid header");
        assert_eq!(peeked.alg.as_str(), Some("RS256"));
        assert_eq!(peeked.kid.as_deref(), Some("k1"));
        assert!(peek_header("!!.e30.c2ln").is_err());
        let no_alg = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT"}"#);
        assert!(peek_header(&format!("{no_alg}.e30.c2ln")).is_err());
    }
}
