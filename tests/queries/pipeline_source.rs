//! A pipeline applied from a git work tree: `waybill apply` records the
//! commit it was applied at (with `-dirty` when the file differs from it),
//! and the history says so next to the file's name; `--revision` overrides.

use std::path::Path;
use std::process::Command;

use crate::common::{run, stderr, stdout, Served, EXAMPLE_PIPELINE};

/// `git ARGS` in `dir`, which must succeed; its output, trimmed.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
        .args(args)
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

#[test]
fn apply_records_the_commit_of_the_pipeline_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("pipelines");
    std::fs::create_dir_all(repo.join("shop")).expect("mkdir");
    git(&repo, &["init", "-q"]);
    let file = repo.join("shop/pipeline.yaml");
    let served = Served::insecure_dev(&dir.path().join("data"));
    let endpoint = served.endpoint();
    let path = file.to_str().expect("utf-8 path");
    // The last PipelineConfigured entry's reason, after applying with `extra`.
    let apply = |extra: &[&str]| {
        let mut args = vec![
            "apply", "-f", path, "--output", "json", "--server", &endpoint,
        ];
        args.extend(extra);
        let out = run(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let applied: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
        // The history as of the apply at least: the projection may lag.
        let position = applied["position"].as_u64().expect("position").to_string();
        let out = run(&[
            "history",
            "-p",
            "shop",
            "--type",
            "PipelineConfigured",
            "--min-position",
            &position,
            "--output",
            "json",
            "--server",
            &endpoint,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let last = stdout(&out).lines().last().expect("an entry").to_string();
        let entry: serde_json::Value = serde_json::from_str(&last).expect("json");
        entry["reason"].as_str().expect("reason").to_string()
    };

    // Each apply changes the description: applying the definition in force
    // again appends nothing.
    let example = std::fs::read_to_string(EXAMPLE_PIPELINE).expect("example");
    let write = |n: u32| {
        let yaml = example.replacen("description: ", &format!("description: (take {n}) "), 1);
        std::fs::write(&file, yaml).expect("write");
    };

    // Not committed yet: HEAD does not exist, so no revision.
    write(1);
    assert_eq!(apply(&[]), path);
    write(2);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "shop pipeline"]);
    let commit = git(&repo, &["rev-parse", "HEAD"]);
    assert_eq!(apply(&[]), format!("{path} at {commit}"));

    // Changed since the commit: the commit, marked dirty.
    write(3);
    assert_eq!(apply(&[]), format!("{path} at {commit}-dirty"));
    // Said by hand, it wins; an empty one records none.
    write(4);
    assert_eq!(apply(&["--revision", "v1.2"]), format!("{path} at v1.2"));
    write(5);
    assert_eq!(apply(&["--revision", ""]), path);
    assert!(served.terminate().success());
}
