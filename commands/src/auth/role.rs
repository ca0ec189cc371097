//! Roles a principal can hold on a project or stage.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a principal may do.
///
/// [`Role::Admin`] implies every role and every role implies [`Role::Viewer`];
/// the others are independent (an approver is not a promoter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read state, history and audit data.
    Viewer,
    /// Request promotions.
    Promoter,
    /// Approve freight or promotions for a stage.
    Approver,
    /// Emergency bypass: approve directly, skipping the upstream chain and freezes.
    Bypass,
    /// Everything, including configuring pipelines.
    Admin,
}

impl Role {
    /// Every role, weakest first.
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Promoter,
        Role::Approver,
        Role::Bypass,
        Role::Admin,
    ];

    /// The lowercase name used in configuration and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Promoter => "promoter",
            Role::Approver => "approver",
            Role::Bypass => "bypass",
            Role::Admin => "admin",
        }
    }

    /// Whether holding `self` grants `wanted`.
    pub fn implies(self, wanted: Role) -> bool {
        self == wanted || self == Role::Admin || wanted == Role::Viewer
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {input:?} (expected viewer, promoter, approver, bypass or admin)")]
pub struct ParseRoleError {
    /// What was given.
    pub input: String,
}

impl FromStr for Role {
    type Err = ParseRoleError;

    fn from_str(s: &str) -> Result<Role, ParseRoleError> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| ParseRoleError {
                input: s.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implication_table() {
        use Role::*;
        // (held, wanted, granted)
        let table = [
            (Admin, Viewer, true),
            (Admin, Promoter, true),
            (Admin, Approver, true),
            (Admin, Bypass, true),
            (Admin, Admin, true),
            (Promoter, Viewer, true),
            (Approver, Viewer, true),
            (Bypass, Viewer, true),
            (Approver, Promoter, false),
            (Promoter, Approver, false),
            (Bypass, Approver, false),
            (Bypass, Promoter, false),
            (Approver, Bypass, false),
            (Viewer, Promoter, false),
            (Promoter, Admin, false),
            (Bypass, Admin, false),
        ];
        for (held, wanted, granted) in table {
            assert_eq!(held.implies(wanted), granted, "{held} implies {wanted}");
        }
    }

    #[test]
    fn parses_and_prints_lowercase() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(role.to_string(), role.as_str());
        }
        let err = "Admin".parse::<Role>().expect_err("roles are lowercase");
        assert!(err.to_string().contains("\"Admin\""));
    }
}
