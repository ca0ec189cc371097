//! `waybill pipeline` prints the definition in force as a file that applies
//! as the same definition; `waybill apply --dry-run` says what a file would
//! change against it, or why the server would refuse it, and appends
//! nothing either way.

mod common;

use common::{run, stderr, stdout, Served, EXAMPLE_PIPELINE};

/// How many events the log of project shop holds (from `waybill projects`).
fn events(served: &Served) -> u64 {
    let out = run(&[
        "projects",
        "--output",
        "json",
        "--server",
        &served.endpoint(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    doc["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .find(|p| p["project"] == "shop")
        .and_then(|p| p["events"].as_u64())
        .expect("shop's events")
}

#[test]
fn the_pipeline_in_force_reads_back_and_a_dry_run_says_what_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::insecure_dev(&dir.path().join("data"));
    let server = served.endpoint();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };

    // A first pipeline: the dry run names the project it would create.
    let out = run(&[
        "apply",
        "-f",
        EXAMPLE_PIPELINE,
        "--dry-run",
        "--server",
        &server,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "changes (the project has no pipeline yet):\n  new project shop: warehouses \
             images; stages dev, staging, prod"
        ),
        "{}",
        stdout(&out)
    );
    let out = run(&["pipeline", "-p", "shop", "--server", &server]);
    assert!(!out.status.success(), "no pipeline yet: {}", stdout(&out));
    assert!(stderr(&out).contains("NotFound"), "{}", stderr(&out));
    served.apply_example();
    let before = events(&served);

    // What `pipeline` prints applies as the definition in force.
    let out = run(&["pipeline", "-p", "shop", "--server", &server]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(
        printed.starts_with("# The pipeline of project shop in force: policy version 1"),
        "{printed}"
    );
    let back = file("back.yaml", &printed);
    let out = run(&["apply", "-f", &back, "--dry-run", "--server", &server]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("dry run: no change: it is the pipeline in force"),
        "{}",
        stdout(&out)
    );
    let out = run(&["apply", "-f", &back, "--server", &server]);
    assert!(
        stdout(&out).contains("already recorded: nothing new appended"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("changes:"), "{}", stdout(&out));

    // A change: each field by its path, and nothing appended.
    let example = std::fs::read_to_string(EXAMPLE_PIPELINE).expect("example");
    let changed = example.replacen("required_approvals: 2", "required_approvals: 3", 1);
    assert_ne!(changed, example, "the example's approvals moved");
    let changed = file("changed.yaml", &changed);
    let out = run(&["apply", "-f", &changed, "--dry-run", "--server", &server]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "changes against policy version 1:\n  stage prod: policy.required_approvals: 2 → 3\n"
        ),
        "{}",
        stdout(&out)
    );
    let out = run(&[
        "apply",
        "-f",
        &changed,
        "--dry-run",
        "--output",
        "json",
        "--server",
        &server,
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["validated_only"], true);
    assert_eq!(
        doc["changes"],
        serde_json::json!(["stage prod: policy.required_approvals: 2 → 3"])
    );
    assert_eq!(events(&served), before, "a dry run appends nothing");
    // The same changes without asking the server to decide (a viewer may);
    // the file names the project.
    let out = run(&["pipeline", "--diff", &changed, "--server", &server]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "changes against policy version 1:\n  stage prod: policy.required_approvals: 2 → 3\n"
    );
    let out = run(&[
        "pipeline", "-p", "other", "--diff", &changed, "--server", &server,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("defines project shop, not other"),
        "{}",
        stderr(&out)
    );

    // Applied, the change is the pipeline in force; the first stays readable
    // by its policy version, as promotions and history name it.
    let out = run(&["apply", "-f", &changed, "--server", &server]);
    assert!(out.status.success(), "{}", stderr(&out));
    // It says what it changed, as its history entry does.
    assert!(
        stdout(&out).ends_with("changes:\n  stage prod: policy.required_approvals: 2 → 3\n"),
        "{}",
        stdout(&out)
    );
    let shown = |args: &[&str]| {
        let mut all = vec!["pipeline", "-p", "shop", "--server", &server];
        all.extend(args);
        let out = run(&all);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let now = shown(&[]);
    assert!(now.contains("required_approvals: 3"), "{now}");
    // With what it changed, as its history entry says.
    assert!(
        now.contains(
            "# What it changed against the version before:\n\
             #   stage prod: policy.required_approvals: 2 → 3\n"
        ),
        "{now}"
    );
    let version = now
        .split("policy version ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .expect("a version")
        .to_string();
    assert_ne!(version, "1");
    let first = shown(&["--version", "1"]);
    assert!(
        first.starts_with("# The pipeline of project shop no longer in force: policy version 1,"),
        "{first}"
    );
    assert_eq!(
        first.lines().skip(3).collect::<Vec<_>>(),
        printed.lines().skip(3).collect::<Vec<_>>(),
        "version 1 is what was in force before"
    );
    let json: serde_json::Value =
        serde_json::from_str(&shown(&["--version", "1", "--output", "json"])).expect("json");
    assert_eq!(json["in_force"], false);
    assert_eq!(
        json["changes"],
        serde_json::json!(["new project shop: warehouses images; stages dev, staging, prod"])
    );
    assert_eq!(json["source_digest"].as_str().map(str::len), Some(64));
    let out = run(&[
        "pipeline",
        "-p",
        "shop",
        "--version",
        "99",
        "--server",
        &server,
    ]);
    assert_eq!(out.status.code(), Some(1), "position 99 is not a pipeline");
    assert!(
        stderr(&out).contains("position 99 is not a policy version of project shop"),
        "{}",
        stderr(&out)
    );

    // A refusal comes as the apply would get it (a promotion under way in a
    // stage the file leaves out), with exit 1. The bypass takes the freight
    // past the soak and any weekend freeze; the promotion waits for its two
    // approvals.
    let found = served.discover_cli("1.0");
    assert!(found.status.success(), "{}", stderr(&found));
    let said = stdout(&found);
    let freight = said
        .split(", freight ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no freight id in {said}"))
        .to_string();
    let position = said
        .split("at position ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no position in {said}"));
    let out = run(&[
        "pipeline",
        "-p",
        "shop",
        "--version",
        position,
        "--server",
        &server,
    ]);
    assert!(
        stderr(&out).contains(&format!("position {position} is not a policy version")),
        "a discovery is not a pipeline: {}",
        stderr(&out)
    );
    for args in [
        &[
            "approve-freight",
            "-s",
            "prod",
            "--reason",
            "test",
            "--ticket",
            "CHG-1",
        ][..],
        &["promote", "-s", "prod", "--ticket", "CHG-1"][..],
    ] {
        let mut args = args.to_vec();
        args.extend(["-p", "shop", "--freight", &freight, "--server", &server]);
        let out = run(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    // A file that asks for no approvals would complete the waiting
    // promotion (prod is record-only): the dry run names it.
    let fewer = file(
        "fewer.yaml",
        &example.replacen("required_approvals: 2", "required_approvals: 0", 1),
    );
    let out = run(&["apply", "-f", &fewer, "--dry-run", "--server", &server]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("promotions under way it would move on:\n  prm-")
            && stdout(&out).contains(&format!(
                " of {} into prod: Requested → Succeeded (record-only stage), 0 of 0 approvals \
             counting\n",
                &freight[..12]
            )),
        "{}",
        stdout(&out)
    );
    let without_prod = &example[..example.find("  # ── prod").expect("prod")];
    let without_prod = file("without-prod.yaml", without_prod);
    let now = events(&served);
    let out = run(&[
        "apply",
        "-f",
        &without_prod,
        "--dry-run",
        "--server",
        &server,
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stderr(&out).contains("STAGE_IN_USE"), "{}", stderr(&out));
    assert_eq!(events(&served), now, "a refused dry run appends nothing");

    // Applied for a script: the reply and what it changed, as JSON.
    let out = run(&[
        "apply", "-f", &fewer, "--output", "json", "--server", &server,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let applied: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        applied["changes"],
        serde_json::json!(["stage prod: policy.required_approvals: 3 → 0"]),
        "{applied}"
    );
    assert!(applied["position"].as_u64() > Some(0), "{applied}");
}

/// A command verb whose reader has gone (`waybill apply -f ... | head -0`)
/// still does its work and ends quietly, without a panic.
#[test]
fn a_command_whose_reader_goes_away_ends_quietly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let served = Served::insecure_dev(&dir.path().join("data"));
    let mut child = common::waybill()
        .args([
            "apply",
            "-f",
            common::EXAMPLE_PIPELINE,
            "--server",
            &served.endpoint(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // The read end closes before anything is written.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let said = common::stderr(&out);
    assert!(out.status.success(), "{:?}: {said}", out.status);
    assert!(!said.contains("panicked"), "{said}");
    assert_eq!(events(&served), 1, "the pipeline was applied");
}
