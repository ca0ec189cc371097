//! Who is acting, and how they proved it.

use std::fmt;

use serde::{Deserialize, Serialize};
use waybill_ledger::Actor;

/// Prefix of service principal names (`svc:auto-promoter`).
pub const SERVICE_PREFIX: &str = "svc:";

/// Name of the principal of unauthenticated requests in insecure-dev mode.
pub const ANONYMOUS_NAME: &str = "anonymous";

/// How a principal was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// A bearer token from the tokens file.
    Token,
    /// A verified JWT.
    Jwt,
    /// An in-process service principal (reactors).
    Service,
    /// No credentials, admitted only by `--insecure-dev`.
    Anonymous,
}

impl AuthMethod {
    /// The lowercase name recorded in event envelopes.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Token => "token",
            AuthMethod::Jwt => "jwt",
            AuthMethod::Service => "service",
            AuthMethod::Anonymous => "anonymous",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated identity: every command is attributed to one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Principal {
    /// A user (JWT subject), a token's name, `svc:<name>` or `anonymous`.
    pub name: String,
    /// Groups from the token entry or the JWT's groups claim.
    pub groups: Vec<String>,
    /// How the principal was authenticated.
    pub method: AuthMethod,
}

impl Principal {
    /// The service principal `svc:<name>` that a reactor acts as.
    pub fn service(name: &str) -> Principal {
        Principal {
            name: format!("{SERVICE_PREFIX}{name}"),
            groups: Vec::new(),
            method: AuthMethod::Service,
        }
    }

    /// The anonymous principal of insecure-dev mode. It holds roles only
    /// through an [`super::Authorizer`] that is itself in insecure-dev mode.
    pub fn anonymous() -> Principal {
        Principal {
            name: ANONYMOUS_NAME.to_string(),
            groups: Vec::new(),
            method: AuthMethod::Anonymous,
        }
    }

    /// The service name, when this is a service principal.
    pub fn service_name(&self) -> Option<&str> {
        match self.method {
            AuthMethod::Service => self.name.strip_prefix(SERVICE_PREFIX),
            _ => None,
        }
    }

    /// The actor recorded in the envelope of the events this principal causes.
    pub fn actor(&self) -> Actor {
        Actor {
            principal: self.name.clone(),
            auth_method: self.method.as_str().to_string(),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_principals_match_the_ledger_actor() {
        let p = Principal::service("auto-promoter");
        assert_eq!(p.name, "svc:auto-promoter");
        assert_eq!(p.method, AuthMethod::Service);
        assert_eq!(p.service_name(), Some("auto-promoter"));
        assert_eq!(p.actor(), Actor::service("auto-promoter"));
    }

    #[test]
    fn only_service_principals_have_a_service_name() {
        let p = Principal {
            name: "svc:auto-promoter".into(),
            groups: vec![],
            method: AuthMethod::Jwt,
        };
        assert_eq!(p.service_name(), None);
        assert_eq!(Principal::anonymous().actor().auth_method, "anonymous");
    }
}
