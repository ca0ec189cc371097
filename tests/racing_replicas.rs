//! Two command replicas racing on one project: both are sent the same
//! promotions at the same moment. The outcomes must be those of some serial
//! order, checked by replaying the log through `decide`: every accepted
//! command, decided on the state just before its event, yields exactly that
//! event; every refused command is refused, for the same reason, on some
//! prefix of the log; and of each racing pair exactly one is accepted.

mod common;

use bytes::Bytes;
use common::{run, stderr, stdout, waybill, Served};
use tonic::Code;
use waybill_commands::auth::Principal;
use waybill_commands::{decide, Command, Context, Decision, FreightSelector, Rejection};
use waybill_ledger::domain::ProjectState;
use waybill_ledger::testing::NatsServer;
use waybill_ledger::{ChainHash, Event, Position, StoredEvent};
use waybill_proto::v1 as pb;
use waybill_proto::v1::command_service_client::CommandServiceClient;
use waybill_proto::v1::request_promotion_request::FreightSelector as PbSelector;

type Client = CommandServiceClient<tonic::transport::Channel>;

/// Racing pairs of promotion requests.
const ROUNDS: usize = 12;

/// What a replica answered: the event's position, or a refusal's reason.
#[derive(Debug, Clone)]
enum Answer {
    Accepted(u64),
    Refused(String),
}

async fn promote(mut c: Client, freight: String, key: String) -> Answer {
    let request = pb::RequestPromotionRequest {
        project: "shop".into(),
        stage: "dev".into(),
        freight_selector: Some(PbSelector::Freight(freight)),
        reason: "race".into(),
        idempotency_key: key,
        ..Default::default()
    };
    match c.request_promotion(request).await {
        Ok(reply) => Answer::Accepted(reply.into_inner().position),
        Err(status) => {
            assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
            let reason = status
                .metadata()
                .get("waybill-reason")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            Answer::Refused(reason)
        }
    }
}

/// The project's events, in order.
fn events(url: &str) -> Vec<StoredEvent> {
    let out = run(&["dump", "--nats", url, "--project", "shop"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("json");
            let bytes = hex::decode(v["record"].as_str().expect("record")).expect("hex");
            let event: Event = waybill_ledger::event::decode_record(&bytes).expect("decodes");
            StoredEvent {
                position: Position(v["position"].as_u64().expect("position")),
                hash: ChainHash::from_hex(v["hash"].as_str().expect("hash")).expect("hash"),
                stored_hash: None,
                bytes: Bytes::from(bytes),
                event,
            }
        })
        .collect()
}

fn command(freight: &str) -> Command {
    Command::RequestPromotion {
        stage: "dev".into(),
        freight: FreightSelector::Named(freight.to_string()),
        ticket: String::new(),
        reason: "race".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_replicas_agree_with_a_serial_order() {
    let nats = NatsServer::start();
    let url = nats.url();
    let (a_dir, b_dir) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let replica = |dir: &std::path::Path| {
        Served::start(
            waybill()
                .args(["serve", "--nats", &url, "--insecure-dev", "--no-reactors"])
                .args(["--no-checkpoints", "--data-dir"])
                .arg(dir),
        )
    };
    let (a, b) = (replica(a_dir.path()), replica(b_dir.path()));
    let mut ca = CommandServiceClient::connect(a.endpoint())
        .await
        .expect("a");
    let cb = CommandServiceClient::connect(b.endpoint())
        .await
        .expect("b");
    let yaml = std::fs::read_to_string(common::EXAMPLE_PIPELINE).expect("pipeline");
    ca.apply_pipeline(pb::ApplyPipelineRequest {
        yaml,
        ..Default::default()
    })
    .await
    .expect("apply");
    // Freight to race over; each round both replicas request the same one.
    let mut freight = Vec::new();
    for i in 0..4 {
        let reply = ca
            .record_discovery(common::discovery(&format!("2.{i}"), ""))
            .await
            .expect("discover")
            .into_inner();
        freight.push(reply.freight_id);
    }
    let mut sent = Vec::new();
    for round in 0..ROUNDS {
        let f = freight[round % freight.len()].clone();
        let (ka, kb) = (format!("a-{round}"), format!("b-{round}"));
        let (ra, rb) = tokio::join!(
            promote(ca.clone(), f.clone(), ka.clone()),
            promote(cb.clone(), f.clone(), kb.clone())
        );
        let accepted = [&ra, &rb]
            .iter()
            .filter(|r| matches!(r, Answer::Accepted(_)))
            .count();
        assert_eq!(accepted, 1, "round {round}: {ra:?} {rb:?}");
        sent.push((f.clone(), ka, ra));
        sent.push((f, kb, rb));
    }
    drop((ca, cb));
    assert!(a.terminate().success());
    assert!(b.terminate().success());

    // Replay the log through decide.
    let log = events(&url);
    let mut states = vec![ProjectState::new("shop")];
    for ev in &log {
        let mut next = states.last().expect("a state").clone();
        next.apply(ev);
        states.push(next);
    }
    let anonymous = Principal::anonymous().actor();
    for (f, key, answer) in &sent {
        let cmd = command(f);
        match answer {
            Answer::Accepted(position) => {
                let k = log
                    .iter()
                    .position(|e| e.position.0 == *position)
                    .expect("the accepted event is in the log");
                let ev = &log[k];
                assert_eq!(&ev.event.command_id, key);
                let ctx = Context {
                    actor: ev.event.actor.clone(),
                    groups: Vec::new(),
                    now: ev.event.time,
                    command_id: key.clone(),
                };
                match decide(&states[k], &ctx, &cmd) {
                    Ok(Decision::Append { payload, .. }) => {
                        assert_eq!(payload, ev.event.payload, "{key}: a different event")
                    }
                    other => panic!("{key}: re-decided as {other:?}"),
                }
            }
            Answer::Refused(reason) => {
                let refused_somewhere = states.iter().zip(
                    std::iter::once(log[0].event.time).chain(log.iter().map(|e| e.event.time)),
                );
                let found = refused_somewhere.into_iter().any(|(state, now)| {
                    let ctx = Context {
                        actor: anonymous.clone(),
                        groups: Vec::new(),
                        now,
                        command_id: key.clone(),
                    };
                    matches!(
                        decide(state, &ctx, &cmd),
                        Err(Rejection::Policy { reason: r, .. }) if r.code() == reason
                    )
                });
                assert!(
                    found,
                    "{key}: refused {reason}, but no prefix of the log refuses it"
                );
                assert!(
                    log.iter().all(|e| &e.event.command_id != key),
                    "{key} was refused yet is in the log"
                );
            }
        }
    }
}
