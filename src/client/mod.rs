//! The CLI as a client of the gRPC API: connection, credentials, output.

mod commands;
mod outcome;
mod queries;
pub mod token;
mod wait;

pub use commands::{run, ClientCommand};
pub use queries::rpc::refused;
pub use queries::{position_arg, run as run_query, time_arg, QueryCommand};
pub use token::TokenArgs;

use clap::{Args, ValueEnum};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// Default server address.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

/// How to reach the server and who we are.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Client options")]
pub struct ClientArgs {
    /// Server address: a URL, or HOST:PORT as `serve --listen` takes it
    /// (then http://, or https:// when --ca or --cert is given).
    #[arg(long, env = "WAYBILL_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Where the command verbs read what they show after a command (the
    /// promotion's standing, --wait, a promotion named by -s and --freight),
    /// when --server runs without the `queries` role [default: --server].
    #[arg(long, env = "WAYBILL_QUERY_SERVER")]
    pub query_server: Option<String>,
    /// Bearer token or JWT.
    #[arg(long, env = "WAYBILL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the token (instead of --token, which other users can
    /// see in the process list): its first line, white space trimmed.
    #[arg(long, env = "WAYBILL_TOKEN_FILE")]
    pub token_file: Option<std::path::PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// PEM CA of the server's certificate (TLS; implied by an https:// server).
    #[arg(long, env = "WAYBILL_CA")]
    pub ca: Option<std::path::PathBuf>,
    /// PEM client certificate for a server that requires one (with --key).
    #[arg(long, env = "WAYBILL_CERT")]
    pub cert: Option<std::path::PathBuf>,
    /// PEM key of --cert.
    #[arg(long, env = "WAYBILL_KEY")]
    pub key: Option<std::path::PathBuf>,
}

impl ClientArgs {
    /// The server's URL: `--server` as given when it names a scheme, else
    /// `HOST:PORT` (what `serve --listen` takes and prints) made a URL, with
    /// https when TLS settings are given. Without this, tonic takes
    /// `127.0.0.1:50051` as a URI with the scheme `127.0.0.1` and fails to
    /// connect with a bare "transport error".
    pub fn server_url(&self) -> String {
        if self.server.contains("://") {
            return self.server.clone();
        }
        let scheme = if self.ca.is_some() || self.cert.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.server)
    }
}

/// The TLS settings of the client flags, if any apply.
fn client_tls(args: &ClientArgs) -> anyhow::Result<Option<tonic::transport::ClientTlsConfig>> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let https = args.server_url().starts_with("https://");
    if !https && args.ca.is_none() && args.cert.is_none() {
        return Ok(None);
    }
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))
    };
    let mut tls = ClientTlsConfig::new();
    if let Some(ca) = &args.ca {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        (None, None) => {}
        _ => anyhow::bail!("--cert and --key go together"),
    }
    Ok(Some(tls))
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Adds `authorization: Bearer …` to every request.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(<redacted>)")
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            request.metadata_mut().insert("authorization", v.clone());
        }
        Ok(request)
    }
}

/// HTTP/2 receive windows: a history or export stream is hundreds of
/// kilobytes, and with HTTP/2's default 64 KiB window the server would stop
/// to wait for the client's window updates several times per reply.
pub fn windows(endpoint: Endpoint) -> Endpoint {
    endpoint
        .initial_stream_window_size(Some(2 << 20))
        .initial_connection_window_size(Some(4 << 20))
}

/// The token of `--token`, or the first line of `--token-file`; both given
/// is refused (which one was meant?).
fn token(args: &ClientArgs) -> anyhow::Result<Option<String>> {
    let Some(path) = &args.token_file else {
        return Ok(args.token.clone());
    };
    anyhow::ensure!(
        args.token.is_none(),
        "both a token (--token or WAYBILL_TOKEN) and a token file (--token-file or \
         WAYBILL_TOKEN_FILE) are given: give one"
    );
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the token file {}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or_default().trim();
    anyhow::ensure!(
        !line.is_empty(),
        "the token file {} is empty",
        path.display()
    );
    Ok(Some(line.to_string()))
}

/// Opens a channel to the server and the interceptor that sends the token.
pub async fn channel(args: &ClientArgs) -> anyhow::Result<(Channel, Bearer)> {
    let (endpoint, url, bearer) = endpoint(args)?;
    let channel = endpoint.connect().await.map_err(|e| {
        // tonic's own message is "transport error"; the cause is below it.
        let reason = with_causes(e.to_string(), std::error::Error::source(&e));
        anyhow::anyhow!(
            "cannot reach the Waybill server at {url}: {reason}{}",
            tls_hint(&reason)
        )
    })?;
    Ok((channel, bearer))
}

/// [`channel`], connected when first used: for a server asked only for
/// what it may add (where a promotion stands), whose absence must not stop
/// what the command asks of the other.
pub fn lazy_channel(args: &ClientArgs) -> anyhow::Result<(Channel, Bearer)> {
    let (endpoint, _, bearer) = endpoint(args)?;
    Ok((endpoint.connect_lazy(), bearer))
}

/// The server's endpoint (TLS set as the options say), its URL, and the
/// token header.
fn endpoint(args: &ClientArgs) -> anyhow::Result<(Endpoint, String, Bearer)> {
    let bearer = match token(args)? {
        Some(t) => Some(format!("Bearer {t}").parse().map_err(|_| {
            anyhow::anyhow!("the token contains characters not allowed in a header")
        })?),
        None => None,
    };
    let url = args.server_url();
    let mut endpoint = windows(
        Endpoint::from_shared(url.clone())
            .map_err(|e| anyhow::anyhow!("invalid --server {:?}: {e}", args.server))?,
    )
    .connect_timeout(std::time::Duration::from_secs(5));
    if let Some(tls) = client_tls(args)? {
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| anyhow::anyhow!("the TLS settings: {e}"))?;
    }
    Ok((endpoint, url, Bearer(bearer)))
}

/// `said`, then what each cause below it says (repeats left out).
pub fn with_causes(said: String, mut source: Option<&(dyn std::error::Error + 'static)>) -> String {
    let mut reason = said;
    let mut last = reason.clone();
    while let Some(cause) = source {
        let said = cause.to_string();
        if said != last && !reason.ends_with(&said) {
            reason = format!("{reason}: {said}");
            last = said;
        }
        source = cause.source();
    }
    reason
}

/// What to do about a TLS failure, from rustls' words for it.
pub fn tls_hint(reason: &str) -> &'static str {
    if reason.contains("invalid peer certificate") {
        " (give --ca the CA that signed the server's certificate)"
    } else if reason.contains("CertificateRequired") || reason.contains("certificate required") {
        " (the server requires a client certificate: --cert and --key)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(server: &str, ca: bool) -> ClientArgs {
        ClientArgs {
            server: server.into(),
            query_server: None,
            token: None,
            token_file: None,
            output: Output::Text,
            ca: ca.then(|| "ca.pem".into()),
            cert: None,
            key: None,
        }
    }

    #[test]
    fn a_server_without_a_scheme_gets_one() {
        assert_eq!(
            args("127.0.0.1:50051", false).server_url(),
            "http://127.0.0.1:50051"
        );
        assert_eq!(
            args("waybill.internal:443", true).server_url(),
            "https://waybill.internal:443"
        );
        assert_eq!(
            args("[::1]:50051", false).server_url(),
            "http://[::1]:50051"
        );
        assert_eq!(args("https://w:1", false).server_url(), "https://w:1");
        assert_eq!(args("http://w:1", true).server_url(), "http://w:1");
    }

    #[test]
    fn a_token_comes_from_the_flag_or_the_first_line_of_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("alice.token");
        std::fs::write(&file, "  wbt_secret \nignored\n").expect("write");
        let mut a = args("127.0.0.1:1", false);
        assert_eq!(token(&a).expect("none"), None);
        a.token = Some("flag".into());
        assert_eq!(token(&a).expect("flag").as_deref(), Some("flag"));
        a.token_file = Some(file.clone());
        let both = token(&a).expect_err("both").to_string();
        assert!(both.contains("give one"), "{both}");
        a.token = None;
        assert_eq!(token(&a).expect("file").as_deref(), Some("wbt_secret"));
        std::fs::write(&file, "\n").expect("write");
        let empty = token(&a).expect_err("empty").to_string();
        assert!(empty.contains("is empty"), "{empty}");
        a.token_file = Some(dir.path().join("missing"));
        let missing = token(&a).expect_err("missing").to_string();
        assert!(missing.contains("cannot read the token file"), "{missing}");
    }
}
