#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.
//! Server-sent events as the streamable HTTP transport carries JSON-RPC messages: events split
//! however the bytes arrive, and the one message a whole stream carries, when it carries one.

use countersign_mcp::sse::{self, Parser};

const ANSWER: &str =
    r#"{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"Echo: ping"}]}}"#;

#[test]
fn events_are_split_however_the_bytes_arrive() {
    let stream =
        format!(": priming\r\n\r\nevent: message\nid: 7\ndata: {ANSWER}\n\ndata: a\ndata: b\n\n");
    for cut in 0..stream.len() {
        let mut parser = Parser::default();
        let mut events = parser.push(&stream.as_bytes()[..cut]);
        events.extend(parser.push(&stream.as_bytes()[cut..]));
        assert!(parser.rest().is_empty(), "cut at {cut}");
        let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["", ANSWER, "a\nb"], "cut at {cut}");
        assert_eq!(events[1].id.as_deref(), Some("7"));
        assert_eq!(events[1].kind.as_deref(), Some("message"));
        let raw: Vec<u8> = events.iter().flat_map(|e| e.raw.clone()).collect();
        assert_eq!(raw, stream.as_bytes(), "every byte is kept to relay");
    }
}

#[test]
fn a_stream_of_one_message_yields_it() {
    let plain = format!("event: message\nid: 4d4f\ndata: {ANSWER}\n\n");
    assert_eq!(sse::sole_message(plain.as_bytes()).as_deref(), Some(ANSWER));
    // A priming event (an id, no data) and comments are passed over; data lines are joined.
    let primed = "id: 0\nretry: 500\ndata:\n\n: keep-alive\n\ndata: {\"jsonrpc\":\"2.0\",\ndata: \"id\":1,\"result\":{}}\n\n";
    assert_eq!(
        sse::sole_message(primed.as_bytes()).as_deref(),
        Some("{\"jsonrpc\":\"2.0\",\n\"id\":1,\"result\":{}}")
    );
    assert_eq!(
        sse::sole_message(&sse::message_event(ANSWER.as_bytes())).as_deref(),
        Some(ANSWER)
    );
}

#[test]
fn a_stream_of_anything_else_yields_nothing() {
    let progress = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}"#;
    for stream in [
        String::new(),
        ": only a comment\n\n".to_owned(),
        format!("data: {progress}\n\ndata: {ANSWER}\n\n"),
        format!("event: other\ndata: {ANSWER}\n\n"),
        // Ended inside a second event, or without the blank line that ends the first.
        format!("data: {ANSWER}\n\ndata: {{\"jsonrpc\""),
        format!("data: {ANSWER}\n"),
    ] {
        assert_eq!(sse::sole_message(stream.as_bytes()), None, "{stream:?}");
    }
}
