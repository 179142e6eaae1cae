//! The schemas of the values the core types carry (ids, digests, times, free-form JSON) and of the
//! few shapes serde's derive cannot say in JSON Schema (label names, the two kinds of reported
//! event): built here, referenced from the derived schemas of the wire types.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder,
    Ref, Schema, SchemaFormat, SchemaType, Type,
};

/// No control characters (C0, DEL, C1), as `Action::validate` requires of text reviewers read.
const NO_CONTROLS: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// 2^53 − 1, the bound of numbers in details and audit data (canonical JSON holds them exactly).
const MAX_EXACT: i64 = 9_007_199_254_740_991;

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn nullable(ty: Type) -> SchemaType {
    SchemaType::Array(vec![ty, Type::Null])
}

fn reference(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

pub fn request_id() -> RefOr<Schema> {
    reference("RequestId")
}

pub fn digest() -> RefOr<Schema> {
    reference("Digest")
}

pub fn principal_id() -> RefOr<Schema> {
    reference("PrincipalId")
}

pub fn json_object() -> RefOr<Schema> {
    reference("JsonObject")
}

pub fn any_json() -> RefOr<Schema> {
    reference("Json")
}

pub fn reported_event_data() -> RefOr<Schema> {
    reference("ReportedEventData")
}

/// A request id, or null.
pub fn request_id_or_null() -> Schema {
    Schema::AnyOf(
        AnyOfBuilder::new()
            .item(request_id())
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .build(),
    )
}

/// A time as the API writes it: RFC 3339 in UTC, to the millisecond.
pub fn timestamp() -> Schema {
    string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .into()
}

pub fn timestamp_or_null() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .into()
}

pub fn principal_kind() -> Schema {
    string()
        .enum_values(Some(["agent", "human", "service"]))
        .into()
}

pub fn verdict() -> Schema {
    string().enum_values(Some(["approve", "deny"])).into()
}

/// An action's kind: two or more lowercase words joined by dots.
pub fn action_kind() -> Schema {
    string()
        .max_length(Some(128))
        .pattern(Some("^[a-z][a-z0-9_-]*(\\.[a-z][a-z0-9_-]*)+$"))
        .description(Some("two or more lowercase words joined by dots"))
        .examples(["shell.exec"])
        .into()
}

pub fn resource() -> Schema {
    string()
        .min_length(Some(1))
        .max_length(Some(1024))
        .pattern(Some(NO_CONTROLS))
        .description(Some("1 to 1024 characters, no control characters"))
        .into()
}

/// Labels a service vouches for: names and values both bounded.
pub fn labels() -> Schema {
    pairs(
        "facts a service principal vouches for (agents may not send labels: theirs come from the \
         broker's configuration): names of 1 to 128 letters, digits or _ - . /; values of at \
         most 1024 characters without control characters",
    )
}

/// What an agent's tools claim: bounded as labels are.
pub fn claims() -> Schema {
    pairs(
        "claims of the agent's tools, shown to reviewers as its words: names of 1 to 128 \
         letters, digits or _ - . /; values of at most 1024 characters without control characters",
    )
}

fn pairs(description: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(string().pattern(Some("^[A-Za-z0-9_./-]{1,128}$"))))
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(
            string()
                .max_length(Some(1024))
                .pattern(Some(NO_CONTROLS))
                .into(),
        ))))
        .description(Some(description))
        .into()
}

pub fn justification() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .max_length(Some(4096))
        .into()
}

pub fn on_behalf_of() -> Schema {
    ArrayBuilder::new()
        .schema_type(nullable(Type::Array))
        .items(principal_id())
        .description(Some(
            "The humans the requester acts for; always every human the configuration names \
             (acts_for). If sent, it must name exactly those (else 403).",
        ))
        .into()
}

pub fn started_by() -> Schema {
    Schema::AnyOf(
        AnyOfBuilder::new()
            .item(principal_id())
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .description(Some(
                "Who starts the requester; always the principal's configured started_by. If \
                 sent, it must equal it (else 403).",
            ))
            .build(),
    )
}

pub fn comment() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .max_length(Some(2000))
        .into()
}

pub fn exit_code() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::Integer))
        .minimum(Some(i32::MIN))
        .maximum(Some(i32::MAX))
        .into()
}

pub fn outcome_summary() -> Schema {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .description(Some("kept to its first 1000 characters"))
        .into()
}

/// The events of one report: local decisions name no request, outcomes name theirs.
pub fn reported_events() -> Schema {
    let event = |kinds: &[&str], description: &str, request_id: RefOr<Schema>| {
        let mut object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
            .required("type")
            .required("explanation");
        if kinds == ["action.outcome"] {
            object = object.required("request_id");
        }
        object
            .property(
                "type",
                string()
                    .enum_values(Some(kinds.iter().copied()))
                    .description(Some(description)),
            )
            .property("request_id", request_id)
            .property("data", reported_event_data())
            .property("explanation", string())
    };
    ArrayBuilder::new()
        .max_items(Some(1000))
        .items(
            OneOfBuilder::new()
                .item(event(
                    &["action.allowed", "action.denied"],
                    "a decision the enforcement point made itself, without a request",
                    RefOr::T(
                        ObjectBuilder::new()
                            .schema_type(Type::Null)
                            .description(Some("a local decision names no request"))
                            .into(),
                    ),
                ))
                .item(event(
                    &["action.outcome"],
                    "how the action of one of the reporter's requests went, once its grant was \
                     consumed",
                    request_id(),
                )),
        )
        .into()
}

/// The schemas every other one refers to by name.
pub fn named() -> Vec<(&'static str, RefOr<Schema>)> {
    let json_number = ObjectBuilder::new()
        .schema_type(Type::Number)
        .minimum(Some(-MAX_EXACT))
        .maximum(Some(MAX_EXACT));
    let json = AnyOfBuilder::new()
        .description(Some(
            "any JSON value; numbers within ±(2^53−1), which RFC 8785 canonical JSON can \
             represent exactly",
        ))
        .item(string())
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .item(json_number)
        .item(ArrayBuilder::new().items(any_json()))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .additional_properties(Some(AdditionalProperties::RefOr(any_json()))),
        );
    let json_object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::RefOr(any_json())));
    let reported_data = ObjectBuilder::new()
        .schema_type(nullable(Type::Object))
        .property(
            "event_id",
            string().min_length(Some(1)).max_length(Some(256)),
        )
        .description(Some(
            "Structured details. An optional string data.event_id (1 to 256 characters), the \
             reporter's own id for the event, makes sending the event again harmless: an id \
             recorded before is not appended twice. null is the same as no data.",
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(any_json())));
    vec![
        (
            "PrincipalId",
            RefOr::T(
                string()
                    .pattern(Some("^[A-Za-z0-9][A-Za-z0-9._@+:-]{0,127}$"))
                    .description(Some(
                        "a principal's id: a letter or digit, then up to 127 letters, digits or \
                         . _ @ + : -",
                    ))
                    .into(),
            ),
        ),
        (
            "RequestId",
            RefOr::T(string().pattern(Some("^r_[0-9a-f]{32}$")).into()),
        ),
        (
            "Digest",
            RefOr::T(string().pattern(Some("^sha256:[0-9a-fA-F]{64}$")).into()),
        ),
        (
            "Duration",
            RefOr::T(
                string()
                    .pattern(Some("^([0-9]{1,9}[dhms]){1,4}$"))
                    .description(Some("a number and a unit, repeated: 90s, 30m, 1h30m, 2d"))
                    .examples(["30s"])
                    .into(),
            ),
        ),
        ("Json", RefOr::T(Schema::AnyOf(json.build()))),
        ("JsonObject", RefOr::T(json_object.into())),
        ("ReportedEventData", RefOr::T(reported_data.into())),
    ]
}
