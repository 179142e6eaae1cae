#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.
//! The stdio framing and relay without processes: lines in, the exact bytes out on the right
//! side, Countersign's own answers for what it refuses.

use std::io::{Cursor, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use countersign_mcp::framing::LineReader;
use countersign_mcp::stdio::{Ended, Relay};
use countersign_test_support::mcp as support;
use serde_json::Value;

#[test]
fn lines_are_read_whole_with_their_newline() {
    let mut reader = LineReader::new(
        Cursor::new(b"{\"a\":1}\n\r\n{\"b\":2}\r\n{\"c\":3}".to_vec()),
        1024,
    );
    let mut line = Vec::new();
    let mut lines = Vec::new();
    while reader.read_line(&mut line).unwrap() {
        lines.push(String::from_utf8(line.clone()).unwrap());
    }
    assert_eq!(
        lines,
        ["{\"a\":1}\n", "\r\n", "{\"b\":2}\r\n", "{\"c\":3}\n"]
    );
}

#[test]
fn a_line_longer_than_the_limit_is_an_error_not_a_split() {
    let mut reader = LineReader::new(Cursor::new(vec![b'x'; 100_000]), 64 * 1024);
    let error = reader.read_line(&mut Vec::new()).unwrap_err();
    assert!(
        error.to_string().contains("one JSON text per line"),
        "{error}"
    );
}

/// A writer whose bytes the test can read.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn relay(dir: &std::path::Path) -> (Arc<Relay>, Shared, Shared) {
    relay_with(dir, Duration::from_secs(3600))
}

fn relay_with(dir: &std::path::Path, policy_max_age: Duration) -> (Arc<Relay>, Shared, Shared) {
    let gate = support::echo_gate(dir, policy_max_age);
    let (server, client) = (Shared::default(), Shared::default());
    let relay = Relay::new(
        Arc::new(gate),
        Box::new(server.clone()),
        Box::new(client.clone()),
        tokio::runtime::Handle::current(),
    );
    (relay, server, client)
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    countersign_test_support::scratch::unused_path(&format!("relay-{name}"))
}

#[tokio::test]
async fn allowed_calls_and_other_messages_reach_the_server_byte_for_byte() {
    let dir = temp_dir("pass");
    let (relay, server, client) = relay(&dir);
    let lines = [
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{ \"weird\" :  \"spacing\" }}\n",
        "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"é\\u00e9\"}}}\r\n",
        "   \n",
        "{\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"result\":{}}\n",
    ];
    let ended = relay.pump_client(Cursor::new(lines.concat().into_bytes()));
    assert_eq!(ended, Ended::ClientClosed);
    assert_eq!(server.text(), lines.concat());
    assert_eq!(client.text(), "");
    let spooled = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(spooled, 1, "the allowed call's event is in the spool");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn denied_and_unreadable_calls_are_answered_here_and_never_forwarded() {
    let dir = temp_dir("deny");
    let (relay, server, client) = relay(&dir);
    relay.from_client(b"{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":\"get-env\"}}\n");
    relay.from_client(b"{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"name\":\"get-env\"}}\n");
    relay.from_client(b"[{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"}},{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\",\"params\":{\"name\":\"get-env\"}}]\n");
    assert_eq!(server.text(), "");
    let answers: Vec<Value> = client
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers[0]["id"], 5);
    assert_eq!(answers[0]["result"]["isError"], true);
    let text = answers[0]["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("Countersign denied this call to `get-env`; it was not run. Denied by the policy's default"), "{text}");
    assert_eq!(answers[1]["id"], 6);
    assert!(
        answers[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("duplicate field")
    );
    // A batch with a denied call is not forwarded, not even its allowed part.
    assert_eq!(answers[2].as_array().unwrap().len(), 1);
    assert_eq!(answers[2][0]["id"], 8);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_allowed_tool_whose_arguments_repeat_a_key_is_refused_not_forwarded() {
    let dir = temp_dir("duplicate-argument");
    let (relay, server, client) = relay(&dir);
    relay.from_client(b"{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"checked\",\"message\":\"run\"}}}\n");
    assert_eq!(server.text(), "", "the server never sees the call");
    let answer: Value = serde_json::from_str(client.text().trim()).unwrap();
    assert_eq!(answer["id"], 11);
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("the key \"message\" appears twice in one object"),
        "{message}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_servers_lines_reach_the_client_unchanged() {
    let dir = temp_dir("server");
    let (relay, _server, client) = relay(&dir);
    let lines = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[]}}\n{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"sampling/createMessage\",\"params\":{}}\nnot json at all\n";
    let ended = relay.pump_server(Cursor::new(lines.as_bytes().to_vec()));
    assert_eq!(ended, Ended::ServerClosed);
    assert_eq!(client.text(), lines);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_policy_the_broker_has_not_confirmed_for_too_long_runs_nothing() {
    let dir = temp_dir("stale");
    // A maximum age of zero: the policy in hand is always older than allowed.
    let (relay, server, client) = relay_with(&dir, Duration::ZERO);
    relay.from_client(b"{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{}}}\n");
    relay.from_client(b"{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tools/list\"}\n");
    assert_eq!(
        server.text(),
        "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tools/list\"}\n",
        "only the call that is not a tool call goes on"
    );
    let answer: Value = serde_json::from_str(client.text().trim()).unwrap();
    assert_eq!(answer["id"], 9);
    assert_eq!(answer["result"]["isError"], true);
    let text = answer["result"]["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("has not confirmed the policy") && text.contains("http://127.0.0.1:9"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
