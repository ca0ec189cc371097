//! Who is acting, and how they proved it.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use waybill_ledger::Actor;

use super::config::BindingConfig;

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
    /// The role bindings in force when the credentials were checked.
    #[serde(skip)]
    pub(crate) grants: Grants,
}

/// The role bindings that were in force, with the credentials, when a
/// principal was authenticated. Its roles are judged against these, so a
/// request never mixes the credentials of one auth configuration with the
/// bindings of the next one that a reload put in force meanwhile. Empty for
/// principals not made by an [`super::Authenticator`] (services, tests): they
/// are judged against the bindings in force. Not part of a principal's
/// identity: equality and hashing ignore it.
#[derive(Clone, Default)]
pub(crate) struct Grants(Option<Arc<Vec<BindingConfig>>>);

impl Grants {
    pub(crate) fn new(bindings: Arc<Vec<BindingConfig>>) -> Grants {
        Grants(Some(bindings))
    }

    pub(crate) fn bindings(&self) -> Option<&Arc<Vec<BindingConfig>>> {
        self.0.as_ref()
    }
}

impl fmt::Debug for Grants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(bindings) => write!(f, "Grants({} bindings)", bindings.len()),
            None => f.write_str("Grants(in force)"),
        }
    }
}

impl PartialEq for Grants {
    fn eq(&self, _: &Grants) -> bool {
        true
    }
}

impl Eq for Grants {}

impl Hash for Grants {
    fn hash<H: Hasher>(&self, _: &mut H) {}
}

impl Principal {
    /// A principal as credentials name it; its roles are judged against the
    /// bindings in force.
    pub fn new(name: impl Into<String>, groups: Vec<String>, method: AuthMethod) -> Principal {
        Principal {
            name: name.into(),
            groups,
            method,
            grants: Grants::default(),
        }
    }

    /// The service principal `svc:<name>` that a reactor acts as.
    pub fn service(name: &str) -> Principal {
        Principal::new(
            format!("{SERVICE_PREFIX}{name}"),
            Vec::new(),
            AuthMethod::Service,
        )
    }

    /// The anonymous principal of insecure-dev mode. It holds roles only
    /// through an [`super::Authorizer`] that is itself in insecure-dev mode.
    pub fn anonymous() -> Principal {
        Principal::new(
            ANONYMOUS_NAME.to_string(),
            Vec::new(),
            AuthMethod::Anonymous,
        )
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
        let p = Principal::new("svc:auto-promoter", vec![], AuthMethod::Jwt);
        assert_eq!(p.service_name(), None);
        assert_eq!(Principal::anonymous().actor().auth_method, "anonymous");
    }
}
