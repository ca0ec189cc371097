//! The query service connection, refusals and exit codes, and standard output
//! that stops quietly when its reader goes away.

use std::io::Write;
use std::process::ExitCode;

use serde_json::json;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;
use waybill_proto::v1::query_service_client::QueryServiceClient;

use super::super::{Bearer, ClientArgs, Output};

/// Exit code when the server refuses a query (not found, invalid, denied...).
pub const REFUSED: u8 = 1;
/// Exit code when the server cannot be reached.
pub const UNREACHABLE: u8 = 2;

/// A query service client that sends the bearer token.
pub type Queries = QueryServiceClient<InterceptedService<Channel, Bearer>>;

/// Connects to the query service.
pub async fn connect(args: &ClientArgs) -> anyhow::Result<Queries> {
    let (channel, bearer) = super::super::channel(args).await?;
    Ok(QueryServiceClient::with_interceptor(channel, bearer))
}

/// The exit code of a failed call: unreachable, or refused.
pub fn exit_code(status: &Status) -> ExitCode {
    ExitCode::from(if status.code() == Code::Unavailable {
        UNREACHABLE
    } else {
        REFUSED
    })
}

/// Prints why the server refused (status code, message, `waybill-reason` and
/// details), as the command verbs do, and returns the exit code.
pub fn refused(output: Output, status: &Status) -> ExitCode {
    let info = status.get_details_error_info();
    let reason = info
        .as_ref()
        .map(|i| i.reason.clone())
        .or_else(|| {
            status
                .metadata()
                .get(waybill_commands::service::REASON_KEY)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    // A server that does not run the role behind this call answers
    // UNIMPLEMENTED with no message of its own.
    let message = match (status.code(), status.message()) {
        (Code::Unimplemented, "") => "this server does not serve that call: it runs without the \
             role for it (--roles: `commands` for changes, `queries` for reads and audit); \
             point --server at one that does (the command verbs read from --query-server \
             when it is given)"
            .to_string(),
        // What a plaintext client reads from a TLS server.
        (Code::Internal | Code::Unknown, message) if message.contains("h2 protocol error") => {
            format!(
                "{message} (a server that uses TLS needs an https:// --server, with --ca if \
                 its CA is not the system's)"
            )
        }
        (Code::Unauthenticated, message) if message.starts_with("no credentials") => {
            format!(
                "{message} (give --token or --token-file, or set WAYBILL_TOKEN or \
                 WAYBILL_TOKEN_FILE)"
            )
        }
        // A connection that failed under the call: the cause is below it.
        (_, message) => {
            let said =
                crate::client::with_causes(message.to_string(), std::error::Error::source(status));
            let hint = match crate::client::tls_hint(&said) {
                // TLS 1.3: a server that wants a client certificate may close
                // the connection only once the call is under way.
                "" if said.contains("transport error") => {
                    " (the connection failed during the call: the server may have stopped, \
                     or it requires a client certificate: --cert and --key)"
                }
                hint => hint,
            };
            format!("{said}{hint}")
        }
    };
    match output {
        Output::Json => Out::default().line(
            &json!({
                "error": format!("{:?}", status.code()),
                "reason": reason,
                "message": message,
                "details": info.map(|i| i.metadata).unwrap_or_default(),
            })
            .to_string(),
        ),
        Output::Text => {
            let verb = if status.code() == Code::Unavailable {
                "unavailable"
            } else {
                "refused"
            };
            eprintln!("{verb} ({:?}): {message}", status.code());
            if !reason.is_empty() {
                eprintln!("  reason: {reason}");
            }
            if let Some(i) = info {
                let mut details: Vec<_> = i.metadata.into_iter().collect();
                details.sort();
                for (k, v) in details {
                    eprintln!("  {k}: {v}");
                }
            }
        }
    }
    exit_code(status)
}

/// Standard output, one line at a time. When the reader goes away (`| head`)
/// it stops writing instead of panicking, and says so through [`Out::is_open`].
#[derive(Debug, Default)]
pub struct Out {
    closed: bool,
}

impl Out {
    /// Writes `text` and a line break; nothing once closed.
    pub fn line(&mut self, text: &str) {
        if self.closed {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("error: cannot write to standard output: {e}");
            }
            self.closed = true;
        }
    }

    /// Writes `text` as is (a rendered table ends with its own line break).
    pub fn block(&mut self, text: &str) {
        self.line(text.trim_end_matches('\n'));
    }

    /// Whether output can still be written.
    pub fn is_open(&self) -> bool {
        !self.closed
    }
}
