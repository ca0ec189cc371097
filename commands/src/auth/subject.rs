//! Who a role binding applies to: `user:<name>`, `group:<g>`, `service:<n>` or `*`.

use std::fmt;

use serde::Deserialize;

use super::{AuthMethod, Principal, SERVICE_PREFIX};

/// The subject of a role binding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum Subject {
    /// `user:<name>`: a token or JWT principal with exactly this name.
    User(String),
    /// `group:<g>`: any token or JWT principal in this group.
    Group(String),
    /// `service:<n>`: the in-process service principal `svc:<n>`.
    Service(String),
    /// `*`: anyone authenticated (never the insecure-dev anonymous principal).
    Anyone,
}

impl Subject {
    /// Whether `principal` is this subject.
    pub fn matches(&self, principal: &Principal) -> bool {
        let authenticated = matches!(principal.method, AuthMethod::Token | AuthMethod::Jwt);
        match self {
            Subject::User(name) => authenticated && principal.name == *name,
            Subject::Group(group) => authenticated && principal.groups.iter().any(|g| g == group),
            Subject::Service(name) => principal.service_name() == Some(name.as_str()),
            Subject::Anyone => principal.method != AuthMethod::Anonymous,
        }
    }
}

impl TryFrom<String> for Subject {
    type Error = String;

    fn try_from(value: String) -> Result<Subject, String> {
        value.parse()
    }
}

impl std::str::FromStr for Subject {
    type Err = String;

    fn from_str(value: &str) -> Result<Subject, String> {
        if value == "*" {
            return Ok(Subject::Anyone);
        }
        let (kind, name) = value.split_once(':').ok_or_else(|| {
            format!(
                "subject {value:?} must be `user:<name>`, `group:<name>`, `service:<name>` or `*`"
            )
        })?;
        if name.is_empty() || name.trim() != name {
            return Err(format!("subject {value:?} has an empty or padded name"));
        }
        match kind {
            "user" if name.starts_with(SERVICE_PREFIX) => Err(format!(
                "subject {value:?}: names starting with {SERVICE_PREFIX:?} are service \
                 principals, write `service:<name>`"
            )),
            "user" => Ok(Subject::User(name.to_string())),
            "group" => Ok(Subject::Group(name.to_string())),
            "service" => Ok(Subject::Service(name.to_string())),
            _ => Err(format!(
                "subject {value:?} has unknown kind {kind:?} (expected user, group or service)"
            )),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::User(name) => write!(f, "user:{name}"),
            Subject::Group(group) => write!(f, "group:{group}"),
            Subject::Service(name) => write!(f, "service:{name}"),
            Subject::Anyone => f.write_str("*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(name: &str, groups: &[&str]) -> Principal {
        Principal::new(
            name,
            groups.iter().map(|g| g.to_string()).collect(),
            AuthMethod::Jwt,
        )
    }

    #[test]
    fn parses_every_kind() {
        for (text, subject) in [
            ("user:alice", Subject::User("alice".into())),
            (
                "group:release-managers",
                Subject::Group("release-managers".into()),
            ),
            (
                "service:auto-promoter",
                Subject::Service("auto-promoter".into()),
            ),
            ("*", Subject::Anyone),
        ] {
            assert_eq!(text.parse::<Subject>(), Ok(subject.clone()));
            assert_eq!(subject.to_string(), text);
        }
        for bad in ["alice", "user:", "team:x", "user: alice", "user:svc:x", ""] {
            assert!(bad.parse::<Subject>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn matching() {
        let alice = jwt("alice", &["release-managers"]);
        let svc = Principal::service("auto-promoter");
        let impostor = jwt("svc:auto-promoter", &[]);
        let anon = Principal::anonymous();

        assert!(Subject::User("alice".into()).matches(&alice));
        assert!(!Subject::User("bob".into()).matches(&alice));
        assert!(Subject::Group("release-managers".into()).matches(&alice));
        assert!(!Subject::Group("ops".into()).matches(&alice));
        assert!(Subject::Service("auto-promoter".into()).matches(&svc));
        assert!(!Subject::Service("auto-promoter".into()).matches(&impostor));
        assert!(!Subject::User("anonymous".into()).matches(&anon));
        assert!(Subject::Anyone.matches(&alice));
        assert!(Subject::Anyone.matches(&svc));
        assert!(!Subject::Anyone.matches(&anon));
    }
}
