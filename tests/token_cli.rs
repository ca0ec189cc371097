//! `waybill token create --append-to`, `revoke` and `list`: every file they
//! leave is one the server loads; a name used twice or reserved is refused
//! with the file left as it was, `--replace` rotates a token in place and
//! `revoke` takes one out, keeping the rest of the file as written.

mod common;

use std::path::Path;

use common::{run, stderr, stdout};
use sha2::{Digest, Sha256};

fn create(file: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec![
        "token",
        "create",
        "--append-to",
        file.to_str().expect("utf8"),
    ];
    all.extend(args);
    run(&all)
}

/// `waybill token ARGS`.
fn token(args: &[&str]) -> std::process::Output {
    let mut all = vec!["token"];
    all.extend(args);
    run(&all)
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// `serve --check` with an auth config naming `tokens`: what the server
/// says of the file, without starting.
fn server_accepts(dir: &Path, tokens: &Path) -> bool {
    let auth = dir.join("auth.toml");
    std::fs::write(&auth, format!("tokens_file = {tokens:?}\n")).expect("write");
    let data = dir.join("data");
    let auth = auth.to_str().expect("utf8");
    let data = data.to_str().expect("utf8");
    let out = run(&[
        "serve",
        "--check",
        "--auth-config",
        auth,
        "--data-dir",
        data,
    ]);
    out.status.success()
}

#[test]
fn tokens_files_stay_loadable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("tokens.toml");

    let first = create(&file, &["--name", "alice"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let alice = stdout(&first);
    let text = std::fs::read_to_string(&file).expect("read");
    assert!(text.contains(&hash(&alice)) && !text.contains(alice.trim()));
    assert!(server_accepts(dir.path(), &file));

    // Refused, and the file is as it was: a second token of that name (the
    // server refuses a name used twice), a service's name.
    for (args, said) in [
        (
            &["--name", "alice"][..],
            "already has a token named \"alice\"",
        ),
        (&["--name", "svc:deployer"][..], "reserved for services"),
        (
            &["--name", "bob", "--replace"][..],
            "no token named \"bob\"",
        ),
    ] {
        let out = create(&file, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(said), "{args:?}: {}", stderr(&out));
        assert_eq!(std::fs::read_to_string(&file).expect("read"), text);
    }

    // Rotation keeps what else the file says: a comment, another entry.
    let annotated = format!("# tokens of the shop team\n{text}");
    std::fs::write(&file, &annotated).expect("write");
    let bob = create(&file, &["--name", "bob", "--groups", "ops"]);
    assert!(bob.status.success(), "{}", stderr(&bob));
    let rotated = create(
        &file,
        &["--name", "alice", "--replace", "--groups", "release,ops"],
    );
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let new = std::fs::read_to_string(&file).expect("read");
    assert!(new.starts_with("# tokens of the shop team\n"), "{new}");
    assert!(!new.contains(&hash(&alice)), "{new}");
    assert!(new.contains(&hash(&stdout(&rotated))), "{new}");
    assert!(new.contains(&hash(&stdout(&bob))), "{new}");
    assert!(new.contains(r#"groups = ["release", "ops"]"#), "{new}");
    assert!(server_accepts(dir.path(), &file));

    // `list` shows names and groups, never a hash.
    let listed = token(&["list", "--file", file.to_str().expect("utf8")]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let lines: Vec<String> = stdout(&listed).lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        ["NAME   GROUPS", "alice  release, ops", "bob    ops"]
    );
    let json = token(&["list", "--file", file.to_str().expect("utf8"), "-o", "json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&json)).expect("json");
    assert_eq!(json["tokens"][1]["name"], "bob");
    assert_eq!(json["tokens"][0]["groups"][1], "ops");
    assert!(!stdout(&listed).contains(&hash(&stdout(&bob))));

    // `revoke`: a misspelled name is refused (the file stays) with a hint;
    // the first entry out, the comment and the other entry stay.
    let misspelt = token(&[
        "revoke",
        "--name",
        "alcie",
        "--file",
        file.to_str().expect("utf8"),
    ]);
    assert_eq!(misspelt.status.code(), Some(2));
    assert!(
        stderr(&misspelt).contains("has no token named \"alcie\" (did you mean \"alice\"?)"),
        "{}",
        stderr(&misspelt)
    );
    assert_eq!(std::fs::read_to_string(&file).expect("read"), new);
    let revoked = token(&[
        "revoke",
        "--name",
        "alice",
        "--file",
        file.to_str().expect("utf8"),
    ]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert!(stderr(&revoked).contains("stops working when the server reloads"));
    let left = std::fs::read_to_string(&file).expect("read");
    assert!(
        left.starts_with("# tokens of the shop team\n[[token]]\nname = \"bob\""),
        "{left}"
    );
    assert!(
        !left.contains("alice") && !left.contains(&hash(&stdout(&rotated))),
        "{left}"
    );
    assert!(left.contains(&hash(&stdout(&bob))), "{left}");
    assert!(server_accepts(dir.path(), &file));
    let revoked = token(&[
        "revoke",
        "--name",
        "bob",
        "--file",
        file.to_str().expect("utf8"),
    ]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert!(server_accepts(dir.path(), &file));
    let left = std::fs::read_to_string(&file).expect("read");
    assert_eq!(left.trim(), "# tokens of the shop team", "{left}");
    let listed = token(&["list", "--file", file.to_str().expect("utf8")]);
    assert_eq!(stdout(&listed), "(no tokens)\n");

    // A file the server would refuse is not made worse, and says why.
    let broken = dir.path().join("broken.toml");
    let bad = "[[token]]\nname = \"x\"\nsha256 = \"not hex\"\n";
    std::fs::write(&broken, bad).expect("write");
    let out = create(&broken, &["--name", "carol"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("sha256 must be 64 hex digits"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&broken).expect("read"), bad);
    for args in [
        &["revoke", "--name", "x", "--file"][..],
        &["list", "--file"][..],
    ] {
        let mut args = args.to_vec();
        args.push(broken.to_str().expect("utf8"));
        let out = token(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains("sha256 must be 64 hex digits"),
            "{args:?}"
        );
        assert_eq!(std::fs::read_to_string(&broken).expect("read"), bad);
    }

    // Nothing is left beside the files.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["auth.toml", "broken.toml", "tokens.toml"]);
}
