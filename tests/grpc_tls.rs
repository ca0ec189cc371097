//! gRPC over TLS and mutual TLS: with the server's CA and a client
//! certificate the CLI works; without the client certificate, without the CA,
//! or in plaintext it is refused, and nothing is appended.

mod common;

use common::{run, stderr, stdout, waybill, Served};

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
    for (what, server, extra) in [
        ("no client certificate", https.as_str(), &client[..2]),
        ("no CA for the server", https.as_str(), &client[2..]),
        ("plaintext", plain.as_str(), &client[..0]),
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
