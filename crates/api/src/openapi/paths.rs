//! Every call of the API v1 as OpenAPI operations: its path, method, parameters, body, and every
//! status it can answer, each body named by the wire type that carries it.

use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, ArrayBuilder, ObjectBuilder, Ref, Schema, Type,
};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Content, Paths, PathsBuilder, RefOr, Required, ResponseBuilder};

use super::schemas::{digest, request_id};

fn named(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

/// One call: what it is for, the statuses it answers with a body of their own, and the error
/// statuses it can answer (each the JSON error object).
struct Call {
    operation: OperationBuilder,
}

impl Call {
    fn new(summary: &str, tag: &str) -> Call {
        Call {
            operation: OperationBuilder::new().summary(Some(summary)).tag(tag),
        }
    }

    fn answers(mut self, status: u16, description: &str, schema: Option<RefOr<Schema>>) -> Call {
        let mut response = ResponseBuilder::new().description(description);
        if let Some(schema) = schema {
            response = response.content("application/json", Content::new(Some(schema)));
        }
        self.operation = self
            .operation
            .response(status.to_string(), response.build());
        self
    }

    fn answers_as(mut self, status: u16, description: &str, media_type: &str) -> Call {
        let response = ResponseBuilder::new()
            .description(description)
            .content(media_type, Content::new(None::<RefOr<Schema>>));
        self.operation = self
            .operation
            .response(status.to_string(), response.build());
        self
    }

    fn errors(mut self, statuses: &[u16]) -> Call {
        for status in statuses {
            self.operation = self
                .operation
                .response(status.to_string(), Ref::from_response_name("Error"));
        }
        self
    }

    /// A JSON body: it can also be refused as malformed, slow, too large or not JSON.
    fn body(mut self, schema: RefOr<Schema>) -> Call {
        self.operation = self.operation.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", Content::new(Some(schema)))
                .build(),
        ));
        self
    }

    fn parameter(mut self, parameter: Parameter) -> Call {
        self.operation = self.operation.parameter(parameter);
        self
    }

    fn request_id(self) -> Call {
        self.parameter(
            ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(request_id()))
                .build(),
        )
    }

    fn description(mut self, text: &str) -> Call {
        self.operation = self.operation.description(Some(text));
        self
    }

    /// Answered without a token.
    fn open(mut self) -> Call {
        self.operation = self
            .operation
            .securities(Some(Vec::<SecurityRequirement>::new()));
        self
    }

    fn build(self) -> Operation {
        self.operation.build()
    }
}

fn query(name: &str, schema: impl Into<RefOr<Schema>>, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .schema(Some(schema))
        .description(Some(description))
        .build()
}

fn whole_number(minimum: u64, maximum: u64, default: u64) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(minimum))
        .maximum(Some(maximum))
        .default(Some(default.into()))
        .into()
}

fn states() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some([
            "pending",
            "approved",
            "denied",
            "expired",
            "cancelled",
        ]))
        .into()
}

/// The answer of `POST /v1/actions` for one decision: the decision, its rules and explanation,
/// and the digest evaluated; `request` for a gated action.
fn decision(word: &str, request: bool) -> ObjectBuilder {
    let mut answer = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "decision",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([word])),
        )
        .property(
            "rules",
            ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String)),
        )
        .property(
            "explanation",
            ObjectBuilder::new().schema_type(Type::String),
        )
        .property("digest", digest());
    if !request {
        return answer;
    }
    answer = answer.property("request", named("RequestView"));
    answer
}

fn required(object: ObjectBuilder, fields: &[&str]) -> ObjectBuilder {
    fields.iter().fold(object, |o, field| o.required(*field))
}

fn evaluate() -> Operation {
    let allowed = required(
        decision("allow", false).property(
            "labels",
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(
                    ObjectBuilder::new().schema_type(Type::String).into(),
                ))))
                .description(Some(
                    "the labels the action was decided with, which the digest covers",
                )),
        ),
        &["decision", "rules", "explanation", "digest"],
    );
    let gated = required(
        decision("require_approval", true),
        &["decision", "rules", "explanation", "digest", "request"],
    );
    let denied = AllOfBuilder::new()
        .item(named("Error"))
        .item(decision("deny", false));
    Call::new("Evaluate an action", "actions")
        .answers(
            200,
            "allowed, once its audit event is durable",
            Some(RefOr::T(allowed.into())),
        )
        .answers(
            202,
            "requires approval: a request was opened",
            Some(RefOr::T(gated.into())),
        )
        .answers(
            403,
            "denied by policy (the decision and the error); or (the error alone) on_behalf_of \
             names a human this principal may not act for, an agent sent labels \
             (labels_from_agent), the resource is outside the principal's bindings, or a \
             service vouched for a label or resource outside its vouches_for",
            Some(RefOr::T(Schema::AllOf(denied.build()))),
        )
        .errors(&[400, 401, 408, 413, 415, 503])
        .body(named("ActionBody"))
        .parameter(query(
            "wait",
            named("Duration"),
            "long-poll a gated action for up to this long (at most 60s)",
        ))
        .parameter(
            ParameterBuilder::new()
                .name("Countersign-Agent-Token")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .description(Some(
                    "a service principal only: the token of the agent it submits for, whose \
                     chain, labels and bindings then apply",
                ))
                .build(),
        )
        .build()
}

/// Statuses of a call that reads a body and names a request.
const BODY_AND_ID: [u16; 9] = [400, 401, 403, 404, 408, 409, 413, 415, 503];

pub fn paths() -> Paths {
    let get = |path: &str, call: Call| {
        (
            path.to_owned(),
            PathItem::new(HttpMethod::Get, call.build()),
        )
    };
    let post = |path: &str, call: Call| {
        (
            path.to_owned(),
            PathItem::new(HttpMethod::Post, call.build()),
        )
    };
    let items = [
        (
            "/v1/actions".to_owned(),
            PathItem::new(HttpMethod::Post, evaluate()),
        ),
        get(
            "/v1/requests",
            Call::new("List requests, newest first", "requests")
                .answers(200, "requests", Some(named("RequestList")))
                .errors(&[400, 401, 503])
                .parameter(query("state", states(), "only requests in this state"))
                .parameter(query(
                    "limit",
                    whole_number(1, 500, 50),
                    "at most this many",
                )),
        ),
        get(
            "/v1/requests/{id}",
            Call::new("Show a request", "requests")
                .answers(200, "the request", Some(named("RequestView")))
                .errors(&[400, 401, 404, 503])
                .request_id(),
        ),
        get(
            "/v1/requests/{id}/wait",
            Call::new("Wait for a request's decision", "requests")
                .answers(
                    200,
                    "the request, decided or still pending at the timeout",
                    Some(named("RequestView")),
                )
                .errors(&[400, 401, 404, 503])
                .request_id()
                .parameter(query("timeout", named("Duration"), "at most 60s")),
        ),
        post(
            "/v1/requests/{id}/reviews",
            Call::new("Approve or deny a request (humans only)", "requests")
                .answers(
                    200,
                    "the request after the review",
                    Some(named("RequestView")),
                )
                .errors(&BODY_AND_ID)
                .body(named("ReviewBody"))
                .request_id(),
        ),
        post(
            "/v1/requests/{id}/cancel",
            Call::new("Cancel a request (the requester)", "requests")
                .answers(200, "the cancelled request", Some(named("RequestView")))
                .errors(&[400, 401, 403, 404, 409, 503])
                .request_id(),
        ),
        post(
            "/v1/requests/{id}/outcome",
            Call::new("Record what happened when the action ran", "requests")
                .answers(200, "recorded", Some(named("OutcomeRecorded")))
                .errors(&BODY_AND_ID)
                .body(named("OutcomeBody"))
                .request_id(),
        ),
        post(
            "/v1/grants/consume",
            Call::new(
                "Consume a grant before running an approved action",
                "grants",
            )
            .answers(
                200,
                "consumed: the action may run once",
                Some(named("GrantConsumed")),
            )
            .errors(&[400, 401, 403, 408, 409, 413, 415, 503])
            .body(named("ConsumeBody")),
        ),
        get(
            "/v1/policy",
            Call::new("The policy in force", "policy")
                .answers(200, "text and hash", Some(named("PolicyView")))
                .errors(&[401]),
        ),
        get(
            "/v1/whoami",
            Call::new("The principal a token belongs to", "principals")
                .answers(200, "OK", Some(named("Whoami")))
                .errors(&[401]),
        ),
        post(
            "/v1/admin/policy/reload",
            Call::new("Reload the policy (human administrators)", "policy")
                .answers(200, "the new policy's hash", Some(named("PolicyReloaded")))
                .errors(&[400, 401, 403, 503]),
        ),
        get(
            "/v1/audit",
            Call::new("Read audit events (humans)", "audit")
                .answers(200, "OK", Some(named("AuditPage")))
                .errors(&[400, 401, 403, 503])
                .parameter(query(
                    "after",
                    whole_number(0, u64::MAX, 0),
                    "events after this sequence number",
                ))
                .parameter(query(
                    "limit",
                    whole_number(1, 5000, 500),
                    "at most this many",
                )),
        ),
        post(
            "/v1/audit/events",
            Call::new(
                "Append events an enforcement point decided locally (a request body of at most \
                 16 MiB, where other endpoints take 256 KiB)",
                "audit",
            )
            .description(
                "An enforcement point reports only its own: an action.outcome names a request of \
                 the caller's whose grant was consumed (404 for a request that does not exist, \
                 and for another agent's; 403 for another principal's reported by a human; 409 \
                 not_run before its grant was consumed); action.allowed and action.denied name \
                 no request, and their data.action.principal.id, if any, is the caller (else \
                 400).",
            )
            .answers(
                200,
                "appended: the events appended, and how many were left out because an event \
                 with the same data.event_id was recorded before",
                Some(named("Appended")),
            )
            .errors(&BODY_AND_ID)
            .body(named("AppendBody")),
        ),
        get(
            "/v1/audit/verify",
            Call::new(
                "Verify the audit chain and its checkpoints (humans)",
                "audit",
            )
            .answers(200, "OK", Some(named("AuditVerification")))
            .errors(&[401, 403, 503]),
        ),
        get(
            "/v1/audit/export",
            Call::new("Export the audit log as JSON Lines (humans)", "audit")
                .answers_as(200, "JSON Lines", "application/x-ndjson")
                .errors(&[400, 401, 403, 503]),
        ),
        get(
            "/v1/audit/key",
            Call::new(
                "The public key that verifies checkpoints and grants",
                "audit",
            )
            .answers(200, "OK", Some(named("AuditKey")))
            .errors(&[401]),
        ),
        get(
            "/healthz",
            Call::new("Whether the store can commit", "system")
                .description(
                    "200 {\"ok\": true} while a write can commit; 503 {\"ok\": false, \"error\": \
                     {\"code\": \"store_unavailable\", \"message\"}} when it cannot (a full \
                     disk, a database moved or deleted), and every call that must record \
                     something answers 503 too.",
                )
                .answers(200, "the store can commit", Some(named("Health")))
                .errors(&[503])
                .open(),
        ),
        get(
            "/readyz",
            Call::new(
                "Ready for traffic: the store is open and can commit, and a policy is in force",
                "system",
            )
            .answers(200, "ready", Some(named("Readiness")))
            .errors(&[503])
            .open(),
        ),
        get(
            "/metrics",
            Call::new("Prometheus metrics", "system")
                .answers_as(200, "text exposition format", "text/plain")
                .open(),
        ),
        get(
            "/openapi.json",
            Call::new("This document", "system")
                .answers(200, "OK", None)
                .open(),
        ),
    ];
    items
        .into_iter()
        .fold(PathsBuilder::new(), |paths, (path, item)| {
            paths.path(path, item)
        })
        .build()
}
