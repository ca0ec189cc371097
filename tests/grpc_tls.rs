//! gRPC over TLS and mutual TLS: with the server's CA and a client
//! certificate the CLI works; without the client certificate, without the CA,
//! or in plaintext it is refused, and nothing is appended.

mod common;

use common::{run, scrape, stderr, stdout, waybill, Served};

fn tls(file: &str) -> String {
    format!("{}/tests/fixtures/tls/{file}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn mutual_tls_admits_only_clients_with_a_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::start(
        waybill()
            .args(["serve", "--insecure-dev", "--no-checkpoints", "--data-dir"])
            .arg(dir.path())
            .args([
                "--tls-cert",
                &tls("server.pem"),
                "--tls-key",
                &tls("server-key.pem"),
            ])
            .args(["--tls-client-ca", &tls("ca.pem")]),
    );
    let https = format!("https://{}", served.addr);
    let plain = served.endpoint();
    let pipeline = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples/pipeline.yaml");
    let client = [
        "--ca".to_string(),
        tls("ca.pem"),
        "--cert".into(),
        tls("client.pem"),
        "--key".into(),
        tls("client-key.pem"),
    ];
    let attempt = |server: &str, extra: &[String]| {
        let mut args: Vec<String> = [
            "status", "-p", "shop", "--output", "json", "--server", server,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend_from_slice(extra);
        run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };

    // Refused: no client certificate, an untrusted server, plaintext.
    for (what, server, extra, hint) in [
        (
            "no client certificate",
            https.as_str(),
            &client[..2],
            Some("--cert and --key"),
        ),
        (
            "no CA for the server",
            https.as_str(),
            &client[2..],
            Some("give --ca"),
        ),
        ("plaintext", plain.as_str(), &client[..0], None),
    ] {
        let out = attempt(server, extra);
        assert!(!out.status.success(), "{what}: {}", stdout(&out));
        // Refused at the handshake (2: unreachable) or at the first call (1).
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "{what}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        // What to do about it.
        if let Some(hint) = hint {
            let said = stdout(&out) + &stderr(&out);
            assert!(said.contains(hint), "{what}: {said}");
        }
    }

    // Admitted with both: apply, then read it back.
    let mut apply: Vec<String> = ["apply", "-f", pipeline, "--server", &https]
        .iter()
        .map(|s| s.to_string())
        .collect();
    apply.extend_from_slice(&client);
    let out = run(&apply.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("position 1"), "{}", stdout(&out));
    // HOST:PORT with TLS settings means https.
    let out = attempt(&served.addr.to_string(), &client);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("\"project\":\"shop\""),
        "{}",
        stdout(&out)
    );
}

/// `waybill serve` over TLS with the certificate and key at `cert` and
/// `key`, checking them for changes every `reload_check_secs`.
fn serve_tls(
    dir: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
    reload_check_secs: &str,
    extra: &[&str],
) -> Served {
    Served::start(
        waybill()
            .env("WAYBILL_LOG", "info")
            .args(["serve", "--insecure-dev", "--no-checkpoints"])
            .args(["--reload-check-secs", reload_check_secs, "--data-dir"])
            .arg(dir.join("data"))
            .args(extra)
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key),
    )
}

/// Trusting only the CA in the fixture `ca`, does a new connection to
/// `https` get through?
fn trusted(https: &str, ca: &str) -> bool {
    run(&["projects", "--server", https, "--ca", &tls(ca)])
        .status
        .success()
}

/// A rotated certificate (cert-manager, an ACME client) is put in place and
/// the server is sent SIGHUP: new connections get the new certificate, no
/// restart. A broken rotation (a key that is not the certificate's) is
/// refused, and the certificate in force stays.
#[test]
fn a_sighup_serves_a_rotated_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let install = |c: &str, k: &str| {
        std::fs::copy(tls(c), &cert).expect("copy the certificate");
        std::fs::copy(tls(k), &key).expect("copy the key");
    };
    install("server.pem", "server-key.pem");
    let served = serve_tls(dir.path(), &cert, &key, "0", &[]);
    let https = format!("https://{}", served.addr);
    let trusted_by = |ca: &str| trusted(&https, ca);
    // A client that connects and never says hello holds up nobody.
    let _silent = std::net::TcpStream::connect(served.addr).expect("connect");
    assert!(trusted_by("ca.pem"));
    assert!(
        !trusted_by("ca2.pem"),
        "a certificate the client cannot trust"
    );

    // The new files alone change nothing until the signal.
    install("server2.pem", "server2-key.pem");
    assert!(trusted_by("ca.pem"), "the old certificate until SIGHUP");
    served.signal("-HUP");
    served.wait_for_log("TLS certificate reloaded");
    assert!(trusted_by("ca2.pem"), "{}", served.log_so_far());
    assert!(!trusted_by("ca.pem"), "the old certificate after SIGHUP");

    // A half-done rotation: the old certificate with the new key.
    std::fs::copy(tls("server.pem"), &cert).expect("copy the certificate");
    served.signal("-HUP");
    served.wait_for_log("cannot reload the TLS files");
    assert!(served.log_so_far().contains("do not go together"));
    assert!(trusted_by("ca2.pem"), "the certificate in force stays");
    assert!(!trusted_by("ca.pem"));
    assert!(served.terminate().success(), "a clean stop with TLS");
}

/// The TLS files are checked for changes (here every second): a renewed
/// certificate written over the old one is served without a signal.
#[test]
fn a_renewed_certificate_is_served_without_a_signal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::copy(tls("server.pem"), &cert).expect("copy the certificate");
    std::fs::copy(tls("server-key.pem"), &key).expect("copy the key");
    let served = serve_tls(
        dir.path(),
        &cert,
        &key,
        "1",
        &["--metrics-listen", "127.0.0.1:0"],
    );
    let metrics = served.metrics_port();
    let https = format!("https://{}", served.addr);
    let trusted_by = |ca: &str| trusted(&https, ca);
    assert!(trusted_by("ca.pem"));
    assert!(!trusted_by("ca2.pem"));
    // When the served certificate ends (server.pem: 2126-11-05 03:38:40 UTC).
    let expiry = |secs: u64| format!("waybill_tls_cert_expiry_timestamp_seconds {secs}");
    assert!(
        scrape(metrics).contains(&expiry(4_949_523_520)),
        "{}",
        scrape(metrics)
    );
    // The key first, as a renewal may: until the certificate follows, the
    // pair is refused and the old one stays.
    std::fs::copy(tls("server2-key.pem"), &key).expect("copy the key");
    served.wait_for_log("TLS files changed: cannot reload the TLS files");
    assert!(trusted_by("ca.pem"));
    // What an alert watches.
    let gauge = |v: u8| format!("waybill_config_reload_ok{{what=\"tls\"}} {v}");
    assert!(scrape(metrics).contains(&gauge(0)), "{}", scrape(metrics));
    std::fs::copy(tls("server2.pem"), &cert).expect("copy the certificate");
    served.wait_for_log("TLS files changed: TLS certificate reloaded");
    assert!(trusted_by("ca2.pem"), "{}", served.log_so_far());
    assert!(!trusted_by("ca.pem"));
    assert!(scrape(metrics).contains(&gauge(1)), "{}", scrape(metrics));
    // server2.pem: 2126-11-06 19:01:58 UTC.
    assert!(
        scrape(metrics).contains(&expiry(4_949_665_318)),
        "{}",
        scrape(metrics)
    );
    assert!(served.terminate().success());
}
