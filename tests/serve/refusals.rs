//! Refused with a clear message and exit code 2: a client whose server
//! cannot be reached (where it tried and why), and a bad configuration
//! (unknown key, unreachable NATS, bad setting, zero budget, port in use),
//! before anything is created; and a second server on a data directory in
//! use, before anything is created in it.

use waybill_ledger::testing::NatsServer;

use crate::common::{run, stderr, waybill, Served};

/// A client that cannot reach its server says where it tried and why (the
/// operating system's reason, not only tonic's "transport error"), exits 2,
/// and takes `HOST:PORT` as well as a URL.
#[test]
fn an_unreachable_server_is_named_with_the_reason() {
    // A port that was free a moment ago: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    for server in [
        format!("127.0.0.1:{port}"),
        format!("http://127.0.0.1:{port}"),
    ] {
        let out = run(&["status", "-p", "shop", "--server", &server]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "cannot reach the Waybill server at http://127.0.0.1:{port}"
            )) && err.to_lowercase().contains("connection refused"),
            "{err}"
        );
    }
}

#[test]
fn bad_configuration_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "colour = \"blue\"\n").expect("write");
    let out = run(&["--config", config.to_str().expect("utf8"), "serve"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("bad.toml") && err.contains("colour"), "{err}");

    // In the default data dir (./waybill-data), nothing is written either:
    // no signing key for a server that never started.
    let out = waybill()
        .current_dir(dir.path())
        .args([
            "serve",
            "--nats",
            "nats://127.0.0.1:1",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .expect("serve");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot connect to NATS"),
        "{}",
        stderr(&out)
    );
    assert!(
        !dir.path().join("waybill-data").exists(),
        "a server that could not reach NATS created its data dir"
    );

    // A bad setting is named even when the port is in use too.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = taken.local_addr().expect("addr").to_string();
    let out = run(&[
        "serve",
        "--listen",
        &listen,
        "--nats",
        "nats://x:4222",
        "--replicas",
        "7",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("replicas"), "{}", stderr(&out));

    // A budget of no events, from the config file (the flag's parser
    // refuses it too), is refused before anything is opened.
    let config = dir.path().join("zero.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &config,
        format!(
            "command_cache_records = 0\ndata_dir = {:?}\n",
            data.to_str().expect("utf8")
        ),
    )
    .expect("write");
    let out = run(&["--config", config.to_str().expect("utf8"), "serve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("command_cache_records must be at least 1"),
        "{}",
        stderr(&out)
    );
    assert!(
        !data.exists(),
        "nothing is created for a refused configuration"
    );

    // A port in use: refused before the data dir or a signing key is made.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let data_arg = data.to_str().expect("utf8");
    let out = run(&["serve", "--listen", &addr, "--data-dir", data_arg]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("cannot listen on {addr}")),
        "{}",
        stderr(&out)
    );
    assert!(!data.exists(), "nothing is created when the port is taken");
}

/// A data directory serves one server at a time: a second one, on the
/// embedded log or on NATS, is refused before it creates anything beside
/// the first one's stores (it used to create an empty embedded log there
/// before the command state store refused it); once the first stops, the
/// directory takes a server again.
#[test]
fn a_data_directory_in_use_is_refused_before_anything_is_created() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf8").to_string();
    let on_nats = || {
        Served::start(
            waybill()
                .args(["serve", "--insecure-dev", "--no-reactors"])
                .args(["--nats", &nats.url(), "--data-dir", &data]),
        )
    };
    let first = on_nats();
    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(&data)
            .expect("data dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = listing();
    for log in [&[][..], &["--nats", &nats.url()][..]] {
        let mut args = vec!["serve", "--insecure-dev", "--listen", "127.0.0.1:0"];
        args.extend(["--data-dir", &data]);
        args.extend(log);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{log:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!(
                "another waybill serve uses the data directory {data}"
            )),
            "{}",
            stderr(&out)
        );
        assert_eq!(listing(), before, "{log:?}: nothing created");
    }
    assert!(first.terminate().success());
    let again = on_nats();
    assert!(again.terminate().success());
}
