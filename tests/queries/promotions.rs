//! Promotions and paging: five more promotions into dev read back in
//! pages through an opaque cursor; status and stage filters agree with the
//! whole list, and ones that cannot match are refused; a freight's
//! promotions by id, alias or prefix; freight in pages of 3, newest first,
//! a made-up token refused; one promotion by id.

use waybill_proto::v1 as pb;

use crate::{discover, promote, Commands, Queries};

/// After `f1`'s promotion into dev; returns the position of the last
/// promotion written, which the history reads from.
pub(crate) async fn paging_and_filters(
    mut c: Commands,
    mut q: Queries,
    applied: &pb::CommandReply,
    f1: String,
) -> u64 {
    // Promotions: paging with an opaque cursor.
    let mut ids = Vec::new();
    let mut written = 0;
    for i in 0..5 {
        let (f, _) = discover(&mut c, &format!("3.{i}")).await;
        let reply = promote(&mut c, "dev", &f).await;
        written = reply.position;
        ids.push(reply.promotion_id);
    }
    let head = ids.len();
    // Every page of a list, two at a time, in request order or newest
    // first.
    let paging = q.clone();
    let pages = move |template: pb::ListPromotionsRequest, newest_first: bool| {
        let mut q = paging.clone();
        async move {
            let mut seen = Vec::new();
            let mut token = String::new();
            loop {
                let page = q
                    .list_promotions(pb::ListPromotionsRequest {
                        page_size: 2,
                        page_token: token.clone(),
                        newest_first,
                        min_position: written,
                        ..template.clone()
                    })
                    .await
                    .expect("page")
                    .into_inner();
                seen.extend(page.promotions.iter().map(|p| p.id.clone()));
                if page.next_page_token.is_empty() {
                    return seen;
                }
                token = page.next_page_token;
            }
        }
    };
    let request = |stage: &str, status: &str, freight: &str| pb::ListPromotionsRequest {
        project: "shop".into(),
        stage: stage.into(),
        status: status.into(),
        freight: freight.into(),
        ..Default::default()
    };
    let dev = pages(request("dev", "", ""), false).await;
    assert_eq!(dev.len(), head + 1, "every dev promotion once: {dev:?}");
    assert_eq!(dev[1..], ids[..], "in order of request");
    let mut newest = pages(request("dev", "", ""), true).await;
    newest.reverse();
    assert_eq!(newest, dev, "newest first: the same, backwards");
    // A token of one order is refused in the other.
    let first = q
        .list_promotions(pb::ListPromotionsRequest {
            page_size: 2,
            newest_first: true,
            ..request("dev", "", "")
        })
        .await
        .expect("first page")
        .into_inner();
    let e = q
        .list_promotions(pb::ListPromotionsRequest {
            page_token: first.next_page_token,
            ..request("dev", "", "")
        })
        .await
        .expect_err("a newest-first token in request order");
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    // Status filters (active ones read the index of active promotions, a
    // stage its history index) return what filtering the whole list gives,
    // in the same order, and backwards newest first, page by page.
    let list = |stage: &str, status: &str| {
        let mut q = q.clone();
        let (stage, status) = (stage.to_string(), status.to_string());
        async move {
            q.list_promotions(pb::ListPromotionsRequest {
                project: "shop".into(),
                stage,
                status,
                page_size: 1000,
                min_position: written,
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner()
            .promotions
        }
    };
    // (This pipeline's stages are record-only: every promotion here has
    // succeeded. The runner test covers the active index with queued ones.)
    let whole = list("", "").await;
    assert!(whole.iter().any(|p| p.status == "Succeeded"));
    for status in ["", "Requested", "Authorized", "Running", "Succeeded"] {
        for stage in ["", "dev"] {
            let want: Vec<&str> = whole
                .iter()
                .filter(|p| status.is_empty() || p.status == status)
                .filter(|p| stage.is_empty() || p.stage == stage)
                .map(|p| p.id.as_str())
                .collect();
            let got = list(stage, &status.to_lowercase()).await;
            let got: Vec<&str> = got.iter().map(|p| p.id.as_str()).collect();
            assert_eq!(got, want, "status {status}, stage {stage:?}");
            let mut back = pages(request(stage, &status.to_lowercase(), ""), true).await;
            back.reverse();
            assert_eq!(back, want, "newest first: status {status}, stage {stage:?}");
        }
    }
    // A status or a stage that cannot match is refused, not answered with
    // an empty list.
    for (stage, status, code, said) in [
        (
            "",
            "Bogus",
            tonic::Code::InvalidArgument,
            "unknown promotion status \"Bogus\"",
        ),
        (
            "nostage",
            "",
            tonic::Code::NotFound,
            "project shop has no stage \"nostage\"",
        ),
        (
            "stagign",
            "",
            tonic::Code::NotFound,
            "project shop has no stage \"stagign\", and never had (did you mean \"staging\"?)",
        ),
    ] {
        let e = q
            .list_promotions(pb::ListPromotionsRequest {
                project: "shop".into(),
                stage: stage.into(),
                status: status.into(),
                ..Default::default()
            })
            .await
            .expect_err("refused");
        assert_eq!(e.code(), code, "{e:?}");
        assert!(e.message().contains(said), "{e:?}");
    }

    // A freight's promotions (found through its history index), by id,
    // alias or start of id: what filtering the whole list gives.
    for (reference, id) in [
        (f1.as_str(), f1.as_str()),
        ("v1.0", f1.as_str()),
        (&whole[2].freight[..10], whole[2].freight.as_str()),
    ] {
        let want: Vec<&str> = whole
            .iter()
            .filter(|p| p.freight == id)
            .map(|p| p.id.as_str())
            .collect();
        assert!(!want.is_empty(), "{reference}");
        let got = q
            .list_promotions(pb::ListPromotionsRequest {
                project: "shop".into(),
                freight: reference.into(),
                page_size: 1000,
                min_position: written,
                ..Default::default()
            })
            .await
            .expect("list by freight")
            .into_inner()
            .promotions;
        // Each names its freight's alias too (discovered as `v<tag>`).
        assert!(
            got.iter().all(|p| p.freight_alias.starts_with('v')),
            "{got:?}"
        );
        if reference == "v1.0" {
            assert!(got.iter().all(|p| p.freight_alias == "v1.0"), "{got:?}");
        }
        let got: Vec<&str> = got.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(got, want, "freight {reference}");
        let mut back = pages(request("", "", reference), true).await;
        back.reverse();
        assert_eq!(back, want, "newest first: freight {reference}");
    }

    // Freight: pages of 3, newest first, each freight once.
    let everything = q
        .list_freight(pb::ListFreightRequest {
            project: "shop".into(),
            min_position: written,
            ..Default::default()
        })
        .await
        .expect("list freight")
        .into_inner();
    assert!(everything.next_page_token.is_empty());
    let mut paged = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = q
            .list_freight(pb::ListFreightRequest {
                project: "shop".into(),
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("freight page")
            .into_inner();
        assert!(page.freight.len() <= 3);
        pages += 1;
        paged.extend(page.freight.into_iter().map(|f| f.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let all_ids: Vec<String> = everything.freight.iter().map(|f| f.id.clone()).collect();
    assert_eq!(paged, all_ids, "the pages are the whole list, in order");
    assert_eq!(pages, all_ids.len().div_ceil(3));
    assert!(everything
        .freight
        .windows(2)
        .all(|w| w[0].discovered_at >= w[1].discovered_at));
    let bad = q
        .list_freight(pb::ListFreightRequest {
            project: "shop".into(),
            page_token: "after-7".into(),
            ..Default::default()
        })
        .await
        .expect_err("a made-up token");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let p = q
        .get_promotion(pb::GetPromotionRequest {
            project: "shop".into(),
            promotion_id: ids[0].clone(),
            min_position: 0,
        })
        .await
        .expect("get promotion")
        .into_inner()
        .promotion
        .expect("promotion");
    assert_eq!(p.status, "Succeeded");
    assert_eq!(p.requested_by, "anonymous");
    assert_eq!(p.policy_version, applied.position);
    // What a deployment job deploys comes with the promotion.
    assert_eq!(p.freight_artifacts.len(), 1, "{p:?}");
    assert_eq!(p.freight_artifacts[0].name, "ghcr.io/acme/shop", "{p:?}");
    written
}
