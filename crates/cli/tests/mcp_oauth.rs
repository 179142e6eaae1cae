#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.
//! OAuth through `countersign mcp --listen`: an upstream MCP server that answers 401 with its
//! protected-resource metadata (RFC 9728) and is its own authorization server, the official MCP
//! Python SDK's OAuth flow as the client (it checks the metadata's `resource` against the URL it
//! connected to), direct and through the proxy, with a real broker deciding the tool calls.

#[allow(dead_code)]
mod mcp_peers;
mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};

use mcp_peers::{Process, listening_proxy, python, repo};
use serde_json::{Value, json};
use support::{Server, start_server_with_policy};

const POLICY: &str = r#"
version = 1
default = "deny"

[[rules]]
id = "echo"
decision = "allow"
reason = "Echoing changes nothing"
match.kind = "mcp.tool_call"
match.resource = "mcp:oauth/echo"
"#;

const TOKEN: &str = "token-for-the-test";
const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource/mcp";

/// What the upstream saw: the `resource` of each authorization and token request, and the
/// `Authorization` of each MCP request.
#[derive(Debug, Default)]
struct Seen {
    resources: Vec<String>,
    authorizations: Vec<String>,
}

/// One HTTP/1.1 request, read whole.
struct Request {
    method: String,
    target: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = HashMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let Some((name, value)) = line.trim_end().split_once(':') else {
            break;
        };
        headers.insert(name.to_ascii_lowercase(), value.trim().to_owned());
    }
    let length = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

fn answer(stream: &mut TcpStream, status: &str, headers: &[(&str, &str)], body: &str) {
    let mut text = format!(
        "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    let _ = stream.write_all(text.as_bytes());
}

fn form(text: &str) -> HashMap<String, String> {
    text.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), decode(v)))
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.replace('+', " ").into_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let Some(b) = hex {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// An MCP server that wants a bearer token, and its own authorization server (one origin, as
/// many deployments have it): protected-resource metadata at `metadata` (the path its challenges
/// name), authorization server metadata, dynamic registration, an authorization endpoint that
/// approves at once, a token endpoint. Serves until the test process ends.
fn protected_upstream(seen: Arc<Mutex<Seen>>, metadata: &'static str) -> (u16, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let origin = format!("http://127.0.0.1:{port}");
    let here = origin.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (seen, origin) = (Arc::clone(&seen), here.clone());
            std::thread::spawn(move || {
                if let Some(request) = read_request(&stream) {
                    serve(&mut stream, &request, &origin, metadata, &seen);
                }
            });
        }
    });
    (port, format!("{origin}/mcp"))
}

fn serve(
    stream: &mut TcpStream,
    request: &Request,
    origin: &str,
    metadata_path: &str,
    seen: &Mutex<Seen>,
) {
    let json_type = ("Content-Type", "application/json");
    let (path, query) = request
        .target
        .split_once('?')
        .unwrap_or((&request.target, ""));
    match (request.method.as_str(), path) {
        ("GET", path) if path == metadata_path => {
            let metadata = json!({
                "resource": format!("{origin}/mcp"),
                "authorization_servers": [origin],
                "scopes_supported": ["mcp"],
                "bearer_methods_supported": ["header"],
            });
            answer(stream, "200 OK", &[json_type], &metadata.to_string());
        }
        ("GET", "/.well-known/oauth-authorization-server") => {
            let metadata = json!({
                "issuer": origin,
                "authorization_endpoint": format!("{origin}/authorize"),
                "token_endpoint": format!("{origin}/token"),
                "registration_endpoint": format!("{origin}/register"),
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["none"],
                "scopes_supported": ["mcp"],
            });
            answer(stream, "200 OK", &[json_type], &metadata.to_string());
        }
        ("POST", "/register") => {
            let mut client: Value = serde_json::from_slice(&request.body).unwrap();
            client["client_id"] = json!("test-client");
            client["token_endpoint_auth_method"] = json!("none");
            answer(stream, "201 Created", &[json_type], &client.to_string());
        }
        ("GET", "/authorize") => {
            let asked = form(query);
            let resource = asked.get("resource").cloned().unwrap_or_default();
            seen.lock().unwrap().resources.push(resource);
            let location = format!(
                "{}?code=the-code&state={}",
                asked["redirect_uri"], asked["state"]
            );
            answer(stream, "302 Found", &[("Location", &location)], "");
        }
        ("POST", "/token") => {
            let asked = form(std::str::from_utf8(&request.body).unwrap());
            let resource = asked.get("resource").cloned().unwrap_or_default();
            seen.lock().unwrap().resources.push(resource);
            let token = json!({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600, "scope": "mcp"});
            answer(stream, "200 OK", &[json_type], &token.to_string());
        }
        ("POST", "/mcp") => {
            let authorization = request
                .headers
                .get("authorization")
                .cloned()
                .unwrap_or_default();
            seen.lock()
                .unwrap()
                .authorizations
                .push(authorization.clone());
            if authorization != format!("Bearer {TOKEN}") {
                let challenge =
                    format!("Bearer resource_metadata=\"{origin}{metadata_path}\", scope=\"mcp\"");
                answer(
                    stream,
                    "401 Unauthorized",
                    &[("WWW-Authenticate", &challenge), json_type],
                    r#"{"error":"invalid_token"}"#,
                );
                return;
            }
            let message: Value = serde_json::from_slice(&request.body).unwrap();
            let result = match message["method"].as_str().unwrap_or("") {
                "initialize" => json!({
                    "protocolVersion": message["params"]["protocolVersion"],
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "oauth-test", "version": "1"},
                }),
                "tools/list" => json!({"tools": [{
                    "name": "echo",
                    "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}},
                }]}),
                "tools/call" => json!({"content": [{
                    "type": "text",
                    "text": format!("Echo: {}", message["params"]["arguments"]["message"].as_str().unwrap_or("")),
                }]}),
                _ => {
                    answer(stream, "202 Accepted", &[], "");
                    return;
                }
            };
            let reply = json!({"jsonrpc": "2.0", "id": message["id"], "result": result});
            answer(stream, "200 OK", &[json_type], &reply.to_string());
        }
        _ => answer(stream, "404 Not Found", &[], ""),
    }
}

/// Runs the SDK's OAuth flow against `url`; returns what it printed, or panics with its error.
fn oauth_client(url: &str) -> Value {
    let out = Command::new(python())
        .arg(repo().join("tests/peers/python/mcp_oauth_client.py"))
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the SDK's OAuth flow against {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn proxy(server: &Server, upstream: &str) -> (Process, u16) {
    listening_proxy(server, "oauth", upstream, server.dir.join("spool"), &[])
}

/// One request by hand (a POST carries a `tools/list`): the status, the headers (lower-case
/// names), the body.
fn answer_of(port: u16, method: &str, target: &str) -> (u16, HashMap<String, String>, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body = if method == "POST" {
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#
    } else {
        ""
    };
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

#[test]
fn oauth_discovery_and_the_sdks_flow_work_through_the_proxy() {
    let server = start_server_with_policy("mcp-oauth", POLICY);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (upstream_port, upstream) = protected_upstream(Arc::clone(&seen), WELL_KNOWN);
    let (_proxy, port) = proxy(&server, &upstream);

    // The challenge points at the proxy's copy of the metadata, on the host the client used.
    let (status, headers, _) = answer_of(port, "POST", "/mcp");
    assert_eq!(status, 401);
    assert_eq!(
        headers["www-authenticate"],
        format!(
            "Bearer resource_metadata=\"http://localhost:{port}/.well-known/oauth-protected-resource/mcp\", scope=\"mcp\""
        )
    );
    // The metadata names the proxy as the resource and keeps the upstream's authorization server.
    let (status, headers, body) =
        answer_of(port, "GET", "/.well-known/oauth-protected-resource/mcp");
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    let metadata: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(metadata["resource"], format!("http://localhost:{port}/mcp"));
    assert_eq!(
        metadata["authorization_servers"],
        json!([format!("http://127.0.0.1:{upstream_port}")])
    );
    assert_eq!(metadata["scopes_supported"], json!(["mcp"]));

    // The SDK's whole flow, direct and through the proxy, ends in the same answer.
    let direct = oauth_client(&upstream);
    assert_eq!(direct["text"], "Echo: through OAuth", "{direct}");
    let through = oauth_client(&format!("http://127.0.0.1:{port}/mcp"));
    assert_eq!(through, direct);
    let seen = seen.lock().unwrap();
    // The token is asked for the URL the client used: the proxy's (its audience, see docs/mcp.md).
    assert_eq!(
        seen.resources,
        [
            upstream.clone(),
            upstream.clone(),
            format!("http://127.0.0.1:{port}/mcp"),
            format!("http://127.0.0.1:{port}/mcp"),
        ]
    );
    assert!(
        seen.authorizations
            .iter()
            .any(|a| a == &format!("Bearer {TOKEN}")),
        "{seen:?}"
    );
}

#[test]
fn metadata_where_only_the_challenge_says_is_served_once_the_upstream_named_it() {
    let server = start_server_with_policy("mcp-oauth-custom", POLICY);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let custom = "/custom/metadata/location.json";
    let (_, upstream) = protected_upstream(Arc::clone(&seen), custom);
    let (_proxy, port) = proxy(&server, &upstream);

    // Not a path the proxy relays, until the upstream's own challenge names it.
    assert_eq!(answer_of(port, "GET", custom).0, 404);
    let (status, headers, _) = answer_of(port, "POST", "/mcp");
    assert_eq!(status, 401);
    assert_eq!(
        headers["www-authenticate"],
        format!("Bearer resource_metadata=\"http://localhost:{port}{custom}\", scope=\"mcp\"")
    );
    let (status, _, body) = answer_of(port, "GET", custom);
    assert_eq!(status, 200, "{body}");
    let metadata: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(metadata["resource"], format!("http://localhost:{port}/mcp"));
    assert_eq!(answer_of(port, "GET", "/custom/other.json").0, 404);

    let through = oauth_client(&format!("http://127.0.0.1:{port}/mcp"));
    assert_eq!(through["text"], "Echo: through OAuth", "{through}");
}
