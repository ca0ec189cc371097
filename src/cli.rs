//! Command-line interface: flags mirror the config file and `WAYBILL_*` variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Waybill: an event-sourced promotion ledger.
#[derive(Debug, Parser)]
#[command(name = "waybill", version, about)]
pub struct Cli {
    /// Config file (TOML); flags and environment variables override it.
    #[arg(
        long,
        global = true,
        env = "WAYBILL_CONFIG",
        help_heading = "Global options"
    )]
    pub config: Option<PathBuf>,

    /// How log lines on stderr are written: `text` (coloured on a terminal)
    /// or `json` (one object per line, for log collectors).
    #[arg(
        long,
        global = true,
        env = "WAYBILL_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        help_heading = "Global options"
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the log and serve gRPC: commands, queries, health, reflection.
    Serve(Box<ServeArgs>),
    /// Walk the log and check every project's hash chain.
    Verify(VerifyArgs),
    /// Write raw records as JSON lines (for auditors' own tools).
    Dump(DumpArgs),
    /// Copy the whole log into another one, record for record (embedded to
    /// JetStream, or JetStream into a data directory as a backup); resumes.
    Copy(Box<crate::copy::CopyArgs>),
    /// Create an Ed25519 key for signing checkpoints and exports.
    Keygen(crate::audit::keys::KeygenArgs),
    /// Take a compliance export of a project from the server into a directory.
    Export(crate::audit::export::ExportArgs),
    /// Check an export offline: signatures, digests, chain, inclusion, completeness.
    VerifyExport(crate::audit::verify_export::VerifyExportArgs),
    /// Show the server's signed checkpoint (and check it with --pubkey).
    Checkpoint(crate::audit::prove::CheckpointArgs),
    /// Check that a record is in the signed log, or that an older tree is a prefix of it.
    Prove(crate::audit::prove::ProveArgs),
    #[command(flatten)]
    Client(crate::client::ClientCommand),
    #[command(flatten)]
    Query(crate::client::QueryCommand),
    /// Build the read models from the log.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// Bearer tokens for the tokens file.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Measure Waybill against raw JetStream.
    Bench(crate::bench::BenchArgs),
    /// Print a shell completion script (e.g. `waybill completions bash >
    /// /etc/bash_completion.d/waybill`, or `source <(waybill completions zsh)`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Internal helpers for tests.
    #[command(hide = true)]
    Debug(crate::debug::DebugArgs),
}

/// Where the log lives.
#[derive(Debug, Clone, Default, Args)]
pub struct LogArgs {
    /// Embedded storage directory (used when no NATS URL is given) [default: ./waybill-data].
    #[arg(long, env = "WAYBILL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// NATS server URL(s), comma separated; selects the JetStream backend.
    #[arg(long, env = "WAYBILL_NATS_URL")]
    pub nats: Option<String>,
    /// NATS credentials file.
    #[arg(long, env = "WAYBILL_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// NATS user (with --nats-password).
    #[arg(long, env = "WAYBILL_NATS_USER")]
    pub nats_user: Option<String>,
    /// NATS password.
    #[arg(long, env = "WAYBILL_NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,
    /// NATS token.
    #[arg(long, env = "WAYBILL_NATS_TOKEN", hide_env_values = true)]
    pub nats_token: Option<String>,
    /// NATS nkey seed.
    #[arg(long, env = "WAYBILL_NATS_NKEY", hide_env_values = true)]
    pub nats_nkey: Option<String>,
    /// PEM file of the CA that signed the NATS servers' certificates (requires TLS).
    #[arg(long, env = "WAYBILL_NATS_CA")]
    pub nats_ca: Option<PathBuf>,
    /// PEM client certificate for NATS servers that verify clients (with --nats-key).
    #[arg(long, env = "WAYBILL_NATS_CERT")]
    pub nats_cert: Option<PathBuf>,
    /// PEM key of --nats-cert.
    #[arg(long, env = "WAYBILL_NATS_KEY")]
    pub nats_key: Option<PathBuf>,
    /// JetStream stream name [default: WAYBILL].
    #[arg(long, env = "WAYBILL_STREAM")]
    pub stream: Option<String>,
    /// Subjects of the stream: `<prefix>.<project>.<event type>`; two
    /// ledgers on one NATS account need different prefixes (and streams)
    /// [default: waybill].
    #[arg(long, env = "WAYBILL_SUBJECT_PREFIX")]
    pub subject_prefix: Option<String>,
    /// Replicas when creating the stream [default: 1].
    #[arg(long, env = "WAYBILL_REPLICAS")]
    pub replicas: Option<usize>,
    /// Duplicate window in seconds [default: 600].
    #[arg(long, env = "WAYBILL_DUPLICATE_WINDOW_SECS")]
    pub duplicate_window_secs: Option<u64>,
    /// Accept a stream that allows deletes and purges (tamper tests only).
    #[arg(long, hide = true)]
    pub unsafe_allow_mutable_stream: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub log: LogArgs,
    /// gRPC listen address [default: 127.0.0.1:50051].
    #[arg(long, env = "WAYBILL_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Serve gRPC over TLS with this PEM certificate (with --tls-key).
    #[arg(long, env = "WAYBILL_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM key of --tls-cert.
    #[arg(long, env = "WAYBILL_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS: require client certificates signed by this PEM CA.
    #[arg(long, env = "WAYBILL_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Identity and roles (TOML: tokens file, `[jwt]`, `[[binding]]`).
    #[arg(long, env = "WAYBILL_AUTH_CONFIG")]
    pub auth_config: Option<PathBuf>,
    /// Admit requests without credentials as an anonymous admin. Local trials only.
    #[arg(long, env = "WAYBILL_INSECURE_DEV", value_parser = clap::builder::BoolishValueParser::new())]
    pub insecure_dev: bool,
    /// Serve Prometheus metrics on this address (any path, e.g. /metrics) [default: off].
    #[arg(long, env = "WAYBILL_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Requests per second allowed on one connection (bursts of twice that);
    /// more are refused with RESOURCE_EXHAUSTED [default: 1000].
    #[arg(long, env = "WAYBILL_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// Memory for the read models' page cache, in MiB: history and
    /// point-in-time queries read from it [default: 512].
    #[arg(long, env = "WAYBILL_CACHE_MB", value_name = "MIB")]
    pub cache_mb: Option<u64>,
    /// Records the command service's cached project states keep in memory
    /// together (freight, promotions and aliases, about 1 KB each; 16
    /// idempotency keys count as one); beyond it the least recently used
    /// projects are saved to the command state store and read back when next
    /// needed.
    /// The rest of each project is in `<data-dir>/command-state` [default: 500000].
    /// (`--command-cache-events` is its former name.)
    #[arg(long, alias = "command-cache-events", env = "WAYBILL_COMMAND_CACHE_RECORDS", value_name = "RECORDS", value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(1..))]
    pub command_cache_records: Option<u64>,
    /// What this process runs, comma-separated: `commands` (the command
    /// service), `queries` (read models, Merkle tree and checkpoints, the
    /// query and audit services, exports), `reactors` (auto-promotion)
    /// [default: all three].
    #[arg(long, env = "WAYBILL_ROLES", value_enum, value_delimiter = ',')]
    pub roles: Vec<crate::roles::ServeRole>,
    /// Do not run the auto-promotion reactor in this process (the same as
    /// leaving `reactors` out of --roles).
    #[arg(long, env = "WAYBILL_NO_REACTORS", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_reactors: bool,
    #[command(flatten)]
    pub audit: crate::audit::AuditArgs,
    /// Keep a live copy of the log in this directory (an embedded log,
    /// record for record, each event copied as it is appended): a backup on
    /// another disk, usable by `waybill serve --data-dir` or `waybill copy`.
    #[arg(long, env = "WAYBILL_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Start the decision clock at this instant (RFC 3339); tests only.
    /// At start, how long to keep trying to reach NATS before giving up, in
    /// seconds (a server started before NATS serves once NATS is up);
    /// SIGTERM stops the wait [default: 0: give up at once].
    #[arg(long, env = "WAYBILL_NATS_CONNECT_WAIT", value_name = "SECS")]
    pub nats_connect_wait: Option<u64>,
    /// How often to check the auth config (and the files it names) and the
    /// TLS files for changes, in seconds, and put changed ones in force as
    /// SIGHUP does; 0: only on SIGHUP [default: 30].
    #[arg(long, env = "WAYBILL_RELOAD_CHECK_SECS", value_name = "SECS")]
    pub reload_check_secs: Option<u64>,
    /// Read and check the configuration (config file, flags, environment,
    /// TLS files, auth config, signing key, backup directory), say what
    /// `serve` would start with, and exit: binds no port, connects to
    /// nothing, writes nothing. Exits non-zero on the first error.
    #[arg(long)]
    pub check: bool,
    #[arg(long, hide = true)]
    pub clock_start: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub log: LogArgs,
    /// Check only this project's chain.
    #[arg(long, short = 'p')]
    pub project: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = crate::client::Output::Text)]
    pub output: crate::client::Output,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    #[command(flatten)]
    pub log: LogArgs,
    /// Only this project's records.
    #[arg(long, short = 'p')]
    pub project: Option<String>,
    /// First position to write.
    #[arg(long, default_value_t = 1, value_parser = crate::client::position_arg)]
    pub from: u64,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token: prints it once, and the hashed entry for the tokens file.
    Create(crate::client::TokenArgs),
    /// Revoke a token: takes its entry out of the tokens file (it stops
    /// working when the server reloads the file).
    Revoke(crate::client::token::RevokeArgs),
    /// Who has a token in the tokens file, and their groups.
    List(crate::client::token::ListArgs),
}

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Rebuild the read models from position 1 into a fresh store, then swap it in.
    Rebuild(ProjectionsArgs),
    /// Bring the read models up to the log's head (resuming from the checkpoint), then exit.
    CatchUp(ProjectionsArgs),
}

#[derive(Debug, Args)]
pub struct ProjectionsArgs {
    #[command(flatten)]
    pub log: LogArgs,
    /// Memory for the read models' page cache while they are built, in MiB
    /// [default: 16, or `cache_mb` from the config file; more is faster].
    #[arg(long, env = "WAYBILL_CACHE_MB", value_name = "MIB")]
    pub cache_mb: Option<u64>,
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn the_command_cache_flag_keeps_its_former_name() {
        for flag in ["--command-cache-records", "--command-cache-events"] {
            let cli = Cli::try_parse_from(["waybill", "serve", flag, "42"]).expect(flag);
            let Command::Serve(args) = cli.command else {
                panic!("{flag}: not serve");
            };
            assert_eq!(args.command_cache_records, Some(42), "{flag}");
        }
        assert!(Cli::try_parse_from(["waybill", "serve", "--command-cache-records", "0"]).is_err());
    }

    /// The verbs that run without a server neither list nor take the
    /// client options, which they would ignore (`serve --server` is a
    /// mistake to say, not to pass over); the verbs that talk to a server
    /// take them all.
    #[test]
    fn only_the_verbs_that_talk_to_a_server_take_client_options() {
        use clap::CommandFactory as _;
        let client_options = [
            "server",
            "query-server",
            "token",
            "token-file",
            "ca",
            "cert",
            "key",
        ];
        let cli = Cli::command();
        let mut talking = Vec::new();
        for verb in cli.get_subcommands() {
            let longs: Vec<&str> = verb.get_arguments().filter_map(|a| a.get_long()).collect();
            let takes = client_options.iter().filter(|o| longs.contains(o)).count();
            assert!(
                takes == 0 || takes == client_options.len(),
                "{} takes some client options only: {longs:?}",
                verb.get_name()
            );
            if takes > 0 {
                talking.push(verb.get_name().to_string());
            }
        }
        for verb in [
            "apply", "promote", "report", "status", "history", "watch", "export", "prove",
        ] {
            assert!(
                talking.iter().any(|t| t == verb),
                "{verb} takes no --server"
            );
        }
        for verb in [
            "serve",
            "verify",
            "dump",
            "copy",
            "keygen",
            "verify-export",
            "projections",
            "token",
        ] {
            assert!(!talking.iter().any(|t| t == verb), "{verb} takes --server");
            let refused = Cli::try_parse_from(["waybill", verb, "--server", "h:1"])
                .expect_err(verb)
                .kind();
            assert_eq!(refused, clap::error::ErrorKind::UnknownArgument, "{verb}");
        }
        // Output formats are for every verb that reports (offline ones too).
        for args in [
            &["waybill", "verify", "--output", "json"][..],
            &[
                "waybill",
                "verify-export",
                "DIR",
                "--pubkey",
                "K",
                "--output",
                "json",
            ],
            &["waybill", "status", "--output", "json", "--server", "h:1"],
            &["waybill", "verify", "-o", "json"],
            &["waybill", "copy", "--to-data-dir", "D", "-o", "json"],
            &["waybill", "watch", "-o", "json"],
        ] {
            Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
    }

    #[test]
    fn the_definitions_are_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }

    #[test]
    fn decisions_take_a_reason_as_promote_and_approve_freight_do() {
        use crate::client::ClientCommand;
        for verb in ["approve", "reject", "abort"] {
            let cli = Cli::try_parse_from([
                "waybill",
                verb,
                "-p",
                "shop",
                "--promotion",
                "prm-1",
                "--reason",
                "superseded",
            ])
            .unwrap_or_else(|e| panic!("{verb}: {e}"));
            let args = match cli.command {
                Command::Client(
                    ClientCommand::Approve(a) | ClientCommand::Reject(a) | ClientCommand::Abort(a),
                ) => a,
                other => panic!("{verb}: {other:?}"),
            };
            assert_eq!(args.comment, "superseded", "{verb}");
        }
        // And every verb that records a reason takes it as -m, as the
        // decisions do.
        for line in [
            "waybill promote -p shop -s prod --newest -m superseded",
            "waybill rollback -p shop -s prod -m superseded",
            "waybill approve-freight -p shop -s prod --freight v1 -m superseded",
        ] {
            let cli =
                Cli::try_parse_from(line.split(' ')).unwrap_or_else(|e| panic!("{line}: {e}"));
            let reason = match cli.command {
                Command::Client(ClientCommand::Promote(a)) => a.request.reason,
                Command::Client(ClientCommand::Rollback(a)) => a.request.reason,
                Command::Client(ClientCommand::ApproveFreight(a)) => a.reason,
                other => panic!("{line}: {other:?}"),
            };
            assert_eq!(reason, "superseded", "{line}");
        }
    }

    /// `--warehouse` picks among the newest of each warehouse (promote) or
    /// the warehouse to roll back; with a named freight it means nothing.
    #[test]
    fn a_warehouse_goes_with_newest_or_rollback() {
        use crate::client::ClientCommand;
        let parse = |line: &str| Cli::try_parse_from(line.split(' '));
        match parse("waybill promote -p shop -s dev --newest -w config").map(|c| c.command) {
            Ok(Command::Client(ClientCommand::Promote(a))) => {
                assert_eq!(a.warehouse.as_deref(), Some("config"));
            }
            other => panic!("{other:?}"),
        }
        match parse("waybill rollback -p shop -s dev -w images").map(|c| c.command) {
            Ok(Command::Client(ClientCommand::Rollback(a))) => assert_eq!(a.warehouse, "images"),
            other => panic!("{other:?}"),
        }
        let e = parse("waybill promote -p shop -s dev --freight v1 -w images")
            .expect_err("a freight and a warehouse");
        assert!(e.to_string().contains("cannot be used with"), "{e}");
    }

    /// A verb that needs one of two or more options names them together when
    /// none is given (not only the first), and takes each alone.
    #[test]
    fn a_missing_choice_names_every_option() {
        let parse = |line: &str| Cli::try_parse_from(line.split(' '));
        for (line, names) in [
            (
                "waybill promote -p shop -s dev",
                "<--freight <FREIGHT>|--newest>",
            ),
            (
                "waybill approve -p shop",
                "<--promotion <PROMOTION>|--stage <STAGE>>",
            ),
            (
                "waybill abort -p shop -m late",
                "<--promotion <PROMOTION>|--stage <STAGE>>",
            ),
            (
                "waybill record-verification -p shop -s dev --freight v1 --check smoke",
                "<--pass|--fail>",
            ),
            (
                "waybill copy",
                "<--to-data-dir <TO_DATA_DIR>|--to-nats <TO_NATS>>",
            ),
            (
                "waybill prove --pubkey k",
                "<--position <POSITION>|--since <SINCE>>",
            ),
        ] {
            let e = parse(line).expect_err(line);
            assert!(e.to_string().contains(names), "{line}: {e}");
        }
        for line in [
            "waybill promote -p shop -s dev --newest",
            "waybill promote -p shop -s dev --freight v1",
            "waybill approve -p shop --promotion prm-123456",
            "waybill approve -p shop -s prod --freight v1",
            "waybill record-verification -p shop -s dev --freight v1 --check smoke --fail",
            "waybill copy --to-nats nats://127.0.0.1:4222",
            "waybill prove --pubkey k --since 3",
            "waybill prove --pubkey k --position 7 --since 3",
        ] {
            parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        }
        for line in [
            "waybill promote -p shop -s dev --newest --freight v1",
            "waybill approve -p shop --promotion prm-123456 -s prod --freight v1",
            "waybill record-verification -p shop -s dev --freight v1 --check smoke --pass --fail",
        ] {
            let e = parse(line).expect_err(line);
            assert!(e.to_string().contains("cannot be used with"), "{line}: {e}");
        }
    }
}
