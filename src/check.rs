//! `waybill serve --check`: reads and checks everything `serve` would start
//! with (config file, flags and environment, TLS files, auth config, signing
//! key, backup directory, NATS credential files) and prints what it found,
//! without binding a port, connecting to NATS or writing anything. Run it
//! before a restart or a SIGHUP, or in the CI of the repository that holds
//! the configuration.

use std::path::Path;

use anyhow::Context;

use crate::cli::ServeArgs;
use crate::config::{data_dir, listen_addr, log_config, FileConfig, LogConfig};
use crate::roles::Roles;
use crate::serve;

pub fn run(args: &ServeArgs, file: &FileConfig) -> anyhow::Result<()> {
    let addr = listen_addr(args.listen, file)?;
    let tls = serve::server_tls(args, file)?;
    let roles = Roles::chosen(&args.roles, file.roles.as_deref(), args.no_reactors)?;
    let cache_records = serve::command_cache_records(args, file)?;
    let backup = serve::backup_dir(args, file)?;
    let auth = serve::authenticator(args)?;
    let log = log_config(&args.log, file)?;
    let data = data_dir(&args.log, file);
    let checkpoints =
        crate::audit::describe_checkpoints(&args.audit, &file.audit, &data, roles.queries)?;

    let mut lines = vec![("listen", addr.to_string())];
    lines[0].1 += &match (
        &tls,
        args.tls_client_ca.is_some() || file.tls_client_ca.is_some(),
    ) {
        (None, _) => ", plaintext".to_string(),
        (Some(tls), false) => format!(
            ", TLS with {} (valid until {})",
            tls.cert_path().display(),
            crate::tls::utc(tls.expires())
        ),
        (Some(tls), true) => format!(
            ", TLS with {} (valid until {}), client certificates required",
            tls.cert_path().display(),
            crate::tls::utc(tls.expires())
        ),
    };
    lines.push(("log", describe_log(&log)?));
    if matches!(log, LogConfig::JetStream(_)) {
        let wait = args
            .nats_connect_wait
            .or(file.nats.connect_wait_secs)
            .unwrap_or(0);
        lines.push((
            "nats at start",
            match wait {
                0 => "give up at once if NATS cannot be reached".to_string(),
                secs => format!("keep trying to reach NATS for up to {secs} s"),
            },
        ));
        // Read models, the Merkle tree, the command state.
        lines.push(("data dir", data.display().to_string()));
    }
    lines.push(("roles", roles.to_string()));
    lines.push((
        "auth",
        match &args.auth_config {
            Some(path) => format!("{}: {}", path.display(), auth.describe()),
            None => auth.describe(),
        },
    ));
    lines.push(("checkpoints", checkpoints));
    if args.auth_config.is_some() || tls.is_some() {
        lines.push((
            "reload",
            match serve::reload_check(args, file) {
                Some(every) => format!(
                    "on SIGHUP, and within {} s of a change to the auth or TLS files",
                    every.as_secs()
                ),
                None => "on SIGHUP".to_string(),
            },
        ));
    }
    if roles.commands || roles.reactors {
        lines.push((
            "command cache",
            format!("{cache_records} records in memory"),
        ));
    }
    lines.push((
        "backup",
        backup.map_or("none".to_string(), |d| d.display().to_string()),
    ));
    lines.push((
        "metrics",
        args.metrics_listen
            .or(file.metrics_listen)
            .map_or("off".to_string(), |a| a.to_string()),
    ));
    outln!("configuration OK");
    for (what, value) in lines {
        outln!("  {:<16}{value}", format!("{what}:"));
    }
    Ok(())
}

/// The log `serve` would open; the NATS credential and TLS files must be
/// readable.
fn describe_log(log: &LogConfig) -> anyhow::Result<String> {
    let opts = match log {
        LogConfig::Embedded { data_dir } => {
            return Ok(format!("embedded, in {}", data_dir.display()));
        }
        LogConfig::JetStream(opts) => opts,
    };
    let files = [
        ("--nats-creds", &opts.credentials.creds_file),
        ("--nats-ca", &opts.tls.ca_file),
        ("--nats-cert", &opts.tls.cert_file),
        ("--nats-key", &opts.tls.key_file),
    ];
    for (flag, path) in files {
        if let Some(path) = path {
            readable(path).with_context(|| format!("{flag} {}", path.display()))?;
        }
    }
    if let Some(creds) = &opts.credentials.creds_file {
        waybill_ledger::jetstream::check_creds_file(creds)?;
    }
    let urls: Vec<String> = opts.url.split(',').map(without_userinfo).collect();
    Ok(format!(
        "NATS JetStream at {}, stream {}, subjects {}.>, {} replica{}",
        urls.join(","),
        opts.stream,
        opts.subject_prefix,
        opts.replicas,
        if opts.replicas == 1 { "" } else { "s" }
    ))
}

fn readable(path: &Path) -> anyhow::Result<()> {
    std::fs::File::open(path).context("cannot read the file")?;
    Ok(())
}

/// A NATS URL without the user and password it may carry.
fn without_userinfo(url: &str) -> String {
    let url = url.trim();
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::without_userinfo;

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            without_userinfo("nats://alice:s3cret@nats-1:4222"),
            "nats://***@nats-1:4222"
        );
        assert_eq!(without_userinfo(" tls://nats-1:4222"), "tls://nats-1:4222");
        assert_eq!(without_userinfo("nats-1:4222"), "nats-1:4222");
    }
}
