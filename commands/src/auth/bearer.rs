//! Reading `authorization: Bearer <credential>` from request metadata.

use std::fmt;

use tonic::metadata::MetadataMap;

use super::AuthError;

/// The metadata key carrying credentials.
pub const AUTHORIZATION: &str = "authorization";

/// A presented credential, classified by shape. `Debug` never shows it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Credential<'a> {
    /// Three dot-separated base64url segments: verified as a JWT.
    Jwt(&'a str),
    /// Anything else: looked up by SHA-256 in the tokens file.
    Token(&'a str),
}

impl fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Jwt(_) => f.write_str("Jwt(<redacted>)"),
            Credential::Token(_) => f.write_str("Token(<redacted>)"),
        }
    }
}

impl<'a> Credential<'a> {
    fn classify(credential: &'a str) -> Credential<'a> {
        if looks_like_jwt(credential) {
            Credential::Jwt(credential)
        } else {
            Credential::Token(credential)
        }
    }
}

/// The bearer credential of a request, `None` when there is no `authorization`.
/// Errors describe the problem without echoing the value.
pub(crate) fn bearer(metadata: &MetadataMap) -> Result<Option<Credential<'_>>, AuthError> {
    let mut values = metadata.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::unauthenticated(
            "more than one authorization value",
        ));
    }
    let malformed =
        || AuthError::unauthenticated("malformed authorization: expected `Bearer <credential>`");
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, credential) = value.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::unauthenticated(
            "unsupported authorization scheme: expected `Bearer <credential>`",
        ));
    }
    let credential = credential.trim_start();
    if credential.is_empty() || credential.contains(char::is_whitespace) {
        return Err(malformed());
    }
    Ok(Some(Credential::classify(credential)))
}

/// Whether `credential` has a JWS compact shape: three non-empty base64url segments.
pub(crate) fn looks_like_jwt(credential: &str) -> bool {
    let segments: Vec<&str> = credential.split('.').collect();
    segments.len() == 3
        && segments.iter().all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(values: &[&str]) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        for value in values {
            metadata.append(AUTHORIZATION, value.parse().expect("ascii metadata"));
        }
        metadata
    }

    #[test]
    fn classifies_credentials() {
        assert!(looks_like_jwt("eyJh.eyJz.c2ln"));
        assert!(looks_like_jwt("a-_9.b.c"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a..c"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a+b.c.d"));
        assert!(!looks_like_jwt("wb_0123456789abcdef"));
    }

    #[test]
    fn parses_the_bearer_scheme() {
        let metadata = with(&["Bearer tok-1"]);
        assert_eq!(bearer(&metadata), Ok(Some(Credential::Token("tok-1"))));
        let metadata = with(&["bearer   a.b.c"]);
        assert_eq!(bearer(&metadata), Ok(Some(Credential::Jwt("a.b.c"))));
        assert_eq!(bearer(&MetadataMap::new()), Ok(None));
    }

    #[test]
    fn refuses_malformed_values_without_echoing_them() {
        for values in [
            &["Bearer"][..],
            &["Bearer "],
            &["sekrit-token"],
            &["Basic sekrit-token"],
            &["Bearer sekrit token"],
            &["Bearer sekrit-1", "Bearer sekrit-2"],
        ] {
            let err = bearer(&with(values)).expect_err("malformed");
            let message = format!("{err} {err:?}");
            assert!(matches!(err, AuthError::Unauthenticated(_)), "{values:?}");
            assert!(!message.contains("sekrit"), "{message}");
        }
    }

    #[test]
    fn debug_redacts_the_credential() {
        let debug = format!("{:?}", Credential::Token("sekrit-token"));
        assert!(!debug.contains("sekrit"), "{debug}");
    }
}
