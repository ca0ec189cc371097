//! `waybill checkpoint` and `waybill prove`: clients of the audit service that
//! check what the server says against a public key the caller trusts — a
//! signed checkpoint, a record's inclusion under it, and that an older
//! checkpoint's tree is a prefix of a newer one.

use std::process::ExitCode;

use serde_json::json;
use waybill_ledger::audit::{verify_consistency, verify_inclusion, Checkpoint, Hash};
use waybill_proto::v1 as pb;
use waybill_proto::v1::audit_service_client::AuditServiceClient;

use crate::audit::keys::load_verifier;
use crate::client::{channel, refused, ClientArgs, Output};

/// Exit code when a proof or signature does not check out.
const FAILED: u8 = 1;

/// `waybill checkpoint`.
#[derive(Debug, clap::Args)]
pub struct CheckpointArgs {
    /// The checkpoint signed at exactly this tree size [default: the latest].
    #[arg(long)]
    pub size: Option<u64>,
    /// Check the signature with this public key (`name+id+key`, or a file).
    #[arg(long)]
    pub pubkey: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `waybill prove`.
#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("what_to_prove").required(true).multiple(true).args(["position", "since"])
))]
pub struct ProveArgs {
    /// The public key you trust (`name+id+key`, or a file holding it).
    #[arg(long)]
    pub pubkey: String,
    /// Prove that the record at this position is in the log...
    #[arg(long, value_parser = crate::client::position_arg)]
    pub position: Option<u64>,
    /// ...and/or that the tree of this older size is a prefix of the checkpoint's.
    #[arg(long)]
    pub since: Option<u64>,
    /// Against the checkpoint of this tree size [default: the latest].
    #[arg(long)]
    pub size: Option<u64>,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn hash(bytes: &[u8]) -> anyhow::Result<Hash> {
    Hash::try_from(bytes)
        .map_err(|_| anyhow::anyhow!("the server sent a hash of {} bytes", bytes.len()))
}

async fn client(
    args: &ClientArgs,
) -> anyhow::Result<
    AuditServiceClient<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            crate::client::Bearer,
        >,
    >,
> {
    let (ch, bearer) = channel(args).await?;
    Ok(AuditServiceClient::with_interceptor(ch, bearer))
}

/// Prints a checkpoint (and checks its signature when a key is given).
pub async fn checkpoint(a: &CheckpointArgs) -> anyhow::Result<ExitCode> {
    let args = &a.client;
    let mut audit = client(args).await?;
    let reply = match audit
        .get_checkpoint(pb::GetCheckpointRequest {
            size: a.size.unwrap_or(0),
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(status) => return Ok(refused(args.output, &status)),
    };
    let verified = match &a.pubkey {
        None => None,
        Some(k) => Some(Checkpoint::open(&reply.note, &load_verifier(k)?)),
    };
    match args.output {
        Output::Json => outln!(
            "{}",
            json!({
                "size": reply.size,
                "root": hex::encode(&reply.root_hash),
                "origin": reply.origin,
                "position": reply.position,
                "public_key": reply.public_key,
                "tree_size": reply.tree_size,
                "note": reply.note,
                "verified": verified.as_ref().map(|v| v.is_ok()),
            })
        ),
        Output::Text => {
            print!("{}", reply.note);
            outln!(
                "tree size {} root {} (recorded at position {}); the server's tree has {} leaves",
                reply.size,
                hex::encode(&reply.root_hash),
                reply.position,
                reply.tree_size
            );
        }
    }
    match verified {
        Some(Err(e)) => {
            eprintln!("NOT VERIFIED: {e}");
            Ok(ExitCode::from(FAILED))
        }
        Some(Ok(_)) => {
            eprintln!("signature verified");
            Ok(ExitCode::SUCCESS)
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Fetches a signed checkpoint and proofs, and checks them locally.
pub async fn prove(a: &ProveArgs) -> anyhow::Result<ExitCode> {
    let args = &a.client;
    let key = load_verifier(&a.pubkey)?;
    let mut audit = client(args).await?;
    let reply = match audit
        .get_checkpoint(pb::GetCheckpointRequest {
            size: a.size.unwrap_or(0),
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(status) => return Ok(refused(args.output, &status)),
    };
    let signed = match Checkpoint::open(&reply.note, &key) {
        Ok(c) => c,
        Err(e) => {
            report(
                args.output,
                &[format!(
                    "NOT VERIFIED: the checkpoint of tree size {}: {e}",
                    reply.size
                )],
                json!({"ok": false, "tree_size": reply.size, "signature": e.to_string()}),
            );
            return Ok(ExitCode::from(FAILED));
        }
    };
    let mut text = vec![format!(
        "checkpoint: tree size {} root {}, signed by {}",
        signed.size,
        hex::encode(signed.root),
        key.encode()
    )];
    let mut verdict = json!({
        "tree_size": signed.size,
        "root": hex::encode(signed.root),
        "signed_by": key.encode(),
    });
    let mut ok = true;
    if let Some(position) = a.position {
        let p = match audit
            .get_inclusion_proof(pb::InclusionProofRequest {
                position,
                size: signed.size,
            })
            .await
        {
            Ok(r) => r.into_inner(),
            Err(status) => return Ok(refused(args.output, &status)),
        };
        let proof = p
            .proof
            .iter()
            .map(|h| hash(h))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let leaf = hex::encode(&p.leaf_hash);
        verdict["inclusion"] = match verify_inclusion(
            p.leaf_index,
            signed.size,
            &hash(&p.leaf_hash)?,
            &proof,
            &signed.root,
        ) {
            Ok(()) => {
                text.push(format!(
                    "included: the record at position {position} (leaf hash {leaf}) is in the signed tree ({} proof hashes)",
                    proof.len()
                ));
                json!({"position": position, "included": true, "leaf_hash": leaf, "proof_hashes": proof.len()})
            }
            Err(e) => {
                ok = false;
                text.push(format!("NOT INCLUDED: position {position}: {e}"));
                json!({"position": position, "included": false, "leaf_hash": leaf, "error": e.to_string()})
            }
        };
    }
    if let Some(old) = a.since {
        let c = match audit
            .get_consistency_proof(pb::ConsistencyProofRequest {
                old_size: old,
                new_size: signed.size,
            })
            .await
        {
            Ok(r) => r.into_inner(),
            Err(status) => return Ok(refused(args.output, &status)),
        };
        let proof = c
            .proof
            .iter()
            .map(|h| hash(h))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let old_root = hex::encode(&c.old_root);
        // The old root is the server's claim; compare it with a checkpoint you hold.
        verdict["consistency"] = match verify_consistency(
            old,
            signed.size,
            &hash(&c.old_root)?,
            &signed.root,
            &proof,
        ) {
            Ok(()) => {
                text.push(format!(
                    "consistent: the tree of size {old} (root {old_root}) is a prefix of the signed tree"
                ));
                json!({"old_size": old, "old_root": old_root, "consistent": true})
            }
            Err(e) => {
                ok = false;
                text.push(format!("NOT CONSISTENT: from size {old}: {e}"));
                json!({"old_size": old, "old_root": old_root, "consistent": false, "error": e.to_string()})
            }
        };
    }
    verdict["ok"] = ok.into();
    report(args.output, &text, verdict);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILED)
    })
}

/// Prints `text` line by line, or `verdict` as one JSON object.
fn report(output: Output, text: &[String], verdict: serde_json::Value) {
    match output {
        Output::Json => outln!("{verdict}"),
        Output::Text => text.iter().for_each(|line| outln!("{line}")),
    }
}
