//! What a call sends besides its token: the JSON body, the query string and the request id in the
//! path. Every problem with them becomes the API's JSON error, naming the field and the problem
//! in the API's own words (object, array, whole number), never a Rust type.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use countersign_api::ErrorCode;
use countersign_model::RequestId;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{MAX_AUDIT_BODY, MAX_BODY};
use crate::error::ApiError;
use crate::listener::BodyStalled;

/// A JSON body whose problems become a 400 (or 408, 413, 415) that says what is wrong.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(unreadable)?;
        parse_json(&bytes).map(Body)
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The body could not be read: too large, stalled, or the connection failed.
fn unreadable(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::TooLarge,
            format!(
                "the request body is too large (at most {} KiB; reported audit events at most {} \
                 MiB per call)",
                MAX_BODY / 1024,
                MAX_AUDIT_BODY / (1024 * 1024)
            ),
        );
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&rejection);
    while let Some(error) = source {
        if let Some(stalled) = error.downcast_ref::<BodyStalled>() {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::RequestTimeout,
                format!("{stalled}; send the whole body at once"),
            );
        }
        source = error.source();
    }
    ApiError::bad_request("the request body could not be read: the connection failed")
}

/// Parses a JSON body into `T`, naming the field at fault.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let not_json = |e: &serde_json::Error| {
        ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
    };
    // serde also reads an object from an array of its fields in order; the API takes objects.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            return Err(not_json(&e));
        }
        return Err(ApiError::bad_request(
            "the request body must be a JSON object: {\"field\": value, …}",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let inner = e.inner();
        let mut path = e.path().to_string();
        // The path of an unknown field ends in that field; the message names it already.
        if inner.to_string().starts_with("unknown field") {
            path = match path.rfind('.') {
                Some(0) | None => ".".to_owned(),
                Some(dot) => path[..dot].to_owned(),
            };
        }
        let at = if path == "." {
            "the request body".to_owned()
        } else {
            format!("the field {path}")
        };
        if inner.is_syntax() || inner.is_eof() {
            // serde_json also says "expected value" of a word (`ran`, `failed`) sent as a number.
            return match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Err(_) => not_json(inner),
                Ok(_) => ApiError::bad_request(format!(
                    "{at}: the value has the wrong type (see /openapi.json for what it takes)"
                )),
            };
        }
        ApiError::bad_request(format!("{at}: {}", plain_words(&inner.to_string())))
    })?;
    deserializer.end().map_err(|e| not_json(&e))?;
    Ok(value)
}

/// 2^53 − 1: the largest integer every JSON reader holds exactly. Every float beyond it is a
/// whole number too, so one bound covers all numbers (the `Json` schema of openapi.json).
pub const MAX_EXACT: f64 = 9_007_199_254_740_991.0;

/// The path of the first number in `value` beyond ±[`MAX_EXACT`].
pub fn inexact_number(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::Number(n) => n
            .as_f64()
            .is_none_or(|f| f.abs() > MAX_EXACT)
            .then(|| path.to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| inexact_number(v, &format!("{path}[{i}]"))),
        Value::Object(map) => map
            .iter()
            .find_map(|(k, v)| inexact_number(v, &format!("{path}.{k}"))),
        _ => None,
    }
}

/// A query string whose problems become a 400 naming the parameter.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Query)
            .map_err(|e| {
                let path = e.path().to_string();
                let mut message = plain_words(&e.inner().to_string());
                for (from, to) in [
                    ("unknown field", "unknown query parameter"),
                    ("duplicate field", "repeated query parameter"),
                    ("invalid digit found in string", "expected a whole number"),
                    (
                        "cannot parse integer from empty string",
                        "expected a whole number",
                    ),
                    (
                        "number too large to fit in target type",
                        "the number is too large",
                    ),
                    (
                        "number too small to fit in target type",
                        "the number is too small",
                    ),
                ] {
                    message = message.replace(from, to);
                }
                if path == "." || message.starts_with("unknown query parameter") {
                    ApiError::bad_request(message)
                } else {
                    ApiError::bad_request(format!("the query parameter {path}: {message}"))
                }
            })
    }
}

/// Checks a number from the query string against its documented range.
pub fn within<N: PartialOrd + std::fmt::Display + Copy>(
    name: &str,
    value: Option<N>,
    min: N,
    max: N,
) -> Result<Option<N>, ApiError> {
    match value {
        Some(n) if n < min || n > max => Err(ApiError::bad_request(format!(
            "the query parameter {name} must be from {min} to {max}, not {n}"
        ))),
        other => Ok(other),
    }
}

/// The request id of `/v1/requests/{id}/…`.
#[derive(Debug, Clone, Copy)]
pub struct PathId(pub RequestId);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(text) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| {
                    ApiError::bad_request(
                        "the request id in the path is not valid text: it is r_ followed by 32 \
                         hex digits",
                    )
                })?;
        super::request_id(&text).map(PathId)
    }
}

/// Says serde's descriptions of JSON in the API's words: `map` is an object, `sequence` an array,
/// and a Rust type (`struct ActionBody`, `u32`) is the kind of value it stands for.
pub fn plain_words(message: &str) -> String {
    let mut text = message.to_owned();
    for (from, to) in [
        ("invalid type: map", "invalid type: an object"),
        ("invalid type: sequence", "invalid type: an array"),
        ("invalid type: unit value", "invalid type: null"),
        ("invalid type: floating point", "invalid type: the number"),
        ("invalid value: integer", "invalid value: the number"),
        ("invalid type: integer", "invalid type: the number"),
        ("expected a map", "expected an object"),
        ("expected a sequence", "expected an array"),
        ("expected a borrowed string", "expected a string"),
    ] {
        text = text.replace(from, to);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("expected ") {
        let (before, after) = rest.split_at(at + "expected ".len());
        out.push_str(before);
        let (word, tail) = split_word(after);
        let (said, tail) = match word {
            "struct" | "enum" | "tuple" => {
                // The type's name (after `tuple struct`, two words) says nothing to the caller.
                let (name, mut tail) = split_word(tail.trim_start());
                if word == "tuple" && name == "struct" {
                    tail = split_word(tail.trim_start()).1;
                }
                let said = if word == "enum" {
                    "one of the allowed words"
                } else {
                    "an object"
                };
                (said.to_owned(), tail)
            }
            other => match integer_range(other) {
                Some(range) => (range, tail),
                None if other == "f32" || other == "f64" => ("a number".to_owned(), tail),
                None => (word.to_owned(), tail),
            },
        };
        out.push_str(&said);
        rest = tail;
    }
    out.push_str(rest);
    out
}

fn split_word(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    text.split_at(end)
}

fn integer_range(name: &str) -> Option<String> {
    let (min, max): (i128, i128) = match name {
        "u8" => (0, u8::MAX.into()),
        "u16" => (0, u16::MAX.into()),
        "u32" => (0, u32::MAX.into()),
        "u64" | "usize" => (0, u64::MAX.into()),
        "i8" => (i8::MIN.into(), i8::MAX.into()),
        "i16" => (i16::MIN.into(), i16::MAX.into()),
        "i32" => (i32::MIN.into(), i32::MAX.into()),
        "i64" | "isize" => (i64::MIN.into(), i64::MAX.into()),
        _ => return None,
    };
    Some(format!("a whole number from {min} to {max}"))
}
