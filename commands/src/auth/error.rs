//! The auth error type and its single mapping to gRPC status codes.

use super::Role;

/// Why a request was not let through.
///
/// No message ever contains the credential that was presented: they say what
/// is wrong with it, never what it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential, or a malformed, unknown, expired or otherwise invalid one:
    /// the caller must (re-)authenticate.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The principal is known but lacks the role: someone must grant it.
    #[error(
        "{principal} lacks the {role} role for {}{}",
        scope(project),
        stage_suffix(stage)
    )]
    PermissionDenied {
        /// Name of the principal that was refused.
        principal: String,
        /// The role the operation needs.
        role: Role,
        /// The project the operation is about.
        project: String,
        /// The stage the operation is about, if any.
        stage: Option<String>,
    },
    /// The auth configuration (or a file it names) is unusable; the message says
    /// which file and what is wrong.
    #[error("auth configuration: {0}")]
    Config(String),
}

/// `project P`, or, for calls about the whole log (checkpoints, proofs),
/// every project.
fn scope(project: &str) -> String {
    match project {
        "" => "every project (the whole log)".to_string(),
        p => format!("project {p}"),
    }
}

fn stage_suffix(stage: &Option<String>) -> String {
    match stage {
        Some(stage) => format!(" stage {stage}"),
        None => String::new(),
    }
}

impl AuthError {
    pub(crate) fn unauthenticated(reason: impl Into<String>) -> AuthError {
        AuthError::Unauthenticated(reason.into())
    }

    pub(crate) fn config(reason: impl Into<String>) -> AuthError {
        AuthError::Config(reason.into())
    }
}

impl From<AuthError> for tonic::Status {
    fn from(err: AuthError) -> tonic::Status {
        match err {
            // The status code says "unauthenticated" already.
            AuthError::Unauthenticated(reason) => tonic::Status::unauthenticated(reason),
            AuthError::PermissionDenied { .. } => tonic::Status::permission_denied(err.to_string()),
            AuthError::Config(_) => {
                // Configuration details (file paths) are for operators, not clients.
                tracing::error!(error = %err, "auth is misconfigured");
                tonic::Status::internal("authentication is misconfigured on the server")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_to_grpc_codes() {
        let status = tonic::Status::from(AuthError::unauthenticated("no credentials"));
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert!(status.message().contains("no credentials"));

        let denied = AuthError::PermissionDenied {
            principal: "alice".into(),
            role: Role::Approver,
            project: "shop".into(),
            stage: Some("prod".into()),
        };
        assert_eq!(
            denied.to_string(),
            "alice lacks the approver role for project shop stage prod"
        );
        assert_eq!(
            tonic::Status::from(denied).code(),
            tonic::Code::PermissionDenied
        );
        let whole_log = AuthError::PermissionDenied {
            principal: "bob".into(),
            role: Role::Viewer,
            project: String::new(),
            stage: None,
        };
        assert_eq!(
            whole_log.to_string(),
            "bob lacks the viewer role for every project (the whole log)"
        );
        assert_eq!(
            tonic::Status::from(AuthError::unauthenticated("no credentials")).message(),
            "no credentials"
        );

        let status = tonic::Status::from(AuthError::config("/etc/waybill/auth.toml: broken"));
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(!status.message().contains("/etc/waybill"));
    }
}
