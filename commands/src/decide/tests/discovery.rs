//! A warehouse of kind image, git or chart takes artifacts of its kind
//! only, and an image or git warehouse with a source only artifacts from
//! it: a CI job that pushes another repository's image into `images` is
//! refused, not promoted as the shop's freight. A pushed warehouse takes
//! anything.

use waybill_ledger::domain::PipelineDefinition;
use waybill_ledger::event::{Artifact, ArtifactKind};

use super::*;

fn artifact(kind: ArtifactKind, name: &str, version: &str, digest: &str) -> Artifact {
    Artifact {
        kind,
        name: name.into(),
        version: version.into(),
        digest: digest.into(),
    }
}

fn discovery(warehouse: &str, artifacts: Vec<Artifact>) -> Command {
    Command::RecordDiscovery {
        warehouse: warehouse.into(),
        artifacts,
        alias: String::new(),
    }
}

/// The field and message of an INVALID_ARGUMENT.
fn invalid(s: &mut Scenario, cmd: Command) -> (String, String) {
    match s.invalid(robot(), cmd) {
        Rejection::Invalid { field, message } => (field, message),
        other => panic!("{other:?}"),
    }
}

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

#[test]
fn a_misspelled_warehouse_is_named_with_the_one_meant() {
    let mut s = Scenario::shop();
    let image = artifact(ArtifactKind::Image, "ghcr.io/acme/shop", "1.0", "");
    let (field, message) = invalid(&mut s, discovery("imgaes", vec![image]));
    assert_eq!(field, "warehouse");
    assert_eq!(
        message,
        "project shop has no warehouse \"imgaes\" (did you mean \"images\"?)"
    );
}

#[test]
fn an_image_warehouse_takes_images_of_its_source_only() {
    let mut s = Scenario::shop();
    let (field, message) = invalid(
        &mut s,
        discovery(
            "images",
            vec![artifact(
                ArtifactKind::Image,
                "ghcr.io/evil/thing",
                "6.6",
                "",
            )],
        ),
    );
    assert_eq!(field, "artifacts[0]");
    assert_eq!(
        message,
        "image ghcr.io/evil/thing cannot come from warehouse images, whose source is ghcr.io/acme/shop"
    );
    let (field, message) = invalid(
        &mut s,
        discovery(
            "images",
            vec![
                artifact(ArtifactKind::Image, "ghcr.io/acme/shop", "1.0", ""),
                artifact(
                    ArtifactKind::Git,
                    "https://git.example/shop",
                    "main",
                    COMMIT,
                ),
            ],
        ),
    );
    assert_eq!(field, "artifacts[1]");
    assert!(
        message.contains("git https://git.example/shop cannot come from warehouse images, which holds image artifacts only"),
        "{message}"
    );
    // Its own repository, however the trailing slash falls.
    s.ok(
        robot(),
        discovery(
            "images",
            vec![artifact(
                ArtifactKind::Image,
                "ghcr.io/acme/shop/",
                "1.0",
                "",
            )],
        ),
    );
}

#[test]
fn a_git_warehouse_reads_its_url_as_git_does_and_pushed_takes_anything() {
    let mut s = Scenario::empty();
    let def: PipelineDefinition = serde_json::from_str(
        r#"{
  "project": "shop",
  "warehouses": [
    {"name": "config", "kind": "git", "source": "https://GitHub.com/acme/config.git"},
    {"name": "ci"}
  ],
  "stages": [
    {"name": "dev", "requested_freight": [{"origin": "config", "sources": {"direct": true}},
                                          {"origin": "ci", "sources": {"direct": true}}],
     "policy": {"mode": "manual"}}
  ]
}"#,
    )
    .expect("pipeline json");
    s.ok(alice(), apply(def));
    s.ok(
        robot(),
        discovery(
            "config",
            vec![artifact(
                ArtifactKind::Git,
                "https://github.com/acme/config/",
                "main",
                COMMIT,
            )],
        ),
    );
    let (_, message) = invalid(
        &mut s,
        discovery(
            "config",
            vec![artifact(
                ArtifactKind::Git,
                "https://github.com/acme/other",
                "main",
                COMMIT,
            )],
        ),
    );
    assert!(
        message.contains("whose source is https://GitHub.com/acme/config.git"),
        "{message}"
    );
    s.ok(
        robot(),
        discovery(
            "ci",
            vec![
                artifact(ArtifactKind::Image, "ghcr.io/anything/at-all", "1", ""),
                artifact(ArtifactKind::Chart, "shop", "0.1.0", ""),
            ],
        ),
    );
}
