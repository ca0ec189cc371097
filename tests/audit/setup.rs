//! A served log for the audit tests: a fresh signing key, `waybill serve`
//! signing checkpoints often, the example pipeline applied, and the CLI
//! calls the tests make against it (activity, exports).

use std::path::{Path, PathBuf};

use crate::common::{stderr, stdout, waybill, Served};

pub(crate) fn keygen(path: &Path, name: &str) -> String {
    let out = waybill()
        .args([
            "keygen",
            "--out",
            path.to_str().expect("utf8"),
            "--name",
            name,
        ])
        .output()
        .expect("keygen");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_string()
}

pub(crate) struct Setup {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) served: Served,
    pub(crate) pubkey: String,
}

impl Setup {
    pub(crate) fn start(log_args: &[String]) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("signing.key");
        let pubkey = keygen(&key, "audit-test-log");
        let served = Served::start(
            waybill()
                .arg("serve")
                .args(log_args)
                .arg("--insecure-dev")
                .arg("--signing-key")
                .arg(&key)
                .args(["--checkpoint-every", "7", "--checkpoint-interval-secs", "1"]),
        );
        let s = Setup {
            dir,
            served,
            pubkey,
        };
        s.cli(&[
            "apply",
            "-f",
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples/pipeline.yaml"),
        ]);
        s
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = waybill()
            .args(args)
            .args(["--server", &self.served.endpoint()])
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// New freight, verified in dev: promotions into dev and staging follow.
    pub(crate) fn activity(&self, tags: &[&str]) {
        for tag in tags {
            let image = format!("ghcr.io/acme/shop:{tag}");
            let out = self.cli(&[
                "discover", "-p", "shop", "-w", "images", "--image", &image, "--output", "json",
            ]);
            let json: serde_json::Value =
                serde_json::from_str(out.lines().last().expect("line")).expect("json");
            let freight = json["freight_id"].as_str().expect("freight").to_string();
            let said = self.cli(&[
                "record-verification",
                "-p",
                "shop",
                "--freight",
                &freight,
                "--stage",
                "dev",
                "--check",
                "integration-tests",
                "--pass",
                "--evidence",
                &format!("https://ci.example/run/{tag}"),
            ]);
            assert!(
                said.starts_with(
                    "verification recorded (integration-tests passed in dev): project shop"
                ),
                "{said}"
            );
        }
    }

    pub(crate) fn export(&self, name: &str, format: &str) -> PathBuf {
        self.export_with(name, &["--format", format])
    }

    /// An export taken with `--output json`; returns its directory and summary.
    pub(crate) fn export_json(&self, name: &str) -> (PathBuf, serde_json::Value) {
        let out_dir = self.dir.path().join(name);
        let out = waybill()
            .args(["export", "--project", "shop", "--output", "json", "--out"])
            .arg(&out_dir)
            .args(["--server", &self.served.endpoint()])
            .output()
            .expect("export");
        assert!(out.status.success(), "export: {}", stderr(&out));
        let summary =
            serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
        (out_dir, summary)
    }

    pub(crate) fn export_with(&self, name: &str, args: &[&str]) -> PathBuf {
        let out_dir = self.dir.path().join(name);
        let out = waybill()
            .args(["export", "--project", "shop"])
            .args(args)
            .arg("--out")
            .arg(&out_dir)
            .args(["--server", &self.served.endpoint()])
            .output()
            .expect("export");
        assert!(
            out.status.success(),
            "export: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(stdout(&out).contains("verify it with: waybill verify-export"));
        out_dir
    }
}
