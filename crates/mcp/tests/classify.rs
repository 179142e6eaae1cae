#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.
//! What Countersign reads in a message: tool calls however they are spelled, cancellations,
//! batches, servers' answers; and what it refuses to forward because it cannot read it.

use countersign_mcp::message::{
    self, Answer, INVALID_PARAMS, INVALID_REQUEST, Inbound, PARSE_ERROR, Refusal, classify,
};
use serde_json::{Value, json};

fn tool_call(text: &str) -> message::ToolCall {
    match classify(text.as_bytes()) {
        Inbound::ToolCall(call) => call,
        other => panic!("expected a tool call from {text}, got {other:?}"),
    }
}

fn refused(text: &str) -> Refusal {
    match classify(text.as_bytes()) {
        Inbound::Refused(refusal) => refusal,
        other => panic!("expected {text} to be refused, got {other:?}"),
    }
}

#[test]
fn a_tool_call_yields_its_id_name_arguments_and_progress_token() {
    let call = tool_call(
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":1,"b":2},"_meta":{"progressToken":"p-1"}}}"#,
    );
    assert_eq!(call.id.as_json(), "7");
    assert_eq!(call.name, "get-sum");
    assert_eq!(call.arguments, json!({"a": 1, "b": 2}));
    assert_eq!(call.progress_token.unwrap().get(), r#""p-1""#);

    let bare =
        tool_call(r#"{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"ping"}}"#);
    assert_eq!(bare.id.as_json(), r#""x""#);
    assert_eq!(bare.arguments, json!({}));
    assert!(bare.progress_token.is_none());
}

#[test]
fn escapes_do_not_hide_a_tool_call() {
    // What the server decodes as tools/call, Countersign reads as tools/call too.
    for text in [
        r#"{"id":1,"method":"tools\/call","params":{"name":"get-env"}}"#,
        r#"{"id":1,"method":"\u0074ools/call","params":{"name":"get-env"}}"#,
        r#"{"id":1,"m\u0065thod":"tools/call","params":{"n\u0061me":"get\u002denv"}}"#,
        " \t{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"get-env\"}}\r\n",
    ] {
        assert_eq!(tool_call(text).name, "get-env", "{text}");
    }
}

#[test]
fn what_cannot_be_read_unambiguously_is_refused() {
    // Duplicate keys: a server taking the last one would run another tool than the one checked.
    let duplicate =
        refused(r#"{"id":1,"method":"tools/list","method":"tools/call","params":{"name":"x"}}"#);
    assert_eq!(duplicate.code, INVALID_REQUEST);
    assert!(
        duplicate.message.contains("duplicate field"),
        "{}",
        duplicate.message
    );
    let duplicate_name =
        refused(r#"{"id":1,"method":"tools/call","params":{"name":"echo","name":"get-env"}}"#);
    assert_eq!(duplicate_name.id.unwrap().as_json(), "1");

    assert_eq!(refused("{\"id\":1,\"method\":").code, PARSE_ERROR);
    assert_eq!(refused("\"tools/call\"").code, PARSE_ERROR);
    assert_eq!(
        refused(r#"{"id":1,"method":"tools/call","params":{"name":"\ud800"}}"#).code,
        PARSE_ERROR
    );
    let deep = format!(
        r#"{{"id":1,"method":"tools/call","params":{{"name":"x","arguments":{{"a":{}1{}}}}}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    assert!(matches!(classify(deep.as_bytes()), Inbound::Refused(_)));

    let not_object =
        refused(r#"{"id":2,"method":"tools/call","params":{"name":"x","arguments":[1]}}"#);
    assert_eq!(
        (not_object.code, not_object.id.unwrap().as_json().to_owned()),
        (INVALID_PARAMS, "2".to_owned())
    );
    assert_eq!(
        refused(r#"{"id":3,"method":"tools/call"}"#).code,
        INVALID_PARAMS
    );
    // A tools/call without an id cannot be answered, and is never forwarded.
    let notification = refused(r#"{"method":"tools/call","params":{"name":"x"}}"#);
    assert_eq!(
        (notification.id, notification.code),
        (None, INVALID_REQUEST)
    );
}

#[test]
fn a_key_twice_in_the_arguments_is_refused_by_name() {
    // The gate would check one path and the server (keeping the last, or the first) read the
    // other: refused, naming the key, at any depth of the arguments, however the key is spelled.
    for (text, key) in [
        (
            r#"{"id":1,"method":"tools/call","params":{"name":"read","arguments":{"path":"/tmp/a","path":"/etc/shadow"}}}"#,
            "path",
        ),
        (
            r#"{"id":1,"method":"tools/call","params":{"name":"read","arguments":{"o":{"path":"/tmp/a","p\u0061th":"/etc"}}}}"#,
            "path",
        ),
        (
            r#"{"id":1,"method":"tools/call","params":{"name":"read","arguments":{"list":[{"x":1,"x":2}]}}}"#,
            "x",
        ),
    ] {
        let refusal = refused(text);
        assert_eq!(refusal.id.as_ref().unwrap().as_json(), "1", "{text}");
        assert!(
            refusal
                .message
                .contains(&format!("the key \"{key}\" appears twice in one object")),
            "{text}: {}",
            refusal.message
        );
    }
    let Inbound::Batch(items) = classify(
        br#"[{"id":1,"method":"tools/call","params":{"name":"echo","arguments":{"m":1,"m":2}}}]"#,
    ) else {
        panic!()
    };
    assert!(matches!(items[0], Inbound::Refused(_)), "{items:?}");
    // The same key in two objects is no duplicate.
    let call = tool_call(
        r#"{"id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":{"k":1},"b":{"k":2}}}}"#,
    );
    assert_eq!(call.arguments, json!({"a": {"k": 1}, "b": {"k": 2}}));
}

#[test]
fn everything_else_passes_unread() {
    for text in [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"file:///tools/call"}}"#,
        r#"{"jsonrpc":"2.0","id":0,"result":{"model":"m","role":"assistant","content":{"type":"text","text":"tools/call"}}}"#,
        r#"{"jsonrpc":"2.0","id":"s-1","error":{"code":-1,"message":"no"}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"reason":"no id"}}"#,
    ] {
        assert!(matches!(classify(text.as_bytes()), Inbound::Pass), "{text}");
    }
}

#[test]
fn a_cancellation_names_its_request_however_the_id_is_spelled() {
    let Inbound::Cancelled(id) = classify(br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"user"}}"#) else {
        panic!()
    };
    assert_eq!(
        id,
        tool_call(r#"{"id":7,"method":"tools/call","params":{"name":"x"}}"#).id
    );
    let Inbound::Cancelled(id) =
        classify(br#"{"method":"notifications/cancelled","params":{"requestId":"a\u0062"}}"#)
    else {
        panic!()
    };
    assert_eq!(id.as_json(), r#""ab""#);
}

#[test]
fn a_batch_is_classified_message_by_message() {
    let Inbound::Batch(items) = classify(
        br#"[{"id":1,"method":"tools/call","params":{"name":"echo"}},{"method":"notifications/initialized"},5]"#,
    ) else {
        panic!()
    };
    assert!(matches!(items[0], Inbound::ToolCall(_)));
    assert!(matches!(items[1], Inbound::Pass));
    assert!(matches!(items[2], Inbound::Refused(_)));
    assert_eq!(refused("[]").code, INVALID_REQUEST);
}

#[test]
fn a_servers_answers_are_read_by_id() {
    let answers = message::answers(
        br#"[{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"5"}]}},
             {"jsonrpc":"2.0","id":"b","result":{"content":[{"type":"image","data":""},{"type":"text","text":"boom"}],"isError":true}},
             {"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"bad"}},
             {"jsonrpc":"2.0","id":4,"method":"sampling/createMessage","params":{}},
             {"jsonrpc":"2.0","method":"notifications/progress","params":{}}]"#,
    );
    let shown: Vec<(String, Answer)> = answers
        .into_iter()
        .map(|(id, a)| (id.as_json().to_owned(), a))
        .collect();
    assert_eq!(
        shown,
        [
            ("1".to_owned(), Answer::Result),
            (r#""b""#.to_owned(), Answer::ToolError(Some("boom".into()))),
            (
                "3".to_owned(),
                Answer::Error {
                    code: -32602,
                    message: "bad".into()
                }
            ),
        ]
    );
    assert!(message::answers(b"not json").is_empty());
}

#[test]
fn a_response_is_told_from_requests_notifications_and_batches() {
    for response in [
        r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#,
        r#"{"jsonrpc":"2.0","id":"a","error":{"code":-32602,"message":"bad"}}"#,
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}"#,
    ] {
        assert!(message::is_response(response.as_bytes()), "{response}");
    }
    for other in [
        r#"{"jsonrpc":"2.0","id":4,"method":"sampling/createMessage","params":{}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#,
        r#"[{"jsonrpc":"2.0","id":1,"result":{}}]"#,
        r#"{"jsonrpc":"2.0","result":{}}"#,
        r#"{"jsonrpc":"2.0","id":1}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"both"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"id":2,"result":{}}"#,
        "not json",
    ] {
        assert!(!message::is_response(other.as_bytes()), "{other}");
    }
}

#[test]
fn replies_are_one_line_of_json_rpc() {
    let call = tool_call(r#"{"id":"q","method":"tools/call","params":{"name":"x"}}"#);
    let reply = message::tool_error(&call.id, "denied\nby rule");
    assert_eq!(reply.iter().filter(|&&b| b == b'\n').count(), 1);
    let value: Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(
        value,
        json!({"jsonrpc": "2.0", "id": "q", "result": {"content": [{"type": "text", "text": "denied\nby rule"}], "isError": true}})
    );
    let token = serde_json::value::RawValue::from_string("42".into()).unwrap();
    let progress: Value = serde_json::from_slice(&message::progress(&token, 3, "waiting")).unwrap();
    assert_eq!(
        progress["params"],
        json!({"progressToken": 42, "progress": 3, "message": "waiting"})
    );
    let batch: Value = serde_json::from_slice(&message::batch(&[reply.clone(), reply])).unwrap();
    assert_eq!(batch.as_array().unwrap().len(), 2);
}
