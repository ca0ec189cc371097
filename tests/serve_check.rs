//! `waybill serve --check`: the configuration is read and checked, what
//! `serve` would start with is printed, and nothing is bound, connected to
//! or written; a bad file is named with what is wrong.

mod common;

use common::{run, stderr, stdout};

fn fixture(file: &str) -> String {
    format!("{}/tests/fixtures/tls/{file}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_check_reads_everything_and_touches_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data_arg = data.to_str().expect("utf8");
    // A port in use: `serve` would refuse it, the check does not bind it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = taken.local_addr().expect("addr").to_string();

    let out = run(&[
        "serve",
        "--check",
        "--insecure-dev",
        "--data-dir",
        data_arg,
        "--listen",
        &listen,
        "--tls-cert",
        &fixture("server.pem"),
        "--tls-key",
        &fixture("server-key.pem"),
        "--tls-client-ca",
        &fixture("ca.pem"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout(&out);
    for expected in [
        "configuration OK",
        &listen,
        "(valid until 2126-11-05 03:38 UTC), client certificates required",
        "embedded, in",
        "commands,queries,reactors",
        "INSECURE DEV MODE",
        "signed with a key the first start makes in",
        "on SIGHUP, and within 30 s of a change to the auth or TLS files",
    ] {
        assert!(report.contains(expected), "{expected:?} in {report}");
    }
    assert!(!data.exists(), "the check wrote {}", data.display());

    // A signing key of its own, a NATS log: read, not connected to; the
    // password in the URL is not printed.
    let key = dir.path().join("signing.key");
    let out = run(&["keygen", "--out", key.to_str().expect("utf8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let public = std::fs::read_to_string(dir.path().join("signing.key.pub")).expect("pub");
    let out = run(&[
        "serve",
        "--check",
        "--nats",
        "nats://alice:s3cret@127.0.0.1:1",
        "--replicas",
        "3",
        "--signing-key",
        key.to_str().expect("utf8"),
        "--data-dir",
        data_arg,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout(&out);
    assert!(
        report.contains("NATS JetStream at nats://***@127.0.0.1:1, stream WAYBILL, subjects waybill.>, 3 replicas"),
        "{report}"
    );
    assert!(report.contains(public.trim()), "{report}");
    assert!(
        report.contains("give up at once if NATS cannot be reached"),
        "{report}"
    );
    assert!(report.contains("no credentials accepted"), "{report}");
    assert!(!report.contains("s3cret") && !stderr(&out).contains("s3cret"));
    assert!(!data.exists());
    // The key is its owner's alone; one that others can read is warned of.
    use std::os::unix::fs::PermissionsExt;
    let mode = |m: u32| std::fs::set_permissions(&key, std::fs::Permissions::from_mode(m));
    let meta = std::fs::metadata(&key).expect("key");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(
        !stderr(&out).contains("can be read by others"),
        "{}",
        stderr(&out)
    );
    mode(0o644).expect("chmod");
    let key_arg = key.to_str().expect("utf8");
    let out = run(&[
        "serve",
        "--check",
        "--signing-key",
        key_arg,
        "--data-dir",
        data_arg,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the checkpoint signing key can be read by others than its owner"),
        "{}",
        stderr(&out)
    );
    mode(0o600).expect("chmod");

    // Wrong files: each named, non-zero exit, nothing written.
    for (what, extra, expected) in [
        (
            "a key that is not the certificate's",
            vec![
                "--tls-cert".to_string(),
                fixture("server.pem"),
                "--tls-key".into(),
                fixture("client-key.pem"),
            ],
            "do not go together",
        ),
        (
            "an expired certificate",
            vec![
                "--tls-cert".to_string(),
                fixture("expired.pem"),
                "--tls-key".into(),
                fixture("expired-key.pem"),
            ],
            "expired on 2021-01-01 00:00 UTC",
        ),
        (
            "an unreadable NATS creds file",
            vec![
                "--nats".to_string(),
                "nats://127.0.0.1:1".into(),
                "--nats-creds".into(),
                dir.path().join("absent.creds").display().to_string(),
            ],
            "--nats-creds",
        ),
        (
            "a creds file that is not one",
            vec![
                "--nats".to_string(),
                "nats://127.0.0.1:1".into(),
                "--nats-creds".into(),
                fixture("ca.pem"),
            ],
            "is not a NATS credentials file",
        ),
        (
            "two ways to authenticate to NATS",
            vec![
                "--nats".to_string(),
                "nats://127.0.0.1:1".into(),
                "--nats-creds".into(),
                fixture("ca.pem"),
                "--nats-token".into(),
                "t0ken".into(),
            ],
            "cannot be combined",
        ),
        (
            "a missing auth config",
            vec![
                "--auth-config".to_string(),
                dir.path().join("absent.toml").display().to_string(),
            ],
            "absent.toml",
        ),
        (
            "a backup inside the data directory",
            vec!["--backup-dir".to_string(), format!("{data_arg}/backup")],
            "must be outside the data directory",
        ),
    ] {
        let mut args: Vec<String> = ["serve", "--check", "--data-dir", data_arg]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra);
        let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(!out.status.success(), "{what}: {}", stdout(&out));
        assert!(stderr(&out).contains(expected), "{what}: {}", stderr(&out));
        assert!(!stdout(&out).contains("configuration OK"), "{what}");
        assert!(!data.exists(), "{what}: wrote {}", data.display());
    }
}

/// The shipped embedded example configuration is complete and valid.
#[test]
fn the_example_config_checks() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/waybill.example.toml");
    // It names /etc/waybill/auth.toml, which this machine does not have.
    let out = run(&["--config", config, "serve", "--check"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/etc/waybill/auth.toml"),
        "{}",
        stderr(&out)
    );
    // With an auth config that exists (the flag wins over the file) it checks.
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = auth_config(dir.path());
    let out = run(&[
        "--config",
        config,
        "serve",
        "--check",
        "--auth-config",
        &auth,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("embedded, in /var/lib/waybill"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains(&format!("auth:           {auth}: 1 bearer token")));
}

/// An auth config (tokens file and one binding) in `dir`; returns its path.
fn auth_config(dir: &std::path::Path) -> String {
    let auth = dir.join("auth.toml");
    std::fs::write(
        &auth,
        "tokens_file = \"tokens.toml\"\n[[binding]]\nsubjects = [\"user:alice\"]\nroles = [\"admin\"]\n",
    )
    .expect("write");
    let tokens = dir.join("tokens.toml");
    let out = run(&[
        "token",
        "create",
        "--name",
        "alice",
        "--append-to",
        tokens.to_str().expect("utf8"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    auth.to_str().expect("utf8").to_string()
}

/// `auth_config` in the config file is the auth config `serve` starts with.
#[test]
fn the_auth_config_may_come_from_the_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = auth_config(dir.path());
    let config = dir.path().join("waybill.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &config,
        format!(
            "auth_config = \"{auth}\"\ndata_dir = \"{}\"\n",
            data.display()
        ),
    )
    .expect("write");
    let config = config.to_str().expect("utf8");
    let out = run(&["--config", config, "serve", "--check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "auth:           {auth}: 1 bearer token; 1 role binding"
        )),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("reload:         on SIGHUP"),
        "{}",
        stdout(&out)
    );
    // A file that is not there is named, and nothing is written.
    std::fs::write(
        dir.path().join("waybill.toml"),
        format!(
            "auth_config = \"{}/missing.toml\"\ndata_dir = \"{}\"\n",
            dir.path().display(),
            data.display()
        ),
    )
    .expect("write");
    let out = run(&["--config", config, "serve", "--check"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("missing.toml"), "{}", stderr(&out));
    assert!(!data.exists());
}

/// The auth config docs/operations.md shows, with the files it names in
/// place (the JWKS of the auth tests, an empty tokens file), passes the check.
#[test]
fn the_documented_auth_config_passes_the_check() {
    let root = env!("CARGO_MANIFEST_DIR");
    let doc = std::fs::read_to_string(format!("{root}/docs/operations.md")).expect("doc");
    let block: String = doc
        .split("### The auth config")
        .nth(1)
        .and_then(|s| s.split("```toml\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("the auth config block")
        .to_string();
    assert!(
        block.contains("[jwt]") && block.contains("[[binding]]"),
        "{block}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("auth.toml"), &block).expect("write");
    std::fs::write(dir.path().join("tokens.toml"), "").expect("write");
    std::fs::copy(
        format!("{root}/commands/tests/fixtures/auth/jwks.json"),
        dir.path().join("jwks.json"),
    )
    .expect("copy");
    let auth = dir.path().join("auth.toml");
    let data = dir.path().join("data");
    let out = run(&[
        "serve",
        "--check",
        "--auth-config",
        auth.to_str().expect("utf8"),
        "--data-dir",
        data.to_str().expect("utf8"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(": 0 bearer tokens, JWTs (")
            && stdout(&out).contains("; 1 role binding\n"),
        "{}",
        stdout(&out)
    );
}
