//! Connecting, checking the server version, and creating or validating the stream.

use async_nats::jetstream::{self, stream};

use super::options::JetStreamOptions;
use crate::error::LedgerError;

/// The oldest nats-server with subject-filtered optimistic concurrency.
const MIN_SERVER: (u64, u64) = (2, 11);

pub(crate) async fn connect(opts: &JetStreamOptions) -> Result<async_nats::Client, LedgerError> {
    let c = &opts.credentials;
    let connect = match &c.creds_file {
        Some(path) => {
            if c.user.is_some() || c.token.is_some() || c.nkey_seed.is_some() {
                return Err(LedgerError::Misconfigured(
                    "a NATS credentials file cannot be combined with a NATS user, token or \
                     nkey: give one way to authenticate"
                        .into(),
                ));
            }
            super::creds::options(path).await?
        }
        None => async_nats::ConnectOptions::new(),
    };
    let mut connect = connect
        .name("waybill")
        .request_timeout(Some(opts.request_timeout))
        .connection_timeout(opts.request_timeout);
    if let (Some(user), Some(password)) = (&c.user, &c.password) {
        connect = connect.user_and_password(user.clone(), password.clone());
    }
    if let Some(token) = &c.token {
        connect = connect.token(token.clone());
    }
    if let Some(seed) = &c.nkey_seed {
        connect = connect.nkey(seed.clone());
    }
    let tls = &opts.tls;
    if tls.configured() || opts.url.split(',').any(|u| u.trim().starts_with("tls://")) {
        connect = connect.require_tls(true);
    }
    if let Some(ca) = &tls.ca_file {
        if !ca.is_file() {
            return Err(LedgerError::Misconfigured(format!(
                "the NATS CA file {} does not exist",
                ca.display()
            )));
        }
        connect = connect.add_root_certificates(ca.clone());
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            for f in [cert, key] {
                if !f.is_file() {
                    return Err(LedgerError::Misconfigured(format!(
                        "the NATS TLS file {} does not exist",
                        f.display()
                    )));
                }
            }
            connect = connect.add_client_certificate(cert.clone(), key.clone());
        }
        (None, None) => {}
        _ => {
            return Err(LedgerError::Misconfigured(
                "a NATS client certificate needs both --nats-cert and --nats-key".into(),
            ))
        }
    }
    let urls: Vec<&str> = opts
        .url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    let client = connect.connect(urls).await.map_err(|e| {
        LedgerError::Unavailable(format!("cannot connect to NATS at {}: {e}", opts.url))
    })?;
    check_version(&client.server_info().version)?;
    Ok(client)
}

/// Refuses servers older than 2.11.
pub fn check_version(version: &str) -> Result<(), LedgerError> {
    let mut parts = version
        .trim_start_matches('v')
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    if (major, minor) < MIN_SERVER {
        return Err(LedgerError::Misconfigured(format!(
            "nats-server {version} is too old: Waybill needs 2.11 or newer for \
             subject-filtered optimistic concurrency (2.12.3+ with \
             `jetstream {{ sync_interval: always }}` recommended); upgrade the server"
        )));
    }
    Ok(())
}

pub(crate) fn stream_config(opts: &JetStreamOptions) -> stream::Config {
    stream::Config {
        name: opts.stream.clone(),
        description: Some("Waybill promotion ledger (append-only, hash-chained)".into()),
        subjects: vec![format!("{}.>", opts.subject_prefix)],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        num_replicas: opts.replicas,
        duplicate_window: opts.duplicate_window,
        deny_delete: true,
        deny_purge: true,
        allow_rollup: false,
        allow_direct: true,
        max_messages: -1,
        max_bytes: -1,
        max_messages_per_subject: -1,
        max_consumers: -1,
        ..Default::default()
    }
}

/// How long setup keeps retrying a JetStream that does not answer yet (a
/// cluster that has just started elects its meta leader and places a new
/// R3 stream's replicas within seconds).
const SETUP_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// Creates the stream, or checks that the existing one is safe to use;
/// retries (for [`SETUP_PATIENCE`]) while JetStream is unavailable.
pub(crate) async fn ensure_stream(
    js: &jetstream::Context,
    opts: &JetStreamOptions,
) -> Result<stream::Stream, LedgerError> {
    let deadline = tokio::time::Instant::now() + SETUP_PATIENCE;
    let mut pause = std::time::Duration::from_millis(250);
    loop {
        match get_or_create(js, opts).await {
            Err(LedgerError::Unavailable(why))
                if tokio::time::Instant::now() + pause < deadline =>
            {
                tracing::warn!(stream = %opts.stream, error = %why, "JetStream not ready; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

async fn get_or_create(
    js: &jetstream::Context,
    opts: &JetStreamOptions,
) -> Result<stream::Stream, LedgerError> {
    match js.get_stream(&opts.stream).await {
        Ok(mut s) => {
            let info = s
                .info()
                .await
                .map_err(|e| LedgerError::Unavailable(format!("stream info: {e}")))?;
            validate(&info.config, opts)?;
            if info.config.num_replicas < opts.replicas {
                tracing::warn!(
                    stream = %opts.stream,
                    replicas = info.config.num_replicas,
                    wanted = opts.replicas,
                    "the stream has fewer replicas than --replicas asks for; Waybill does not \
                     change an existing stream: raise them with `nats stream edit {} --replicas \
                     {}`, or an acknowledged event is on fewer servers than you expect",
                    opts.stream,
                    opts.replicas
                );
            }
            Ok(s)
        }
        Err(e) => match e.kind() {
            jetstream::context::GetStreamErrorKind::JetStream(err)
                if err.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                if opts.create_stream {
                    create(js, opts).await
                } else {
                    Err(LedgerError::Misconfigured(format!(
                        "there is no stream {} on {}: nothing to read (check --nats and \
                         --stream; `waybill serve` creates the stream)",
                        opts.stream, opts.url
                    )))
                }
            }
            _ => Err(classify_get_error(e, opts)),
        },
    }
}

async fn create(
    js: &jetstream::Context,
    opts: &JetStreamOptions,
) -> Result<stream::Stream, LedgerError> {
    let config = stream_config(opts);
    tracing::info!(stream = %opts.stream, replicas = opts.replicas, "creating stream");
    js.create_stream(config)
        .await
        .map_err(|e| classify_create_error(e, opts))
}

/// A refusal that waiting will not change is a misconfiguration, said at
/// once; the rest (a cluster still electing or placing) is retried.
fn classify_create_error(
    e: jetstream::context::CreateStreamError,
    opts: &JetStreamOptions,
) -> LedgerError {
    use jetstream::ErrorCode;
    let name = &opts.stream;
    let code = match e.kind() {
        jetstream::context::CreateStreamErrorKind::JetStream(err) => Some(err.error_code()),
        _ => None,
    };
    let why = match code {
        Some(ErrorCode::STREAM_SUBJECT_OVERLAP) => format!(
            "its subjects {}.> overlap with another stream's on {}: a NATS account holds one \
             Waybill ledger; if that stream is Waybill's, give its name with --stream",
            opts.subject_prefix, opts.url
        ),
        Some(ErrorCode::STREAM_REPLICAS_NOT_SUPPORTED) => format!(
            "{} replicas need a clustered NATS; this server is not clustered (use --replicas 1)",
            opts.replicas
        ),
        Some(
            ErrorCode::ACCOUNT_RESOURCES_EXCEEDED
            | ErrorCode::STORAGE_RESOURCES_EXCEEDED
            | ErrorCode::STREAM_NAME_EXIST,
        ) => e.to_string(),
        _ => return LedgerError::Unavailable(format!("cannot create stream {name}: {e}")),
    };
    LedgerError::Misconfigured(format!("cannot create stream {name}: {why}"))
}

fn classify_get_error(
    e: jetstream::context::GetStreamError,
    opts: &JetStreamOptions,
) -> LedgerError {
    let text = e.to_string();
    if text.contains("not enabled") || text.contains("10039") {
        LedgerError::Misconfigured(format!(
            "JetStream is not enabled on the NATS server at {}: start nats-server with -js \
             (or `jetstream {{}}` in its config)",
            opts.url
        ))
    } else {
        LedgerError::Unavailable(format!("cannot look up stream {}: {text}", opts.stream))
    }
}

/// Checks an existing stream's configuration.
pub(crate) fn validate(
    config: &stream::Config,
    opts: &JetStreamOptions,
) -> Result<(), LedgerError> {
    let problems = problems(config, opts);
    if problems.is_empty() {
        return Ok(());
    }
    Err(LedgerError::Misconfigured(format!(
        "the existing stream {} is not safe for an immutable ledger: {}. \
         Create it anew with deny_delete, deny_purge, file storage and no limits \
         (Waybill creates it that way when it is absent), or point --stream at a new name",
        opts.stream,
        problems.join("; ")
    )))
}

/// What makes a stream's configuration unsafe for the ledger (nothing: safe).
pub(crate) fn problems(config: &stream::Config, opts: &JetStreamOptions) -> Vec<String> {
    let mut problems = Vec::new();
    let wanted = format!("{}.>", opts.subject_prefix);
    if !config.subjects.contains(&wanted) {
        problems.push(format!(
            "its subjects {:?} do not include {wanted:?}",
            config.subjects
        ));
    }
    if config.storage != stream::StorageType::File {
        problems.push("it uses memory storage, not file storage".to_string());
    }
    if config.retention != stream::RetentionPolicy::Limits {
        problems.push("its retention is not `limits` (events would be removed)".to_string());
    }
    if !opts.allow_mutable_stream {
        if !config.deny_delete {
            problems.push("it allows deleting messages (deny_delete is off)".to_string());
        }
        if !config.deny_purge {
            problems.push("it allows purging (deny_purge is off)".to_string());
        }
    }
    if config.allow_rollup {
        problems.push("it allows rollups, which erase history".to_string());
    }
    if !config.max_age.is_zero() || config.max_bytes > 0 || config.max_messages > 0 {
        problems.push("it has an age, size or count limit that would discard events".to_string());
    }
    if config.max_messages_per_subject > 0 {
        problems.push("it keeps only a few messages per subject".to_string());
    }
    problems
}
