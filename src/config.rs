//! One configuration: defaults, then the config file, then environment
//! variables and flags (clap merges those two). Validated before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;
use waybill_ledger::jetstream::{JetStreamOptions, NatsCredentials};

use crate::cli::LogArgs;

/// Default gRPC listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Default embedded storage directory.
pub const DEFAULT_DATA_DIR: &str = "waybill-data";

/// The config file (`waybill.toml`). Every key mirrors a flag.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    /// Prometheus scrape endpoint (off when absent).
    pub metrics_listen: Option<SocketAddr>,
    /// Requests per second per connection.
    pub rate_limit: Option<u32>,
    /// Read models' page cache, MiB.
    pub cache_mb: Option<u64>,
    /// Records the command service's cached project states keep in memory
    /// (`command_cache_events` is its former name).
    #[serde(alias = "command_cache_events")]
    pub command_cache_records: Option<u64>,
    /// What this process runs: `commands`, `queries`, `reactors`.
    pub roles: Option<Vec<crate::roles::ServeRole>>,
    /// gRPC over TLS: certificate and key (PEM), and for mutual TLS the CA of clients.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
    /// Identity and roles (tokens file, `[jwt]`, `[[binding]]`).
    pub auth_config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    /// A live copy of the log, kept in this directory.
    pub backup_dir: Option<PathBuf>,
    /// Seconds between checks of the auth and TLS files for changes (0: off).
    pub reload_check_secs: Option<u64>,
    #[serde(default)]
    pub nats: NatsFileConfig,
    #[serde(default)]
    pub audit: crate::audit::AuditFileConfig,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsFileConfig {
    pub url: Option<String>,
    pub creds: Option<PathBuf>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    pub nkey: Option<String>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub stream: Option<String>,
    /// Events go to `<subject_prefix>.<project>.<event type>`.
    pub subject_prefix: Option<String>,
    pub replicas: Option<usize>,
    pub duplicate_window_secs: Option<u64>,
    /// At start, seconds to keep trying to reach NATS (`serve` only).
    pub connect_wait_secs: Option<u64>,
}

impl std::fmt::Debug for NatsFileConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("NatsFileConfig")
            .field("url", &self.url)
            .field("creds", &self.creds)
            .field("user", &self.user)
            .field("password", &redact(&self.password))
            .field("token", &redact(&self.token))
            .field("nkey", &redact(&self.nkey))
            .field("ca", &self.ca)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("stream", &self.stream)
            .field("replicas", &self.replicas)
            .field("duplicate_window_secs", &self.duplicate_window_secs)
            .field("connect_wait_secs", &self.connect_wait_secs)
            .finish()
    }
}

impl FileConfig {
    /// Reads `path`, or returns the defaults when there is none.
    pub fn load(path: Option<&Path>) -> anyhow::Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }
}

/// Which backend to open.
#[derive(Debug, Clone)]
pub enum LogConfig {
    Embedded { data_dir: PathBuf },
    JetStream(Box<JetStreamOptions>),
}

/// Merges flags/env over the file and validates the result.
pub fn log_config(args: &LogArgs, file: &FileConfig) -> anyhow::Result<LogConfig> {
    let n = &file.nats;
    let url = args.nats.clone().or_else(|| n.url.clone());
    let Some(url) = url else {
        let data_dir = args
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        return Ok(LogConfig::Embedded { data_dir });
    };
    let mut opts = JetStreamOptions::new(url);
    opts.credentials = NatsCredentials {
        creds_file: args.nats_creds.clone().or_else(|| n.creds.clone()),
        user: args.nats_user.clone().or_else(|| n.user.clone()),
        password: args.nats_password.clone().or_else(|| n.password.clone()),
        token: args.nats_token.clone().or_else(|| n.token.clone()),
        nkey_seed: args.nats_nkey.clone().or_else(|| n.nkey.clone()),
    };
    opts.tls = waybill_ledger::jetstream::NatsTls {
        ca_file: args.nats_ca.clone().or_else(|| n.ca.clone()),
        cert_file: args.nats_cert.clone().or_else(|| n.cert.clone()),
        key_file: args.nats_key.clone().or_else(|| n.key.clone()),
    };
    if opts.tls.cert_file.is_some() != opts.tls.key_file.is_some() {
        bail!("--nats-cert and --nats-key go together");
    }
    if opts.credentials.user.is_some() != opts.credentials.password.is_some() {
        bail!("--nats-user and --nats-password go together");
    }
    let c = &opts.credentials;
    if c.creds_file.is_some() && (c.user.is_some() || c.token.is_some() || c.nkey_seed.is_some()) {
        bail!("--nats-creds cannot be combined with --nats-user, --nats-token or --nats-nkey: give one way to authenticate to NATS");
    }
    if let Some(stream) = args.stream.clone().or_else(|| n.stream.clone()) {
        if stream.is_empty()
            || !stream
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!("invalid stream name {stream:?}: use letters, digits, '-' and '_'");
        }
        opts.stream = stream;
    }
    if let Some(prefix) = args
        .subject_prefix
        .clone()
        .or_else(|| n.subject_prefix.clone())
    {
        let token_ok = |t: &str| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !prefix.split('.').all(token_ok) {
            bail!(
                "invalid subject prefix {prefix:?}: use dot-separated tokens of letters, \
                 digits, '-' and '_' (e.g. waybill or acme.waybill)"
            );
        }
        opts.subject_prefix = prefix;
    }
    if let Some(r) = args.replicas.or(n.replicas) {
        if !(1..=5).contains(&r) {
            bail!("replicas must be 1 to 5, not {r}");
        }
        opts.replicas = r;
    }
    if let Some(secs) = args.duplicate_window_secs.or(n.duplicate_window_secs) {
        if secs == 0 {
            bail!("the duplicate window must be at least one second");
        }
        opts.duplicate_window = Duration::from_secs(secs);
    }
    // Warned about where the stream is opened (`open.rs`): this is also
    // called only to check the settings.
    opts.allow_mutable_stream = args.unsafe_allow_mutable_stream;
    Ok(LogConfig::JetStream(Box::new(opts)))
}

/// The data directory: embedded log and projections.
pub fn data_dir(args: &LogArgs, file: &FileConfig) -> PathBuf {
    args.data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}

/// The gRPC listen address.
pub fn listen_addr(flag: Option<SocketAddr>, file: &FileConfig) -> anyhow::Result<SocketAddr> {
    match flag.or(file.listen) {
        Some(addr) => Ok(addr),
        None => Ok(DEFAULT_LISTEN.parse()?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_embedded_storage() {
        let cfg = log_config(&LogArgs::default(), &FileConfig::default()).expect("config");
        assert!(
            matches!(cfg, LogConfig::Embedded { data_dir } if data_dir == Path::new("waybill-data"))
        );
    }

    #[test]
    fn flags_override_the_file() {
        let file: FileConfig = toml::from_str(
            "data_dir = \"/from-file\"\n[nats]\nurl = \"nats://file:4222\"\nreplicas = 3\n",
        )
        .expect("parse");
        let args = LogArgs {
            nats: Some("nats://flag:4222".into()),
            ..LogArgs::default()
        };
        match log_config(&args, &file).expect("config") {
            LogConfig::JetStream(o) => {
                assert_eq!(o.url, "nats://flag:4222");
                assert_eq!(o.replicas, 3);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<FileConfig>("colour = \"blue\"").is_err());
        let file: FileConfig =
            toml::from_str("[nats]\nurl = \"nats://x\"\nreplicas = 9\n").expect("parse");
        assert!(log_config(&LogArgs::default(), &file).is_err());
    }

    #[test]
    fn the_command_cache_keeps_its_former_key() {
        for key in ["command_cache_records", "command_cache_events"] {
            let file: FileConfig = toml::from_str(&format!("{key} = 42\n")).expect(key);
            assert_eq!(file.command_cache_records, Some(42), "{key}");
        }
    }

    #[test]
    fn secrets_are_redacted() {
        let file: FileConfig = toml::from_str(
            "[nats]\nurl = \"nats://x\"\npassword = \"hunter2\"\ntoken = \"tok-123\"\n",
        )
        .expect("parse");
        let text = format!("{file:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("tok-123"),
            "{text}"
        );
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    #[test]
    fn the_shipped_example_config_is_valid() {
        let text = include_str!("../deploy/waybill.example.toml");
        let file: FileConfig = toml::from_str(text).expect("deploy/waybill.example.toml parses");
        assert_eq!(file.listen, Some(DEFAULT_LISTEN.parse().expect("addr")));
        assert_eq!(file.cache_mb, Some(crate::serve::DEFAULT_CACHE_MB));
        assert_eq!(
            file.command_cache_records,
            Some(waybill_commands::handler::DEFAULT_CACHE_RECORDS)
        );
        let roles = crate::roles::Roles::chosen(&[], file.roles.as_deref(), false).expect("roles");
        assert_eq!(roles, crate::roles::Roles::ALL);
        assert!(matches!(
            log_config(&LogArgs::default(), &file).expect("valid"),
            LogConfig::Embedded { .. }
        ));
        // With the commented NATS section enabled it is valid too.
        let enabled: String = text
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| r.starts_with('[') || r.contains(" = "))
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let file: FileConfig = toml::from_str(&enabled).expect("enabled example parses");
        match log_config(&LogArgs::default(), &file).expect("valid") {
            LogConfig::JetStream(o) => assert_eq!(o.replicas, 3),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_shipped_cluster_config_is_valid() {
        let text = include_str!("../deploy/waybill.cluster.toml");
        let file: FileConfig = toml::from_str(text).expect("deploy/waybill.cluster.toml parses");
        assert!(file.metrics_listen.is_some());
        assert!(file.audit.signing_key.is_some());
        match log_config(&LogArgs::default(), &file).expect("valid") {
            LogConfig::JetStream(o) => {
                assert_eq!(o.replicas, 3);
                assert!(o.tls.ca_file.is_some() && o.tls.cert_file.is_some());
                assert!(o.url.starts_with("tls://"));
            }
            other => panic!("{other:?}"),
        }
    }
}
