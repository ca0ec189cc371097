//! Walking the pages of a list query.

use tonic::Status;

/// One page: its items, the position it reflects, the token of the next.
pub type Page<T> = (Vec<T>, u64, String);

/// Asks `page` for the page at `token` (its second argument says whether it
/// is the first, which alone waits for `min_position`), then, with `all`,
/// for every next one. Returns every item, the position of the last page
/// and the token that would continue.
pub async fn walk<T>(
    mut token: String,
    all: bool,
    mut page: impl AsyncFnMut(String, bool) -> Result<Page<T>, Status>,
) -> Result<Page<T>, Status> {
    let mut items = Vec::new();
    let mut first = true;
    loop {
        let (got, position, next) = page(token.clone(), first).await?;
        first = false;
        items.extend(got);
        if !all || next.is_empty() {
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
