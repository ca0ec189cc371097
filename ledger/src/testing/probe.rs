//! Small blocking helpers for the harness: free ports, raw HTTP probes, log tails.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

/// How long one probe may take to connect, and to read or write.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Number of log lines shown when the server fails to become ready.
const LOG_TAIL_LINES: usize = 40;

/// Returns `n` distinct free loopback ports.
///
/// All listeners are held until every port is picked, so the ports differ from each
/// other; they are released before returning, for the server to bind.
pub(super) fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .expect("binding 127.0.0.1:0 for a free port")
        })
        .collect();
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .expect("a bound listener has a local address")
                .port()
        })
        .collect()
}

/// Whether something accepts TCP connections on `127.0.0.1:port`.
pub(super) fn accepts_connections(port: u16) -> bool {
    TcpStream::connect_timeout(&loopback(port), PROBE_TIMEOUT).is_ok()
}

/// `GET path` on `127.0.0.1:port` over HTTP/1.0; returns the status code and body.
pub(super) fn http_get(port: u16, path: &str) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&loopback(port), PROBE_TIMEOUT)?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let response = String::from_utf8_lossy(&raw);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not an HTTP response: {response:?}"),
            )
        })?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Ok((status, body.to_owned()))
}

/// `GET path`, as `Ok(body)` when the status is 200 and a description otherwise.
pub(super) fn get_ok(port: u16, path: &str) -> Result<String, String> {
    match http_get(port, path) {
        Ok((200, body)) => Ok(body),
        Ok((status, body)) => Err(format!("GET {path}: {status} {}", body.trim())),
        Err(err) => Err(format!("GET {path}: {err}")),
    }
}

/// The last lines of a log file, or a note saying why it could not be read.
pub(super) fn log_tail(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}
