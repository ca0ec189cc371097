//! The shipped `deploy/examples/auth.toml` works as documented in the README:
//! tokens made with `waybill token create --append-to`, roles by binding.

mod common;

use common::{waybill, Served};

fn token(dir: &std::path::Path, name: &str, groups: &str) -> String {
    let mut cmd = waybill();
    cmd.args(["token", "create", "--name", name, "--append-to"])
        .arg(dir.join("tokens.toml"));
    if !groups.is_empty() {
        cmd.args(["--groups", groups]);
    }
    let out = cmd.output().expect("token create");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

#[test]
fn example_roles_admit_and_refuse_as_documented() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples/auth.toml"),
        dir.path().join("auth.toml"),
    )
    .expect("copy");
    let alice = token(dir.path(), "alice", "");
    let ci = token(dir.path(), "ci", "");
    let bob = token(dir.path(), "bob", "");
    let tokens = std::fs::read_to_string(dir.path().join("tokens.toml")).expect("tokens");
    assert!(
        !tokens.contains(&alice) && !tokens.contains(&ci),
        "only hashes are stored"
    );

    let served = Served::start(
        waybill()
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--auth-config")
            .arg(dir.path().join("auth.toml")),
    );
    let apply = |token: &str| {
        waybill()
            .args([
                "apply",
                "-f",
                concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples/pipeline.yaml"),
            ])
            .args(["--server", &served.endpoint(), "--token", token])
            .output()
            .expect("apply")
    };
    let denied = apply(&ci);
    assert_eq!(denied.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("PermissionDenied"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
    let unknown = apply("not-a-token");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("Unauthenticated"));
    assert!(
        !String::from_utf8_lossy(&unknown.stderr).contains("not-a-token"),
        "credentials are never echoed"
    );
    let ok = apply(&alice);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // `waybill projects` lists what the caller may view: CI is bound to
    // shop only, Alice to every project.
    let web = dir.path().join("web.yaml");
    let pipeline = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/examples/pipeline.yaml"
    ))
    .expect("pipeline");
    std::fs::write(&web, pipeline.replace("project: shop", "project: web")).expect("write");
    let out = waybill()
        .args(["apply", "-f"])
        .arg(&web)
        .args([
            "--server",
            &served.endpoint(),
            "--token",
            &alice,
            "--output",
            "json",
        ])
        .output()
        .expect("apply web");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let applied: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let at = applied["position"].as_u64().expect("position").to_string();
    let projects = |token: &str| {
        let out = waybill()
            .args(["projects", "--min-position", &at, "--output", "json"])
            .args(["--server", &served.endpoint(), "--token", token])
            .output()
            .expect("projects");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        v["projects"]
            .as_array()
            .expect("projects")
            .iter()
            .map(|p| p["project"].as_str().expect("name").to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(projects(&alice), ["shop", "web"]);
    assert_eq!(projects(&ci), ["shop"]);
    // Without -p, a read verb takes the only project the caller may view,
    // and asks for one when there are several.
    let status = |token: &str| {
        waybill()
            .args(["status", "--min-position", &at])
            .args(["--server", &served.endpoint(), "--token", token])
            .output()
            .expect("status")
    };
    let one = status(&ci);
    assert!(
        one.status.success(),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    assert!(String::from_utf8_lossy(&one.stdout).contains("project shop: 3 stages"));
    let several = status(&alice);
    assert_eq!(several.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&several.stderr).contains("you may view shop, web"),
        "{}",
        String::from_utf8_lossy(&several.stderr)
    );
    // The history is the exception: without -p it is every project's the
    // caller may view, unless a filter names something of one project.
    let history = |token: &str, extra: &[&str]| {
        let out = waybill()
            .args(["history", "--min-position", &at, "--output", "json"])
            .args(extra)
            .args(["--server", &served.endpoint(), "--token", token])
            .output()
            .expect("history");
        let projects: std::collections::BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|e| e["project"].as_str().map(str::to_string))
            .collect();
        (out.status.code(), projects)
    };
    let (code, seen) = history(&alice, &[]);
    assert_eq!(code, Some(0));
    assert!(seen.contains("shop") && seen.contains("web"), "{seen:?}");
    assert_eq!(history(&ci, &[]), (Some(0), ["shop".to_string()].into()));
    assert_eq!(history(&alice, &["-s", "dev"]).0, Some(2));
    let unknown = waybill()
        .args([
            "projects",
            "--server",
            &served.endpoint(),
            "--token",
            "not-a-token",
        ])
        .output()
        .expect("projects");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("Unauthenticated"));

    // Bob approves prod only: he may read the project he approves in, and
    // `pending` (every project) answers him, as it does CI, bound to one
    // project: calls about every project keep to what the caller may view.
    let cli = |token: &str, args: &[&str]| {
        let out = waybill()
            .args(args)
            .args(["--min-position", &at])
            .args(["--server", &served.endpoint(), "--token", token])
            .output()
            .expect("cli");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(cli(&bob, &["status", "-p", "shop"]).contains("project shop: 3 stages"));
    assert!(cli(&bob, &["promotions", "-p", "shop"]).contains("0 promotions"));
    // A misspelled project: Alice, who may view every project, is told the
    // one she meant; Bob, who may view only shop, is told nothing of others.
    let misspelled = |token: &str| {
        let out = waybill()
            .args(["status", "-p", "shp", "--server", &served.endpoint()])
            .args(["--token", token])
            .output()
            .expect("status");
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let said = misspelled(&alice);
    assert!(
        said.contains("no project \"shp\" (did you mean \"shop\"?)"),
        "{said}"
    );
    let said = misspelled(&bob);
    assert!(
        said.contains("PermissionDenied") && !said.contains("did you mean"),
        "{said}"
    );
    // The same for a command verb, which the server refuses as a project
    // without a pipeline.
    let promote = waybill()
        .args(["promote", "-p", "shp", "-s", "dev", "--newest"])
        .args(["--server", &served.endpoint(), "--token", &alice])
        .output()
        .expect("promote");
    let said = String::from_utf8_lossy(&promote.stderr);
    assert_eq!(promote.status.code(), Some(1), "{said}");
    assert!(
        said.contains("project \"shp\" has no pipeline; apply one first (did you mean \"shop\"?)"),
        "{said}"
    );
    // A promotion the project does not have (mistyped, or its start only):
    // Bob, who approves in prod and may list the promotions, is told it
    // does not exist, not that he lacks the approver role for the project.
    let approve = waybill()
        .args(["approve", "-p", "shop", "--promotion", "prm-0123456789"])
        .args(["--server", &served.endpoint(), "--token", &bob])
        .output()
        .expect("approve");
    let said = String::from_utf8_lossy(&approve.stderr);
    assert_eq!(approve.status.code(), Some(1), "{said}");
    assert!(
        said.contains("NotFound") && said.contains("\"prm-0123456789\" not found"),
        "{said}"
    );
    // The token from a file (not on the command line, where `ps` shows it).
    let token_file = tempfile::NamedTempFile::new().expect("token file");
    std::fs::write(token_file.path(), format!("{bob}\n")).expect("write the token");
    let out = waybill()
        .args(["status", "-p", "shop", "--server", &served.endpoint()])
        .env("WAYBILL_TOKEN_FILE", token_file.path())
        .output()
        .expect("cli");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("project shop: 3 stages"));
    for who in [&bob, &ci] {
        assert!(cli(who, &["pending"]).contains("nothing waits for your approval"));
    }
    let discovered = waybill()
        .args([
            "discover",
            "-p",
            "shop",
            "-w",
            "images",
            "--image",
            "ghcr.io/acme/shop:1",
        ])
        .args([
            "--server",
            &served.endpoint(),
            "--token",
            &ci,
            "--output",
            "json",
        ])
        .output()
        .expect("discover");
    let discovered: serde_json::Value = serde_json::from_slice(&discovered.stdout).expect("json");
    let discovered = discovered["position"].as_u64().expect("position");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (history, watched) = runtime.block_on(async {
        use futures::StreamExt;
        use waybill_proto::v1 as pb;
        let mut q = pb::query_service_client::QueryServiceClient::connect(served.endpoint())
            .await
            .expect("connect");
        let mut history_as = async |token: &str| -> Vec<(String, u64)> {
            q.history(common::with_token(
                Some(token),
                pb::HistoryRequest {
                    min_position: discovered,
                    ..Default::default()
                },
            ))
            .await
            .expect("history of every project")
            .into_inner()
            .map(|e| {
                let e = e.expect("entry");
                (e.project, e.position)
            })
            .collect()
            .await
        };
        // Alice views every project: all of it.
        let all = history_as(&alice).await;
        assert!(all.iter().any(|(p, _)| p == "web"), "{all:?}");
        let history = history_as(&ci).await;
        let mut watch = q
            .watch(common::with_token(
                Some(&ci),
                pb::WatchRequest {
                    project: String::new(),
                    from_position: 1,
                    ..Default::default()
                },
            ))
            .await
            .expect("watch every project")
            .into_inner();
        let mut watched = Vec::new();
        while watched.last().is_none_or(|(_, p)| *p < discovered) {
            let e = tokio::time::timeout(std::time::Duration::from_secs(10), watch.next())
                .await
                .expect("an entry in time")
                .expect("entry")
                .expect("ok");
            watched.push((e.project, e.position));
        }
        (history, watched)
    });
    for entries in [&history, &watched] {
        assert!(entries.iter().all(|(p, _)| p == "shop"), "{entries:?}");
        assert!(entries.iter().any(|(_, p)| *p == discovered), "{entries:?}");
    }
    assert!(served.terminate().success());
}

/// SIGHUP reads the auth config again: a token revoked or added, a binding
/// added, without a restart; a broken config is refused and the one in force
/// stays. Without `--auth-config`, SIGHUP does not end the server.
#[test]
fn a_sighup_puts_a_new_auth_config_in_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (auth, example) = example_auth(dir.path());
    let alice = token(dir.path(), "alice", "");
    let served = serve_with_auth(dir.path(), &auth, "0");
    let endpoint = served.endpoint();
    let status = |token: &str| status_at(&endpoint, Some(token));
    let admitted = |token: &str| status(token).status.success();
    let out = waybill()
        .args([
            "apply",
            "-f",
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples/pipeline.yaml"),
        ])
        .args(["--server", &served.endpoint(), "--token", &alice])
        .output()
        .expect("apply");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Dave's token is made after the start, in a new tokens file without
    // Alice's, with a binding of his own: nothing changes until SIGHUP.
    let mut cmd = waybill();
    cmd.args(["token", "create", "--name", "dave", "--append-to"])
        .arg(dir.path().join("tokens-2.toml"));
    let dave = String::from_utf8(cmd.output().expect("token").stdout)
        .expect("utf8")
        .trim()
        .to_string();
    std::fs::write(
        &auth,
        example.replace("tokens.toml", "tokens-2.toml")
            + "\n[[binding]]\nsubjects = [\"user:dave\"]\nroles = [\"viewer\"]\n",
    )
    .expect("rewrite");
    assert!(admitted(&alice));
    let refused = status(&dave);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Unauthenticated"));

    served.signal("-HUP");
    served.wait_for_log("auth config reloaded");
    assert!(
        admitted(&dave),
        "{}",
        String::from_utf8_lossy(&status(&dave).stderr)
    );
    assert!(String::from_utf8_lossy(&status(&alice).stderr).contains("Unauthenticated"));

    // A broken config changes nothing.
    std::fs::write(&auth, "colour = \"blue\"\n").expect("break");
    served.signal("-HUP");
    served.wait_for_log("the previous one stays in force");
    assert!(admitted(&dave));
    assert!(served.terminate().success());

    // No --auth-config: SIGHUP is logged, and the server goes on.
    let served = Served::insecure_dev(&dir.path().join("data"));
    served.signal("-HUP");
    served.wait_for_log("no --auth-config and no TLS files to read again");
    assert!(status_at(&served.endpoint(), None).status.success());
    assert!(served.terminate().success());
}

/// The example auth config, written into `dir` (its tokens file is
/// `dir/tokens.toml`); its path and text.
fn example_auth(dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let auth = dir.join("auth.toml");
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/examples/auth.toml"
    ))
    .expect("example");
    std::fs::write(&auth, &example).expect("write");
    (auth, example)
}

/// `waybill serve` with `auth` (logging at info), checking the files for
/// changes every `reload_check_secs`.
fn serve_with_auth(
    dir: &std::path::Path,
    auth: &std::path::Path,
    reload_check_secs: &str,
) -> Served {
    Served::start(
        waybill()
            .env("WAYBILL_LOG", "info")
            .args([
                "serve",
                "--no-reactors",
                "--reload-check-secs",
                reload_check_secs,
            ])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--auth-config")
            .arg(auth),
    )
}

/// `waybill status -p shop` against `endpoint`, with `token` if given.
fn status_at(endpoint: &str, token: Option<&str>) -> std::process::Output {
    let mut cmd = waybill();
    cmd.args(["status", "-p", "shop", "--server", endpoint]);
    if let Some(token) = token {
        cmd.args(["--token", token]);
    }
    cmd.output().expect("status")
}

/// The auth config's files are checked for changes (here every second):
/// a token added to the tokens file is admitted without a signal, as a
/// Kubernetes Secret update would need; a broken config changes nothing.
#[test]
fn changed_auth_files_are_put_in_force_without_a_signal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (auth, _) = example_auth(dir.path());
    token(dir.path(), "alice", "");
    let served = serve_with_auth(dir.path(), &auth, "1");
    let endpoint = served.endpoint();
    // A token made after the start: its name needs no binding to be
    // authenticated (`status` of an unknown project is then refused for
    // the role, not for the token).
    let bob = token(dir.path(), "bob", "");
    served.wait_for_log("auth files changed: auth config reloaded");
    let out = status_at(&endpoint, Some(&bob));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("Unauthenticated"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::write(&auth, "colour = \"blue\"\n").expect("break");
    served.wait_for_log("auth files changed: cannot reload the auth config");
    let out = status_at(&endpoint, Some(&bob));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("Unauthenticated"));
    assert!(served.terminate().success());
}
