//! Walking the pages of a list query.

use tonic::Status;
use waybill_proto::v1 as pb;

use super::command::PageArgs;

/// One page: its items, the position it reflects, the token of the next.
pub type Page<T> = (Vec<T>, u64, String);

/// A list request that is read a page at a time.
pub trait Paged: Clone {
    fn set_page_token(&mut self, token: String);
    fn set_min_position(&mut self, min: u64);
}

impl Paged for pb::ListFreightRequest {
    fn set_page_token(&mut self, token: String) {
        self.page_token = token;
    }
    fn set_min_position(&mut self, min: u64) {
        self.min_position = min;
    }
}

impl Paged for pb::ListPromotionsRequest {
    fn set_page_token(&mut self, token: String) {
        self.page_token = token;
    }
    fn set_min_position(&mut self, min: u64) {
        self.min_position = min;
    }
}

/// Sends `req` through `page` for the page at `args.page_token`, then, with
/// `args.all`, for every next one (only the first waits for
/// `min_position`). Returns every item, the position of the last page and
/// the token that would continue.
pub async fn walk<R: Paged, T>(
    req: R,
    args: &PageArgs,
    mut page: impl AsyncFnMut(R) -> Result<Page<T>, Status>,
) -> Result<Page<T>, Status> {
    let mut token = args.page_token.clone().unwrap_or_default();
    let mut items = Vec::new();
    let mut first = true;
    loop {
        let mut req = req.clone();
        req.set_page_token(token.clone());
        if !first {
            req.set_min_position(0);
        }
        let (got, position, next) = page(req).await?;
        first = false;
        items.extend(got);
        if !args.all || next.is_empty() {
            return Ok((items, position, next));
        }
        if next == token {
            return Err(Status::internal(
                "the server sent the same page token twice; stopping",
            ));
        }
        token = next;
    }
}
