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
        .rsplit('+')
        .next()
        .expect("key material")
        .to_string();

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

/// A NATS JWT: `claims` issued (and signed) by `issuer` about `subject`.
fn nats_jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = serde_json::json!({
        "jti": format!("{}{}", name.to_uppercase(), "JTI"),
        "iat": 1_700_000_000u64,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let claims = b64.encode(claims.to_string());
    let signing_input = format!("{header}.{claims}");
    let signature = issuer.sign(signing_input.as_bytes()).expect("sign");
    format!("{signing_input}.{}", b64.encode(signature))
}

#[test]
fn nats_creds_file_authentication_works_and_the_seed_is_never_logged() {
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    let system = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
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
    );
    let account_jwt = nats_jwt(
        &operator,
        &account.public_key(),
        "waybill",
        serde_json::json!({"type": "account", "version": 2, "limits": unlimited}),
    );
    // JetStream needs a system account in operator mode.
    let system_jwt = nats_jwt(
        &operator,
        &system.public_key(),
        "SYS",
        serde_json::json!({"type": "account", "version": 2}),
    );
    let user_jwt = nats_jwt(
        &account,
        &user.public_key(),
        "waybill-user",
        serde_json::json!({"type": "user", "version": 2, "pub": {}, "sub": {},
                           "subs": -1, "data": -1, "payload": -1}),
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
    let seed = user.seed().expect("seed");
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("waybill.creds");
    std::fs::write(
        &creds,
        format!(
            "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        ),
    )
    .expect("creds");
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
