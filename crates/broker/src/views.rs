//! What the API shows of a request (docs/api.md, "Views"): the wire types of countersign-api.

pub use countersign_api::{GrantView, RequestView, ReviewView, summary};
use countersign_approval::Request;

pub fn view(request: &Request, grant: Option<GrantView>) -> RequestView {
    RequestView::of(request, grant)
}
