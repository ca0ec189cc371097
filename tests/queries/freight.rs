//! Freight and its availability: listed for staging, a freight verified
//! in dev is available and a newer one is not, saying why; one freight by
//! alias, with where it runs and where it was verified.

use waybill_proto::v1 as pb;

use crate::{discover, Commands, Queries};

/// With `f1` in dev and verified there, a second freight discovered.
pub(crate) async fn availability(mut c: Commands, mut q: Queries, f1: String) {
    // Freight: availability for a stage, with the reason when not.
    let (f2, last) = discover(&mut c, "2.0").await;
    let list = q
        .list_freight(pb::ListFreightRequest {
            project: "shop".into(),
            available_for: "staging".into(),
            min_position: last,
            ..Default::default()
        })
        .await
        .expect("list freight")
        .into_inner();
    let by_id = |id: &str| {
        list.freight
            .iter()
            .find(|f| f.id == id)
            .expect("listed")
            .clone()
    };
    assert!(by_id(&f1).available);
    assert!(!by_id(&f2).available);
    assert!(
        by_id(&f2).unavailable_reason.contains("dev"),
        "{}",
        by_id(&f2).unavailable_reason
    );
    let one = q
        .get_freight(pb::GetFreightRequest {
            project: "shop".into(),
            freight: "v1.0".into(),
            min_position: last,
        })
        .await
        .expect("get freight")
        .into_inner()
        .freight
        .expect("freight");
    assert_eq!(one.id, f1);
    assert_eq!(one.currently_in[0].stage, "dev");
    assert_eq!(one.verified_in[0].stage, "dev");
}
