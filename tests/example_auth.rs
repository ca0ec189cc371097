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
    assert!(served.terminate().success());
}
