//! What the audit service serves checks out against the signed
//! checkpoints: the latest and an exact checkpoint, inclusion and
//! consistency proofs, the project's hash chain; and requests beyond the
//! tree, at position 0, or after the latest checkpoint are refused as such.

use waybill_ledger::audit::{
    leaf_hash, verify_consistency, verify_inclusion, Checkpoint, Hash, VerifierKey,
};
use waybill_proto::v1 as pb;
use waybill_proto::v1::audit_service_client::AuditServiceClient;

async fn audit_client(endpoint: String) -> AuditServiceClient<tonic::transport::Channel> {
    AuditServiceClient::connect(endpoint)
        .await
        .expect("connect")
}

fn hash(bytes: &[u8]) -> Hash {
    Hash::try_from(bytes).expect("32 bytes")
}

/// The proofs served verify against the signed checkpoints.
pub(crate) async fn check_proofs(
    endpoint: String,
    pubkey: &str,
    old: &Checkpoint,
    new: &Checkpoint,
) {
    let key = VerifierKey::parse(pubkey).expect("key");
    let mut audit = audit_client(endpoint).await;
    let latest = audit
        .get_checkpoint(pb::GetCheckpointRequest { size: 0 })
        .await
        .expect("latest")
        .into_inner();
    assert_eq!(latest.public_key, pubkey);
    let opened = Checkpoint::open(&latest.note, &key).expect("latest is signed");
    assert!(opened.size >= new.size);
    let exact = audit
        .get_checkpoint(pb::GetCheckpointRequest { size: old.size })
        .await
        .expect("at a size")
        .into_inner();
    assert_eq!(Checkpoint::open(&exact.note, &key).expect("signed"), *old);
    let missing = audit
        .get_checkpoint(pb::GetCheckpointRequest { size: u64::MAX })
        .await
        .expect_err("no such checkpoint");
    assert_eq!(missing.code(), tonic::Code::NotFound);

    for position in [1, old.size / 2 + 1, old.size, new.size] {
        let p = audit
            .get_inclusion_proof(pb::InclusionProofRequest {
                position,
                size: new.size,
            })
            .await
            .expect("inclusion")
            .into_inner();
        let proof: Vec<Hash> = p.proof.iter().map(|h| hash(h)).collect();
        verify_inclusion(
            p.leaf_index,
            new.size,
            &hash(&p.leaf_hash),
            &proof,
            &new.root,
        )
        .expect("inclusion proof verifies against the signed root");
        // A proof for another leaf does not.
        let other = leaf_hash(b"not a record");
        assert!(verify_inclusion(p.leaf_index, new.size, &other, &proof, &new.root).is_err());
    }
    let c = audit
        .get_consistency_proof(pb::ConsistencyProofRequest {
            old_size: old.size,
            new_size: new.size,
        })
        .await
        .expect("consistency")
        .into_inner();
    let proof: Vec<Hash> = c.proof.iter().map(|h| hash(h)).collect();
    verify_consistency(old.size, new.size, &old.root, &new.root, &proof)
        .expect("the old signed tree is a prefix of the new one");
    let beyond = audit
        .get_inclusion_proof(pb::InclusionProofRequest {
            position: 1,
            size: u64::MAX / 2,
        })
        .await
        .expect_err("beyond the tree");
    assert_eq!(beyond.code(), tonic::Code::OutOfRange);
    let bad = audit
        .get_inclusion_proof(pb::InclusionProofRequest {
            position: 0,
            size: 0,
        })
        .await
        .expect_err("position 0");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    // A record in the log but after the latest signed checkpoint (at least
    // that checkpoint's own record) is refused as such, not as unknown.
    let mut said = None;
    for _ in 0..100 {
        let latest = audit
            .get_checkpoint(pb::GetCheckpointRequest { size: 0 })
            .await
            .expect("latest")
            .into_inner();
        if latest.tree_size > latest.size {
            let asked = audit
                .get_inclusion_proof(pb::InclusionProofRequest {
                    position: latest.size + 1,
                    size: 0,
                })
                .await;
            // Err unless a checkpoint was signed in between.
            if let Err(e) = asked {
                assert_eq!(e.code(), tonic::Code::InvalidArgument);
                said = Some(e.message().to_string());
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let said = said.expect("a record after the latest checkpoint");
    assert!(
        said.contains("in the log but after the latest signed checkpoint"),
        "{said}"
    );
    let chain = audit
        .verify_chain(pb::VerifyChainRequest {
            project: "shop".into(),
        })
        .await
        .expect("verify chain")
        .into_inner();
    assert!(chain.ok, "{chain:?}");
    assert!(chain.events > 0);
}
