//! The export in process, on the embedded log: a whole export, and one whose
//! reader goes away part-way (the records are read on the runtime and their
//! lines written on a thread of their own, and both must stop).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{discovered, spawn_runner, spawn_tree, stop};
use tokio::sync::mpsc;
use waybill_ledger::audit::SignerKey;
use waybill_ledger::event::PipelineConfigured;
use waybill_ledger::{Actor, EventLog, EventPayload, NewEvent, ProjectName, SledLog};
use waybill_projections::audit::export::{export, ExportError, ExportItem, ExportSpec};
use waybill_projections::audit::{CheckpointPolicy, Transparency};
use waybill_projections::Projections;

const PIPELINE: &str = r#"{"project":"shop","warehouses":[{"name":"images"}],"stages":[
 {"name":"dev","record_only":true,"requested_freight":[{"origin":"images","sources":{"direct":true}}],"policy":{"mode":"auto"}}]}"#;

/// Records in the ledger: enough for several chunks of `events.jsonl`.
const FREIGHT: u64 = 2_000;

struct Served {
    _dir: tempfile::TempDir,
    log: Arc<dyn EventLog>,
    projections: Projections,
    transparency: Transparency,
    runner: common::Runner,
    /// The Merkle tree's runner, stopped the same way.
    tree: common::Runner,
}

/// A pipeline and `FREIGHT` discoveries of project `shop`, with the read
/// models and a signed checkpoint caught up on them.
async fn served() -> Served {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn EventLog> = Arc::new(SledLog::open(&dir.path().join("log")).expect("log"));
    let shop = ProjectName::project("shop").expect("name");
    let actor = Actor {
        principal: "ci".into(),
        auth_method: "token".into(),
    };
    let configured = EventPayload::PipelineConfigured(PipelineConfigured {
        definition_json: PIPELINE.into(),
        source_uri: "test".into(),
        source_revision: String::new(),
        source_digest: String::new(),
    });
    let payloads = std::iter::once(configured).chain((0..FREIGHT).map(|i| discovered(i, "")));
    for (n, payload) in payloads.enumerate() {
        let head = log.last_position(&shop).await.expect("head");
        let ev = NewEvent::new(payload, actor.clone(), format!("cmd-{n}"));
        log.append(&shop, head, ev).await.expect("append");
    }
    let projections = Projections::open(&dir.path().join("views")).expect("open");
    let policy = CheckpointPolicy {
        every: 500,
        interval: Duration::from_millis(50),
        origin: "waybill.test/export".into(),
        signer: Some(Arc::new(SignerKey::generate("test").expect("key"))),
    };
    let transparency = Transparency::open(projections.store().db(), policy).expect("transparency");
    let runner = spawn_runner(&projections, log.clone());
    let tree = spawn_tree(&transparency, log.clone());
    let head = log.head().await.expect("head");
    projections
        .wait_for(head, Duration::from_secs(60))
        .await
        .expect("caught up");
    Served {
        _dir: dir,
        log,
        projections,
        transparency,
        runner,
        tree,
    }
}

impl Served {
    fn export(
        &self,
        tx: mpsc::Sender<ExportItem>,
    ) -> tokio::task::JoinHandle<Result<(), ExportError>> {
        self.export_from(None, tx)
    }

    /// An export of the records at or after `from`.
    fn export_from(
        &self,
        from: Option<chrono::DateTime<chrono::Utc>>,
        tx: mpsc::Sender<ExportItem>,
    ) -> tokio::task::JoinHandle<Result<(), ExportError>> {
        let spec = ExportSpec {
            project: ProjectName::project("shop").expect("name"),
            from,
            to: None,
            csv: false,
        };
        let (log, p, t) = (
            self.log.clone(),
            self.projections.clone(),
            self.transparency.clone(),
        );
        tokio::spawn(async move { export(log, p, t, spec, tx).await })
    }

    async fn stop(self) {
        stop(self.runner).await;
        stop(self.tree).await;
    }
}

/// Every file of an export as it arrives: its bytes, and the length its
/// Done item states.
async fn files(
    mut rx: mpsc::Receiver<ExportItem>,
) -> std::collections::HashMap<&'static str, (Vec<u8>, Option<u64>)> {
    let mut files = std::collections::HashMap::<&'static str, (Vec<u8>, Option<u64>)>::new();
    while let Some(item) = rx.recv().await {
        match item {
            ExportItem::Data { file, bytes } => files.entry(file).or_default().0.extend(bytes),
            ExportItem::Done { file, bytes, .. } => files.entry(file).or_default().1 = Some(bytes),
            ExportItem::Progress { .. } => {}
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_holds_every_record_in_order() {
    let s = served().await;
    let (tx, rx) = mpsc::channel(8);
    let job = s.export(tx);
    let (events, done) = files(rx)
        .await
        .remove("events.jsonl")
        .expect("events.jsonl");
    job.await.expect("join").expect("export");
    assert_eq!(
        done,
        Some(events.len() as u64),
        "the Done item states the file's length"
    );
    let positions: Vec<u64> = String::from_utf8(events)
        .expect("utf8")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            v["position"].as_u64().expect("position")
        })
        .collect();
    let expected: Vec<u64> = (1..=FREIGHT + 1).collect();
    assert_eq!(positions, expected, "every record once, in order");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_stops_when_its_reader_goes_away() {
    let s = served().await;
    let (tx, mut rx) = mpsc::channel(1);
    let job = s.export(tx);
    // Take the first chunk of records, then hang up.
    while !matches!(
        rx.recv().await.expect("an item before the end"),
        ExportItem::Data {
            file: "events.jsonl",
            ..
        }
    ) {}
    drop(rx);
    let result = tokio::time::timeout(Duration::from_secs(30), job)
        .await
        .expect("the export stops instead of hanging")
        .expect("join");
    assert!(
        matches!(result, Err(ExportError::Cancelled)),
        "cancelled, not {result:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_of_a_range_without_records_chains_to_the_record_before_it() {
    let s = served().await;
    let (tx, rx) = mpsc::channel(8);
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let job = s.export_from(Some(later), tx);
    let mut files = files(rx).await;
    let (events, _) = files.remove("events.jsonl").expect("events.jsonl");
    let (manifest, _) = files.remove("manifest.json").expect("manifest.json");
    job.await.expect("join").expect("export");
    assert!(events.is_empty(), "no record is in the range");
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest");
    let summary = &manifest["events"];
    assert_eq!(summary["count"], 0, "{summary}");
    let head = s
        .log
        .project_head(&ProjectName::project("shop").expect("name"))
        .await
        .expect("head");
    // Every record comes before the range: the chain stops at the last.
    assert_eq!(summary["prev_hash"], head.hash.to_hex(), "{summary}");
    assert_eq!(summary["head_hash"], head.hash.to_hex(), "{summary}");
    s.stop().await;
}
