//! The OpenAPI 3.1 document of the API v1, generated from the wire types: `document()` builds it,
//! `GET /openapi.json` serves the committed copy (crates/api/openapi.json), and a test fails when
//! the two differ (regenerate with `UPDATE_OPENAPI=1 cargo test -p countersign-api`).

mod paths;
pub(crate) mod schemas;

use utoipa::ToSchema;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, Content, InfoBuilder, OpenApi, OpenApiBuilder, Ref, ResponseBuilder,
};

use crate::{
    ActionBody, ActionView, AppendBody, Appended, AuditEventView, AuditKey, AuditPage,
    ChainHeadView, ChainView, CheckpointView, ConsumeBody, ErrorBody, ErrorCode, ErrorDetail,
    GrantConsumed, GrantView, Health, OutcomeBody, OutcomeRecorded, PolicyReloaded, PolicySummary,
    PolicyView, ProgressView, RawVerification, Readiness, RequestList, RequestState, RequestView,
    RequirementView, ReviewBody, ReviewView, Whoami,
};

/// The committed document, as `GET /openapi.json` serves it.
pub const COMMITTED: &str = include_str!("../../openapi.json");

/// Registers `T`'s schema under its name.
fn with<T: ToSchema>(components: ComponentsBuilder) -> ComponentsBuilder {
    components.schema_from::<T>()
}

/// The OpenAPI document of the API v1.
pub fn document() -> OpenApi {
    let mut components = ComponentsBuilder::new()
        .security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        )
        .response(
            "Error",
            ResponseBuilder::new()
                .description("an error")
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("Error"))),
                )
                .build(),
        )
        .schemas_from_iter(schemas::named());
    for register in [
        with::<ActionBody>,
        with::<ReviewBody>,
        with::<ConsumeBody>,
        with::<OutcomeBody>,
        with::<AppendBody>,
        with::<RequestView>,
        with::<RequestState>,
        with::<ActionView>,
        with::<ChainView>,
        with::<RequirementView>,
        with::<ProgressView>,
        with::<ReviewView>,
        with::<GrantView>,
        with::<RequestList>,
        with::<OutcomeRecorded>,
        with::<GrantConsumed>,
        with::<PolicyView>,
        with::<PolicyReloaded>,
        with::<Whoami>,
        with::<AuditPage>,
        with::<AuditEventView>,
        with::<CheckpointView>,
        with::<ChainHeadView>,
        with::<RawVerification>,
        with::<Appended>,
        with::<AuditKey>,
        with::<Health>,
        with::<Readiness>,
        with::<PolicySummary>,
        with::<ErrorBody>,
        with::<ErrorDetail>,
        with::<ErrorCode>,
    ] {
        components = register(components);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Countersign API")
                .version("1")
                .description(Some(
                    "Runtime enforcement for AI agents and automation: evaluate actions, review \
                     requests, consume grants, read the audit log. See docs/api.md.",
                )),
        )
        .security(Some([SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]))
        .paths(paths::paths())
        .components(Some(components.build()))
        .build()
}

/// The document as committed: pretty-printed JSON with a final newline.
pub fn render() -> Result<String, serde_json::Error> {
    let mut text = serde_json::to_string_pretty(&document())?;
    text.push('\n');
    Ok(text)
}
