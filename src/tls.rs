//! The gRPC server's TLS: its certificate, key and (for mutual TLS) client
//! CA, read from files at start and again on SIGHUP, so that a rotated
//! certificate is served to new connections without a restart.
//!
//! tonic's own TLS settings are fixed when the server is built, so the
//! server accepts TCP connections itself, completes each handshake with the
//! settings in force when the connection arrived, and hands tonic the
//! encrypted streams.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use futures::Stream;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once; beyond this, new connections wait in the
/// kernel's accept queue (a flood of silent clients cannot take the memory).
const MAX_HANDSHAKES: usize = 1024;

/// The files the TLS settings come from.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The server's certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) a client certificate must chain to; none:
    /// clients need no certificate.
    pub client_ca: Option<PathBuf>,
}

/// TLS settings in force, replaced whole by [`ServerTls::reload`].
pub struct ServerTls {
    files: TlsFiles,
    config: RwLock<Loaded>,
}

/// A rustls configuration, and when its certificate stops being valid.
#[derive(Clone)]
struct Loaded {
    config: Arc<ServerConfig>,
    expires: SystemTime,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads and checks the files: every certificate parses, the key is the
    /// certificate's, the client CA holds at least one certificate.
    pub fn load(files: TlsFiles) -> anyhow::Result<ServerTls> {
        let loaded = server_config(&files)?;
        Ok(ServerTls {
            files,
            config: RwLock::new(loaded),
        })
    }

    /// Reads the files again; new connections get the new settings, open
    /// ones keep theirs. On any error the settings in force stay.
    pub fn reload(&self) -> anyhow::Result<()> {
        let loaded = server_config(&self.files)?;
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = loaded;
        Ok(())
    }

    /// When the certificate in force stops being valid (its `notAfter`).
    pub fn expires(&self) -> SystemTime {
        self.loaded().expires
    }

    /// The certificate file, for messages.
    pub fn cert_path(&self) -> &Path {
        &self.files.cert
    }

    /// Every file the settings are read from.
    pub fn files(&self) -> Vec<PathBuf> {
        let f = &self.files;
        [Some(&f.cert), Some(&f.key), f.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    fn loaded(&self) -> Loaded {
        // A poisoned lock only means a panic elsewhere; the value is whole.
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn current(&self) -> Arc<ServerConfig> {
        self.loaded().config
    }

    /// The connections `listener` accepts, once their handshake is done.
    /// Handshakes run side by side (tasks owned by the stream: dropping it
    /// ends them and closes the listener), so a slow or silent client holds
    /// up nobody else; one that fails or takes longer than
    /// [`HANDSHAKE_TIMEOUT`] is dropped (and logged at debug level).
    pub fn incoming(
        self: Arc<Self>,
        listener: TcpListener,
    ) -> impl Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> {
        let state = (self, listener, JoinSet::new());
        futures::stream::unfold(state, |(tls, listener, mut handshakes)| async move {
            loop {
                tokio::select! {
                    accepted = listener.accept(), if handshakes.len() < MAX_HANDSHAKES => {
                        match accepted {
                            Ok((tcp, peer)) => {
                                let acceptor = TlsAcceptor::from(tls.current());
                                handshakes.spawn(handshake(acceptor, tcp, peer));
                            }
                            Err(e) => {
                                // Out of file descriptors, most likely: let some close.
                                tracing::warn!(error = %e, "cannot accept a connection");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                    Some(done) = handshakes.join_next() => {
                        if let Ok(Some(stream)) = done {
                            return Some((Ok(stream), (tls, listener, handshakes)));
                        }
                    }
                }
            }
        })
    }
}

/// The TLS handshake of one connection, or `None` if it failed or timed out.
async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: std::net::SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    // No Nagle: small HTTP/2 frames must not wait for the peer's ACK.
    let _ = tcp.set_nodelay(true);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

fn server_config(files: &TlsFiles) -> anyhow::Result<Loaded> {
    let chain = certificates(&files.cert)?;
    let expires = not_after(&chain[0])
        .with_context(|| format!("{}: the certificate", files.cert.display()))?;
    if expires <= SystemTime::now() {
        anyhow::bail!(
            "{}: the certificate expired on {}; renew it",
            files.cert.display(),
            utc(expires)
        );
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        anyhow::anyhow!(
            "{}: no private key (PEM: PKCS#8, PKCS#1 or SEC1): {e}",
            files.key.display()
        )
    })?;
    let builder = ServerConfig::builder();
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(path)? {
                roots
                    .add(cert)
                    .with_context(|| format!("{}: a CA certificate is unusable", path.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder(roots.into())
                .build()
                .with_context(|| format!("{}: the client CA", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).with_context(|| {
        format!(
            "{} and {}: the certificate and key do not go together",
            files.cert.display(),
            files.key.display()
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Loaded {
        config: Arc::new(config),
        expires,
    })
}

/// A certificate's `notAfter`.
fn not_after(cert: &CertificateDer<'_>) -> anyhow::Result<SystemTime> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(cert.as_ref())
        .map_err(|e| anyhow::anyhow!("cannot be decoded (X.509 DER): {e}"))?;
    let since_epoch = cert.tbs_certificate.validity.not_after.to_unix_duration();
    Ok(SystemTime::UNIX_EPOCH + since_epoch)
}

/// `at` as people read it, in UTC.
pub fn utc(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at)
        .format("%Y-%m-%d %H:%M UTC")
        .to_string()
}

/// Every certificate in a PEM file; at least one.
fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("{}: cannot read certificates: {e}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{}: no certificate (PEM) in the file",
        path.display()
    );
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(file: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(file)
    }

    fn files(cert: &str, key: &str, client_ca: Option<&str>) -> TlsFiles {
        TlsFiles {
            cert: fixture(cert),
            key: fixture(key),
            client_ca: client_ca.map(fixture),
        }
    }

    #[test]
    fn a_certificate_and_its_key_load() {
        let tls = ServerTls::load(files("server.pem", "server-key.pem", None)).expect("plain TLS");
        // The fixture is valid until 2126-11-05 03:38:40 UTC.
        assert_eq!(utc(tls.expires()), "2126-11-05 03:38 UTC");
        ServerTls::load(files("server.pem", "server-key.pem", Some("ca.pem"))).expect("mutual");
    }

    #[test]
    fn wrong_files_are_refused_with_their_names() {
        for (what, files, expected) in [
            (
                "a key that is not the certificate's",
                files("server.pem", "client-key.pem", None),
                "do not go together",
            ),
            (
                "a key file given as the certificate",
                files("server-key.pem", "server-key.pem", None),
                "no certificate",
            ),
            (
                "a certificate given as the key",
                files("server.pem", "server.pem", None),
                "no private key",
            ),
            (
                "an expired certificate",
                files("expired.pem", "expired-key.pem", None),
                "expired on 2021-01-01 00:00 UTC",
            ),
            (
                "a missing client CA",
                files("server.pem", "server-key.pem", Some("absent.pem")),
                "absent.pem",
            ),
        ] {
            let e = ServerTls::load(files).expect_err(what);
            let message = format!("{e:#}");
            assert!(message.contains(expected), "{what}: {message}");
        }
    }
}
