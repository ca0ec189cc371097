//! NATS user/password, nkey and creds-file (JWT) authentication work, and secrets are never
//! logged or echoed: NATS passwords, nkey seeds and tokens, bearer
//! tokens and signing keys stay out of every log line (at debug level), every
//! error message and `--help`, whether the credentials work or not.

mod common;

use std::process::Stdio;

use common::{stderr, stdout, waybill, Served};
use waybill_ledger::testing::{NatsServer, ServerOptions};

const NATS_PASSWORD: &str = "nats-pass-Zq8xw3";
const BEARER: &str = "bearer-secret-Kp4r9s";

fn assert_clean(what: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "{what} reveals {s:?}:\n{text}");
    }
}

#[test]
fn nats_credentials_work_and_are_never_logged() {
    let nats = NatsServer::start_with(ServerOptions {
        extra_config: format!(
            "authorization {{\n  user: waybill\n  password: \"{NATS_PASSWORD}\"\n}}\n"
        ),
        ..ServerOptions::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("k.key");
    let out = waybill()
        .args(["keygen", "--name", "k", "--out"])
        .arg(&key)
        .output()
        .expect("keygen");
    assert!(out.status.success());
    let signing_key = std::fs::read_to_string(&key).expect("key");
    let signing_secret = signing_key
        .trim()
        // PRIVATE+KEY+<name>+<key id>+<base64 key>: the base64 may hold
        // '+' too (taking what follows the last one made the secret empty,
        // found in every log, once in 64 runs).
        .splitn(5, '+')
        .nth(4)
        .expect("key material")
        .to_string();
    assert!(signing_secret.len() >= 40, "{signing_key}");

    // The right password: the server runs; its debug log holds no secret.
    let served = Served::start(
        waybill()
            .env("WAYBILL_LOG", "debug")
            .env("WAYBILL_NATS_PASSWORD", NATS_PASSWORD)
            .args([
                "serve",
                "--nats",
                &nats.url(),
                "--nats-user",
                "waybill",
                "--insecure-dev",
            ])
            .arg("--signing-key")
            .arg(&key)
            .arg("--data-dir")
            .arg(dir.path().join("data")),
    );
    // A request with a bearer token the server does not know.
    let out = waybill()
        .args([
            "status",
            "-p",
            "shop",
            "--server",
            &served.endpoint(),
            "--token",
            BEARER,
        ])
        .output()
        .expect("status");
    assert_clean("the CLI", &(stdout(&out) + &stderr(&out)), &[BEARER]);
    let output = served.kill_and_log();
    assert!(output.contains("signing checkpoints"), "{output}");
    assert_clean(
        "waybill serve's log",
        &output,
        &[NATS_PASSWORD, BEARER, &signing_secret],
    );

    // A wrong password: refused with a message that does not echo it.
    let wrong = "wrong-pass-Hh2k7m";
    let out = waybill()
        .env("WAYBILL_LOG", "debug")
        .env("WAYBILL_NATS_PASSWORD", wrong)
        .args(["verify", "--nats", &nats.url(), "--nats-user", "waybill"])
        .stdout(Stdio::piped())
        .output()
        .expect("verify");
    assert!(!out.status.success(), "a wrong password is refused");
    assert_clean(
        "a refused connection",
        &(stdout(&out) + &stderr(&out)),
        &[wrong],
    );

    // `--help` shows which variables exist, never their values.
    let out = waybill()
        .env("WAYBILL_NATS_PASSWORD", NATS_PASSWORD)
        .env("WAYBILL_TOKEN", BEARER)
        .args(["serve", "--help"])
        .output()
        .expect("help");
    assert_clean("serve --help", &stdout(&out), &[NATS_PASSWORD, BEARER]);
    let out = waybill()
        .env("WAYBILL_TOKEN", BEARER)
        .args(["status", "--help"])
        .output()
        .expect("help");
    assert_clean("status --help", &stdout(&out), &[BEARER]);
}

#[test]
fn nats_nkey_authentication_works_and_the_seed_is_never_logged() {
    let user = nkeys::KeyPair::new_user();
    let seed = user.seed().expect("seed");
    let nats = NatsServer::start_with(ServerOptions {
        extra_config: format!(
            "authorization {{\n  users = [ {{ nkey: \"{}\" }} ]\n}}\n",
            user.public_key()
        ),
        ..ServerOptions::default()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(
        waybill()
            .env("WAYBILL_LOG", "debug")
            .env("WAYBILL_NATS_NKEY", &seed)
            .args([
                "serve",
                "--nats",
                &nats.url(),
                "--insecure-dev",
                "--no-checkpoints",
            ])
            .arg("--data-dir")
            .arg(dir.path()),
    );
    served.apply_example();
    let log = served.kill_and_log();
    assert_clean("waybill serve's log", &log, &[&seed]);

    // Another user's seed is refused, without echoing it.
    let other = nkeys::KeyPair::new_user().seed().expect("seed");
    let out = waybill()
        .env("WAYBILL_NATS_NKEY", &other)
        .args(["verify", "--nats", &nats.url()])
        .output()
        .expect("verify");
    assert!(!out.status.success(), "an unknown nkey is refused");
    assert_clean("a refused nkey", &(stdout(&out) + &stderr(&out)), &[&other]);
}

/// A NATS JWT: `claims` issued (and signed) by `issuer` about `subject`,
/// valid until `exp` (Unix seconds) if given.
fn nats_jwt(
    issuer: &nkeys::KeyPair,
    subject: &str,
    name: &str,
    nats: serde_json::Value,
    exp: Option<u64>,
) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let mut claims = serde_json::json!({
        "jti": format!("{}{}", name.to_uppercase(), "JTI"),
        "iat": 1_700_000_000u64,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    if let Some(exp) = exp {
        claims["exp"] = exp.into();
    }
    let claims = b64.encode(claims.to_string());
    let signing_input = format!("{header}.{claims}");
    let signature = issuer.sign(signing_input.as_bytes()).expect("sign");
    format!("{signing_input}.{}", b64.encode(signature))
}

/// A nats-server in operator mode (memory resolver) with one account for
/// Waybill, and that account's key, which signs user JWTs.
fn operator_mode_server() -> (NatsServer, nkeys::KeyPair) {
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    let system = nkeys::KeyPair::new_account();
    let unlimited = serde_json::json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
        "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1
    });
    let operator_jwt = nats_jwt(
        &operator,
        &operator.public_key(),
        "op",
        serde_json::json!({"type": "operator", "version": 2}),
        None,
    );
    let account_jwt = nats_jwt(
        &operator,
        &account.public_key(),
        "waybill",
        serde_json::json!({"type": "account", "version": 2, "limits": unlimited}),
        None,
    );
    // JetStream needs a system account in operator mode.
    let system_jwt = nats_jwt(
        &operator,
        &system.public_key(),
        "SYS",
        serde_json::json!({"type": "account", "version": 2}),
        None,
    );
    let nats = NatsServer::start_with(ServerOptions {
        extra_config: format!(
            "operator: \"{operator_jwt}\"\nsystem_account: {sys}\nresolver: MEMORY\n\
             resolver_preload: {{\n  {acc}: \"{account_jwt}\"\n  {sys}: \"{system_jwt}\"\n}}\n",
            acc = account.public_key(),
            sys = system.public_key()
        ),
        ..ServerOptions::default()
    });
    (nats, account)
}

/// A creds file's text for a new user of `account`, valid until `exp` if
/// given, and the user's seed.
fn user_creds(account: &nkeys::KeyPair, name: &str, exp: Option<u64>) -> (String, String) {
    let user = nkeys::KeyPair::new_user();
    let jwt = nats_jwt(
        account,
        &user.public_key(),
        name,
        serde_json::json!({"type": "user", "version": 2, "pub": {}, "sub": {},
                           "subs": -1, "data": -1, "payload": -1}),
        exp,
    );
    let seed = user.seed().expect("seed");
    let text = format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    );
    (text, seed)
}

#[test]
fn nats_creds_file_authentication_works_and_the_seed_is_never_logged() {
    let (nats, account) = operator_mode_server();
    let (text, seed) = user_creds(&account, "waybill-user", None);
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("waybill.creds");
    std::fs::write(&creds, text).expect("creds");
    let served = Served::start(
        waybill()
            .env("WAYBILL_LOG", "debug")
            .args([
                "serve",
                "--nats",
                &nats.url(),
                "--insecure-dev",
                "--no-checkpoints",
            ])
            .arg("--nats-creds")
            .arg(&creds)
            .arg("--data-dir")
            .arg(dir.path().join("data")),
    );
    served.apply_example();
    let log = served.kill_and_log();
    assert_clean("waybill serve's log", &log, &[&seed]);
    // Without the creds file the server refuses the connection.
    let out = waybill()
        .args(["verify", "--nats", &nats.url()])
        .output()
        .expect("verify");
    assert!(!out.status.success(), "no credentials is refused");
}

/// A user JWT that expires: nats-server closes the connection when it
/// does, and the client reconnects with the creds file as it is then. A
/// renewed file is used, so the server keeps working without a restart
/// (async-nats alone would sign with the JWT it read at start, refused for
/// ever after the expiry).
#[test]
fn a_renewed_creds_file_is_used_when_the_old_jwt_expires() {
    let (nats, account) = operator_mode_server();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let (expiring, old_seed) = user_creds(&account, "waybill-until-soon", Some(now + 4));
    let (renewed, new_seed) = user_creds(&account, "waybill-renewed", None);
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("waybill.creds");
    std::fs::write(&creds, expiring).expect("creds");
    let served = Served::start(
        waybill()
            .env("WAYBILL_LOG", "info")
            .args(["serve", "--nats", &nats.url(), "--insecure-dev"])
            .args(["--no-checkpoints", "--no-reactors", "--nats-creds"])
            .arg(&creds)
            .arg("--data-dir")
            .arg(dir.path().join("data")),
    );
    served.apply_example();
    std::fs::write(&creds, renewed).expect("renew");
    // The server ends the expiring user's connection; the client reconnects.
    served.wait_for_log("disconnected");
    let discover = || served.discover_cli("9");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut out = discover();
    while !out.status.success() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        out = discover();
    }
    assert!(
        out.status.success(),
        "after the expiry: {}\n{}",
        stderr(&out),
        served.log_so_far()
    );
    let log = served.kill_and_log();
    assert_clean("waybill serve's log", &log, &[&old_seed, &new_seed]);
}
