//! The `waybill` binary: parse the command line, start tracing, dispatch.
//! Everything else lives in the library crates and the modules below.

/// `println!` for what a verb prints on standard output: a reader that
/// went away (`waybill apply -f p.yaml | head -1`) ends the process quietly,
/// as it would a Unix tool, instead of a panic (std ignores SIGPIPE).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::write_line(format_args!($($arg)*))
    };
}

mod audit;
mod bench;
mod check;
mod cli;
mod client;
mod config;
mod copy;
mod debug;
mod dump;
mod durable;
mod metrics;
mod open;
mod progress;
mod projections;
mod rate_limit;
mod roles;
mod serve;
mod tls;
mod verify;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};

/// The read side allocates many small strings (read models, history
/// entries); glibc's allocator spent a quarter of a rebuild in malloc and
/// free, and more consolidating its free lists while serving history.
/// jemalloc, not mimalloc: with mimalloc the p99 of queries and of
/// command-to-visible lag sat near 5.5 ms (1.5-3 ms with glibc or jemalloc).
/// Its options are built in (`.cargo/config.toml`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs what it does; one-shot commands only what goes wrong.
    let default_level = match cli.command {
        Command::Serve(_) | Command::Bench(_) => "info",
        _ => "warn",
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("WAYBILL_LOG")
                .unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        // Colours only on a terminal: a log file, journald or a container's
        // log collector gets plain text.
        cli::LogFormat::Text => logs
            .with_ansi(
                std::io::IsTerminal::is_terminal(&std::io::stderr())
                    && std::env::var_os("NO_COLOR").is_none(),
            )
            .init(),
        // With the fields of the spans it happened in (a command's
        // correlation id among them).
        cli::LogFormat::Json => {
            JSON_LOGS.store(true, std::sync::atomic::Ordering::Relaxed);
            logs.json().init()
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        let file = config::FileConfig::load(cli.config.as_deref())?;
        match cli.command {
            Command::Serve(args) => serve::run(*args, &file).await.map(|()| ExitCode::SUCCESS),
            Command::Verify(args) => verify::run(args, &file).await,
            Command::Dump(args) => dump::run(args, &file).await.map(|()| ExitCode::SUCCESS),
            Command::Copy(args) => copy::run(*args, &file).await,
            Command::Keygen(args) => audit::keys::keygen(&args).map(|()| ExitCode::SUCCESS),
            Command::Export(args) => audit::export::run(&args).await,
            Command::VerifyExport(args) => audit::verify_export::run(&args),
            Command::Checkpoint(args) => audit::prove::checkpoint(&args).await,
            Command::Prove(args) => audit::prove::prove(&args).await,
            Command::Client(command) => client::run(&command.client().clone(), command).await,
            Command::Query(command) => client::run_query(&command.client().clone(), command).await,
            Command::Projections(command) => projections::run(command, &file)
                .await
                .map(|()| ExitCode::SUCCESS),
            Command::Token(cli::TokenCommand::Create(args)) => {
                client::token::create(&args).map(|()| ExitCode::SUCCESS)
            }
            Command::Token(cli::TokenCommand::Revoke(args)) => {
                client::token::revoke(&args).map(|()| ExitCode::SUCCESS)
            }
            Command::Token(cli::TokenCommand::List(args)) => {
                client::token::list(&args).map(|()| ExitCode::SUCCESS)
            }
            Command::Bench(args) => bench::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Completions { shell } => {
                // Into memory first: `generate` panics on a write error,
                // such as a closed pipe (`waybill completions bash | head`).
                let mut command = <cli::Cli as clap::CommandFactory>::command();
                let mut script = Vec::new();
                clap_complete::generate(shell, &mut command, "waybill", &mut script);
                let mut out = std::io::stdout().lock();
                std::io::Write::write_all(&mut out, &script)?;
                std::io::Write::flush(&mut out)?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Debug(args) => debug::run(args, &file).await.map(|()| ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
        // The reader of our output went away (`waybill dump | head`): what
        // it wanted was written; stop quietly, as `rg` and `cat` do.
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            if json_logs() {
                // One JSON line, like the rest of the log, for collectors.
                tracing::error!(error = format!("{e:#}"), "exiting");
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(2)
        }
    }
}

/// Writes one line to standard output (see `outln!`). What the verb did
/// is done by the time it prints; a reader that is gone ends the process
/// with status 0, another failure with status 2.
pub(crate) fn write_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            std::process::exit(2)
        }
    }
}

/// Set when the log is JSON lines (`--log-format json`).
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the log is JSON lines: what else the process writes to stderr
/// should be too.
pub(crate) fn json_logs() -> bool {
    JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether `e` comes from writing to a pipe whose reader has gone.
fn broken_pipe(e: &anyhow::Error) -> bool {
    let pipe = Some(std::io::ErrorKind::BrokenPipe);
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().map(std::io::Error::kind) == pipe
            || c.downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == pipe
    })
}
