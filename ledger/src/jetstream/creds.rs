//! NATS credentials files (a user JWT and its nkey seed), read again at
//! every connection.
//!
//! async-nats reads a creds file once, when the options are built, and signs
//! every later connection with that JWT. A user JWT with an expiry (the
//! norm in operator mode) then locks the process out at its first
//! reconnection after the expiry, even if the file was renewed meanwhile:
//! nats-server closes the connection when the JWT expires, and every
//! attempt after that is refused. Here the file is read at each connection
//! (as the Go client's `UserCredentials` does), so a renewed file is used at
//! the next reconnection. The seed is never logged nor kept in memory
//! between connections.

use std::path::{Path, PathBuf};

use crate::error::LedgerError;

/// The user JWT and the nkey seed of a creds file: the first and the second
/// block between a `-----BEGIN ...-----` and an `------END ...------` line.
fn parse(text: &str) -> Option<(String, String)> {
    let mut blocks = Vec::new();
    let mut inside: Option<String> = None;
    for line in text.lines().map(str::trim) {
        let marker = line.starts_with("---") && line.ends_with("---");
        match inside.as_mut() {
            None if marker && line.contains("BEGIN") => inside = Some(String::new()),
            Some(_) if marker && line.contains("END") => blocks.extend(inside.take()),
            Some(block) if !marker => block.push_str(line),
            _ => {}
        }
    }
    match blocks.as_slice() {
        [jwt, seed, ..] if !jwt.is_empty() && !seed.is_empty() => Some((jwt.clone(), seed.clone())),
        _ => None,
    }
}

/// The JWT and the key pair in `text`, the contents of `path`.
fn keys(path: &Path, text: &str) -> Result<(String, nkeys::KeyPair), String> {
    let (jwt, seed) = parse(text).ok_or_else(|| {
        format!(
            "{} is not a NATS credentials file (a user JWT, then an nkey seed)",
            path.display()
        )
    })?;
    let key = nkeys::KeyPair::from_seed(&seed)
        .map_err(|e| format!("{}: the nkey seed is invalid: {e}", path.display()))?;
    Ok((jwt, key))
}

/// Reads `path` and signs `nonce` with its seed; the JWT and the signature.
async fn sign(path: &Path, nonce: &[u8]) -> Result<(String, Vec<u8>), String> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (jwt, key) = keys(path, &text)?;
    let signature = key
        .sign(nonce)
        .map_err(|e| format!("{}: cannot sign: {e}", path.display()))?;
    Ok((jwt, signature))
}

/// Checks that `path` is a readable NATS credentials file with a valid
/// seed (what `waybill serve --check` asks), without connecting.
pub fn check_creds_file(path: &Path) -> Result<(), LedgerError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        LedgerError::Misconfigured(format!(
            "cannot read NATS credentials file {}: {e}",
            path.display()
        ))
    })?;
    keys(path, &text)
        .map(|_| ())
        .map_err(|e| LedgerError::Misconfigured(format!("NATS credentials file: {e}")))
}

/// Connection options that authenticate with the creds file at `path`,
/// read and checked now and again at every connection.
pub(super) async fn options(path: &Path) -> Result<async_nats::ConnectOptions, LedgerError> {
    check_creds_file(path)?;
    let path: PathBuf = path.to_path_buf();
    Ok(async_nats::ConnectOptions::with_auth_callback(
        move |nonce: Vec<u8>| {
            let path = path.clone();
            async move {
                let (jwt, signature) = sign(&path, &nonce)
                    .await
                    .map_err(async_nats::AuthError::new)?;
                let mut auth = async_nats::Auth::new();
                auth.jwt = Some(jwt);
                auth.signature = Some(signature);
                Ok(auth)
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn a_creds_file_gives_its_jwt_and_seed() {
        let text =
            "-----BEGIN NATS USER JWT-----\neyJ0.eyJ1.c2ln\n------END NATS USER JWT------\n\n\
                    ************************* IMPORTANT *************************\n\
                    NKEY Seed printed below can be used to sign and prove identity.\n\n\
                    -----BEGIN USER NKEY SEED-----\nSUAEXAMPLE\n------END USER NKEY SEED------\n\n\
                    *************************************************************\n";
        assert_eq!(
            parse(text),
            Some(("eyJ0.eyJ1.c2ln".to_string(), "SUAEXAMPLE".to_string()))
        );
        assert_eq!(
            parse("-----BEGIN NATS USER JWT-----\nonly\n------END NATS USER JWT------\n"),
            None
        );
        assert_eq!(parse("no blocks at all"), None);
    }
}
