//! What a JSON-RPC message means to Countersign, read from its bytes without re-serializing it:
//! a `tools/call` to gate, a `notifications/cancelled` that may withdraw a held call, or anything
//! else, which passes unchanged. Also the few messages Countersign writes itself.
//!
//! A message Countersign cannot read is never forwarded: the server would read it some other way,
//! and a tool call could slip through unchecked. Duplicate keys (in the message, its params and
//! anywhere in a tool call's arguments), invalid escapes and nesting deeper than the parser
//! allows are refused for the same reason.

use std::borrow::Cow;
use std::fmt;

use countersign_model::strict_json::StrictValue;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// JSON-RPC error codes Countersign answers with.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const INVALID_PARAMS: i64 = -32602;

/// A JSON-RPC id, kept as its canonical JSON text (`5`, `"abc"`), so that the id of a request and
/// the `requestId` of its cancellation compare equal however each was spelled.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RpcId(String);

impl RpcId {
    fn from_raw(raw: &RawValue) -> Option<RpcId> {
        match serde_json::from_str::<Value>(raw.get()).ok()? {
            id @ (Value::String(_) | Value::Number(_)) => Some(RpcId(id.to_string())),
            _ => None,
        }
    }

    /// The id as JSON, for a reply.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }

    pub fn as_json(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RpcId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A `tools/call` request.
#[derive(Debug, Clone)]
pub struct ToolCall {
    pub id: RpcId,
    /// The tool's name, as the server will read it.
    pub name: String,
    /// The arguments object (`{}` when the call has none).
    pub arguments: Value,
    /// `params._meta.progressToken`, as JSON, when the client asked for progress.
    pub progress_token: Option<Box<RawValue>>,
}

/// A message from the client, classified.
#[derive(Debug)]
pub enum Inbound {
    ToolCall(ToolCall),
    /// `notifications/cancelled` for the request with this id.
    Cancelled(RpcId),
    /// A JSON-RPC batch (protocol revision 2025-03-26): its messages, classified.
    Batch(Vec<Inbound>),
    /// Anything else: forwarded unchanged.
    Pass,
    /// Not forwarded; answered with this error when it has an id.
    Refused(Refusal),
}

/// Why a message is not forwarded, as a JSON-RPC error.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The id to answer, if the message had one.
    pub id: Option<RpcId>,
    pub code: i64,
    pub message: String,
}

impl Refusal {
    fn new(id: Option<RpcId>, code: i64, message: impl Into<String>) -> Refusal {
        Refusal {
            id,
            code,
            message: message.into(),
        }
    }
}

/// The fields that decide what a message is; everything else is skipped unread.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ToolCallParams<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    /// Read strictly: a key given twice in the arguments could be checked with one value and run
    /// with the other.
    #[serde(default)]
    arguments: Option<StrictValue>,
    #[serde(borrow, default, rename = "_meta")]
    meta: Option<Meta<'a>>,
}

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(borrow, default, rename = "progressToken")]
    progress_token: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct CancelledParams<'a> {
    #[serde(borrow, default, rename = "requestId")]
    request_id: Option<&'a RawValue>,
}

/// Classifies one message (a line of the stdio transport, or a POST body), surrounding
/// whitespace allowed.
pub fn classify(bytes: &[u8]) -> Inbound {
    let text = bytes.trim_ascii();
    match text.first() {
        Some(b'{') => classify_object(text),
        Some(b'[') => classify_batch(text),
        _ => Inbound::Refused(Refusal::new(
            None,
            PARSE_ERROR,
            "Countersign could not read this message: a JSON-RPC message is a JSON object",
        )),
    }
}

fn classify_batch(text: &[u8]) -> Inbound {
    match serde_json::from_slice::<Vec<&RawValue>>(text) {
        Ok(items) if !items.is_empty() => Inbound::Batch(
            items
                .iter()
                .map(|item| match item.get().as_bytes().first() {
                    Some(b'{') => classify_object(item.get().as_bytes()),
                    _ => Inbound::Refused(Refusal::new(
                        None,
                        INVALID_REQUEST,
                        "a batch may hold only JSON-RPC messages (objects)",
                    )),
                })
                .collect(),
        ),
        Ok(_) => Inbound::Refused(Refusal::new(None, INVALID_REQUEST, "the batch is empty")),
        Err(e) => unreadable(None, &e),
    }
}

fn classify_object(text: &[u8]) -> Inbound {
    let probe: Probe<'_> = match serde_json::from_slice(text) {
        Ok(probe) => probe,
        Err(e) => return unreadable(None, &e),
    };
    let id = probe.id.and_then(RpcId::from_raw);
    match probe.method.as_deref() {
        Some("tools/call") => tool_call(id, probe.params),
        Some("notifications/cancelled") => {
            let params = probe
                .params
                .map(|raw| serde_json::from_str::<CancelledParams<'_>>(raw.get()));
            match params {
                Some(Ok(CancelledParams {
                    request_id: Some(raw),
                })) => RpcId::from_raw(raw).map_or(Inbound::Pass, Inbound::Cancelled),
                Some(Err(e)) => unreadable(None, &e),
                _ => Inbound::Pass,
            }
        }
        _ => Inbound::Pass,
    }
}

fn tool_call(id: Option<RpcId>, params: Option<&RawValue>) -> Inbound {
    let Some(id) = id else {
        return Inbound::Refused(Refusal::new(
            None,
            INVALID_REQUEST,
            "a tools/call must be a request with a string or number id",
        ));
    };
    let Some(params) = params else {
        return Inbound::Refused(Refusal::new(
            Some(id),
            INVALID_PARAMS,
            "a tools/call needs params with the tool's name",
        ));
    };
    let params: ToolCallParams<'_> = match serde_json::from_str(params.get()) {
        Ok(params) => params,
        Err(e) => return unreadable(Some(id), &e),
    };
    let arguments = match params.arguments.map(|strict| strict.0) {
        None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
        Some(arguments @ Value::Object(_)) => arguments,
        Some(_) => {
            return Inbound::Refused(Refusal::new(
                Some(id),
                INVALID_PARAMS,
                "the arguments of a tools/call must be a JSON object",
            ));
        }
    };
    let progress_token = params
        .meta
        .and_then(|meta| meta.progress_token)
        .filter(|token| {
            matches!(
                token.get().as_bytes().first(),
                Some(b'"' | b'-' | b'0'..=b'9')
            )
        })
        .map(ToOwned::to_owned);
    Inbound::ToolCall(ToolCall {
        id,
        name: params.name.into_owned(),
        arguments,
        progress_token,
    })
}

fn unreadable(id: Option<RpcId>, error: &serde_json::Error) -> Inbound {
    let code = if error.is_data() {
        INVALID_REQUEST
    } else {
        PARSE_ERROR
    };
    Inbound::Refused(Refusal::new(
        id,
        code,
        format!(
            "Countersign could not read this message, so it was not forwarded: {error}; send \
             well-formed JSON-RPC with each key once"
        ),
    ))
}

/// The `method` of one message (not a batch, not a response), as the server will read it.
pub fn method_of(bytes: &[u8]) -> Option<String> {
    let text = bytes.trim_ascii();
    if text.first() != Some(&b'{') {
        return None;
    }
    let probe: Probe<'_> = serde_json::from_slice(text).ok()?;
    probe.method.map(Cow::into_owned)
}

/// What a server's answer to a request says, for the outcome of an approved call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A result (`isError` false or absent).
    Result,
    /// A tool result with `isError: true`; its first text, if any.
    ToolError(Option<String>),
    /// A JSON-RPC error.
    Error { code: i64, message: String },
}

#[derive(Deserialize)]
struct ResponseProbe<'a> {
    #[serde(borrow, default)]
    method: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(default)]
    result: Option<ResultProbe>,
    #[serde(default)]
    error: Option<ErrorProbe>,
}

#[derive(Deserialize)]
struct ResultProbe {
    #[serde(default, rename = "isError")]
    is_error: Option<bool>,
    #[serde(default)]
    content: Option<Vec<ContentProbe>>,
}

#[derive(Deserialize)]
struct ContentProbe {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct ErrorProbe {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

/// The responses in a message from the server (one, or several in a batch), by request id.
pub fn answers(bytes: &[u8]) -> Vec<(RpcId, Answer)> {
    let text = bytes.trim_ascii();
    let items: Vec<&RawValue> = match text.first() {
        Some(b'[') => serde_json::from_slice(text).unwrap_or_default(),
        _ => serde_json::from_slice::<&RawValue>(text)
            .into_iter()
            .collect(),
    };
    items
        .into_iter()
        .filter_map(|item| {
            let probe: ResponseProbe<'_> = serde_json::from_str(item.get()).ok()?;
            if probe.method.is_some() {
                return None;
            }
            let id = RpcId::from_raw(probe.id?)?;
            let answer = match (probe.result, probe.error) {
                (_, Some(error)) => Answer::Error {
                    code: error.code,
                    message: error.message,
                },
                (Some(result), None) if result.is_error == Some(true) => Answer::ToolError(
                    result
                        .content
                        .unwrap_or_default()
                        .into_iter()
                        .find_map(|c| c.text),
                ),
                (Some(_), None) => Answer::Result,
                (None, None) => return None,
            };
            Some((id, answer))
        })
        .collect()
}

/// Whether a server's message is one response (a result or an error), not a request, a
/// notification or a batch. Read shallowly: nothing inside the result is parsed.
pub fn is_response(bytes: &[u8]) -> bool {
    /// Which members the message has, whatever their values (`"id": null` included).
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default, deserialize_with = "present")]
        method: bool,
        #[serde(default, deserialize_with = "present")]
        id: bool,
        #[serde(default, deserialize_with = "present")]
        result: bool,
        #[serde(default, deserialize_with = "present")]
        error: bool,
    }
    fn present<'de, D: serde::Deserializer<'de>>(value: D) -> Result<bool, D::Error> {
        serde::de::IgnoredAny::deserialize(value).map(|_| true)
    }
    serde_json::from_slice::<Probe>(bytes)
        .is_ok_and(|probe| !probe.method && probe.id && probe.result != probe.error)
}

/// A tool result with `isError: true` and one text: how the model learns a call did not run.
pub fn tool_error(id: &RpcId, text: &str) -> Vec<u8> {
    line(&json!({
        "jsonrpc": "2.0",
        "id": id.to_value(),
        "result": {"content": [{"type": "text", "text": text}], "isError": true},
    }))
}

/// A JSON-RPC error response (`id: null` when the message had none).
pub fn error_response(refusal: &Refusal) -> Vec<u8> {
    line(&json!({
        "jsonrpc": "2.0",
        "id": refusal.id.as_ref().map_or(Value::Null, RpcId::to_value),
        "error": {"code": refusal.code, "message": refusal.message},
    }))
}

/// `notifications/progress` for a held call.
pub fn progress(token: &RawValue, progress: u64, message: &str) -> Vec<u8> {
    let token: Value = serde_json::from_str(token.get()).unwrap_or(Value::Null);
    line(&json!({
        "jsonrpc": "2.0",
        "method": "notifications/progress",
        "params": {"progressToken": token, "progress": progress, "message": message},
    }))
}

/// `notifications/cancelled` for a request, as Countersign sends it upstream.
pub fn cancelled(id: &RpcId, reason: &str) -> Vec<u8> {
    line(&json!({
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": id.to_value(), "reason": reason},
    }))
}

/// A batch of replies, one per line-free JSON text.
pub fn batch(replies: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(replies.iter().map(Vec::len).sum::<usize>() + 2);
    out.push(b'[');
    for (i, reply) in replies.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(reply.trim_ascii_end());
    }
    out.extend_from_slice(b"]\n");
    out
}

/// One message, newline-terminated (the stdio framing; harmless in an HTTP body).
fn line(value: &Value) -> Vec<u8> {
    let mut bytes = value.to_string().into_bytes();
    bytes.push(b'\n');
    bytes
}
