//! Connection and stream options of the JetStream backend.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Default stream name.
pub const DEFAULT_STREAM: &str = "WAYBILL";
/// Default subject prefix: events go to `<prefix>.<project>.<event-type>`.
pub const DEFAULT_SUBJECT_PREFIX: &str = "waybill";
/// Default duplicate window for `Nats-Msg-Id` deduplication.
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Default time to wait for a JetStream acknowledgement.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How to authenticate to NATS. Secrets never appear in `Debug`.
#[derive(Clone, Default)]
pub struct NatsCredentials {
    /// A `.creds` file (JWT + nkey seed).
    pub creds_file: Option<PathBuf>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    /// An nkey seed (`SU...`).
    pub nkey_seed: Option<String>,
}

impl fmt::Debug for NatsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("NatsCredentials")
            .field("creds_file", &self.creds_file)
            .field("user", &self.user)
            .field("password", &redact(&self.password))
            .field("token", &redact(&self.token))
            .field("nkey_seed", &redact(&self.nkey_seed))
            .finish()
    }
}

/// TLS to NATS: a CA to trust, and a client certificate for mutual TLS.
/// Any of them (or a `tls://` URL) makes TLS required.
#[derive(Debug, Clone, Default)]
pub struct NatsTls {
    /// PEM file of the CA(s) that signed the servers' certificates.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and its key, for servers that verify clients.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl NatsTls {
    /// Is any TLS setting given?
    pub fn configured(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some()
    }
}

/// Options of [`super::JetStreamLog`].
#[derive(Debug, Clone)]
pub struct JetStreamOptions {
    /// Server URL(s), comma separated.
    pub url: String,
    pub credentials: NatsCredentials,
    pub tls: NatsTls,
    /// Stream name (`WAYBILL`).
    pub stream: String,
    /// Subject prefix (`waybill`).
    pub subject_prefix: String,
    /// Replicas when the stream is created (1 in tests, 3 in production).
    pub replicas: usize,
    pub duplicate_window: Duration,
    pub request_timeout: Duration,
    /// Accept an existing stream without `deny_delete`/`deny_purge`.
    /// Only for tests that tamper with the log; never in production.
    pub allow_mutable_stream: bool,
    /// Create the stream when it is absent (`waybill serve`). Commands that
    /// only read the log leave this off: a mistyped stream name or server
    /// is then an error instead of a new, empty stream.
    pub create_stream: bool,
}

impl JetStreamOptions {
    /// Defaults for the server at `url`.
    pub fn new(url: impl Into<String>) -> JetStreamOptions {
        JetStreamOptions {
            url: url.into(),
            credentials: NatsCredentials::default(),
            tls: NatsTls::default(),
            stream: DEFAULT_STREAM.to_string(),
            subject_prefix: DEFAULT_SUBJECT_PREFIX.to_string(),
            replicas: 1,
            duplicate_window: DEFAULT_DUPLICATE_WINDOW,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            allow_mutable_stream: false,
            create_stream: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let creds = NatsCredentials {
            user: Some("alice".into()),
            password: Some("hunter2".into()),
            token: Some("s3cr3t-token".into()),
            nkey_seed: Some("SUAKEYSEED".into()),
            creds_file: None,
        };
        let text = format!(
            "{:?}",
            JetStreamOptions {
                credentials: creds,
                ..JetStreamOptions::new("nats://x")
            }
        );
        assert!(text.contains("alice"));
        for secret in ["hunter2", "s3cr3t-token", "SUAKEYSEED"] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
    }
}
