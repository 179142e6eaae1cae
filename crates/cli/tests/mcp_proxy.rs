#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.
//! `countersign mcp` between real peers, over both transports: the official MCP Python SDK as the
//! client, `@modelcontextprotocol/server-everything` as the server, a real broker deciding.

mod mcp_peers;
mod support;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mcp_peers::{DEADLINE, Driver, Process, everything, everything_over_http, listening_proxy};
use serde_json::{Value, json};
use support::{BIN, Server, start_server_with_policy, token};

const POLICY: &str = r#"
version = 1
default = "deny"

[[rules]]
id = "harmless-tools"
decision = "allow"
reason = "Echoing, listing roots and sampling change nothing"
match.kind = "mcp.tool_call"
match.resource = ["mcp:everything/echo", "mcp:everything/get-roots-list", "mcp:everything/trigger-sampling-request", "mcp:everything/trigger-long-running-operation"]

[[rules]]
id = "sums-need-two"
decision = "require_approval"
reason = "In this test, sums are sensitive: a DBA and an SRE must agree"
match.kind = "mcp.tool_call"
match.resource = "mcp:everything/get-sum"
approvers = { groups = ["dba", "sre"], count = 2, distinct_groups = 2 }

[[rules]]
id = "no-env"
decision = "deny"
reason = "Environment variables hold secrets"
match.kind = "mcp.tool_call"
match.resource = "mcp:everything/get-env"
"#;

/// The environment `countersign mcp` reads, as the agent deploy-bot (acting for alice).
fn agent_env<'a>(server: &'a Server, token: &'a str, spool: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("COUNTERSIGN_SERVER", server.url.as_str()),
        ("COUNTERSIGN_TOKEN", token),
        ("COUNTERSIGN_SPOOL", spool),
    ]
}

fn json_of(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Polls the broker until a request not in `seen` is pending; returns its id.
fn next_pending(server: &Server, seen: &mut HashSet<String>) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let listed = json_of(&server.run("sam", &["pending", "--json"]));
        let requests = listed.get("requests").cloned().unwrap_or(listed);
        let fresh = requests
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["id"].as_str())
            .find(|id| !seen.contains(*id))
            .map(str::to_owned);
        if let Some(id) = fresh {
            seen.insert(id.clone());
            return id;
        }
        assert!(Instant::now() < deadline, "no new request became pending");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn show(server: &Server, id: &str) -> Value {
    json_of(&server.run("sam", &["show", id, "--json"]))
}

fn review(
    server: &Server,
    who: &str,
    verdict: &str,
    id: &str,
    comment: &str,
) -> std::process::Output {
    server.run(who, &[verdict, id, "--comment", comment])
}

/// Polls the request's audit events until one of `kind` appears; returns how many there are.
fn wait_for_event(server: &Server, id: &str, kind: &str) -> usize {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let shown = show(server, id);
        let count = shown["audit_events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == kind)
            .count();
        if count > 0 {
            return count;
        }
        assert!(
            Instant::now() < deadline,
            "request {id} never got a {kind} event: {shown:#}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The broker's audit events of `kind` about `resource`, polled until there are `count`.
fn wait_for_audit(server: &Server, kind: &str, resource: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let export = server.run("sam", &["audit", "export"]);
        assert!(export.status.success());
        let events: Vec<Value> = String::from_utf8_lossy(&export.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter_map(|line| line.get("event").cloned())
            .filter(|e| e["type"] == kind && e["data"]["action"]["resource"] == resource)
            .collect();
        if events.len() >= count || Instant::now() >= deadline {
            assert_eq!(
                events.len(),
                count,
                "{kind} events for {resource}: {events:#?}"
            );
            return events;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Everything a client should see through the proxy, whatever the transport.
fn exercise(server: &Server, client: &mut Driver) {
    for tool in [
        "echo",
        "get-sum",
        "get-env",
        "trigger-sampling-request",
        "get-roots-list",
    ] {
        assert!(
            client.tools.iter().any(|t| t == tool),
            "{tool} is not listed: {:?}",
            client.tools
        );
    }
    let mut seen = HashSet::new();

    // Allowed: forwarded at once, recorded as action.allowed.
    client.call("allowed", "echo", json!({"message": "hello"}));
    let answer = client.outcome("allowed");
    assert_eq!(answer["is_error"], false, "{answer}");
    assert_eq!(answer["text"], "Echo: hello");

    // A slow allowed call: its answer comes later than the proxy waits to coalesce it, with the
    // server's own progress on the way, all relayed.
    client.call(
        "slow",
        "trigger-long-running-operation",
        json!({"duration": 0.3, "steps": 3}),
    );
    let progress = client.expect("the server's progress on the slow call", |e| {
        e["tag"] == "slow" && e["event"] == "progress"
    });
    assert_eq!(progress["progress"].as_f64(), Some(1.0), "{progress}");
    let answer = client.outcome("slow");
    assert_eq!(answer["is_error"], false, "{answer}");
    assert!(
        answer["text"]
            .as_str()
            .unwrap()
            .starts_with("Long running operation completed"),
        "{answer}"
    );

    // Denied by the policy: the model reads who refused and why.
    client.call("denied", "get-env", json!({}));
    let answer = client.outcome("denied");
    assert_eq!(answer["is_error"], true, "{answer}");
    let text = answer["text"].as_str().unwrap();
    assert!(
        text.contains("Countersign denied this call to `get-env`"),
        "{text}"
    );
    assert!(
        text.contains("rule no-env") && text.contains("Environment variables hold secrets"),
        "{text}"
    );

    // Gated: held (with progress) while an allowed call goes through meanwhile.
    client.call("gated", "get-sum", json!({"a": 2, "b": 3}));
    let progress = client.expect("progress on the held call", |e| {
        e["tag"] == "gated" && e["event"] == "progress"
    });
    assert!(
        progress["message"]
            .as_str()
            .unwrap()
            .contains("holding this call"),
        "{progress}"
    );
    let id = next_pending(server, &mut seen);
    client.call("meanwhile", "echo", json!({"message": "still here"}));
    assert_eq!(client.outcome("meanwhile")["text"], "Echo: still here");

    // Nobody in the chain approves: the agent's review and alice's are refused.
    let by_agent = review(server, "deploy-bot", "approve", &id, "me");
    assert!(!by_agent.status.success());
    assert!(
        String::from_utf8_lossy(&by_agent.stderr).contains("agent"),
        "{by_agent:?}"
    );
    let by_alice = review(server, "alice", "approve", &id, "mine");
    assert!(!by_alice.status.success());
    assert!(
        review(server, "dana", "approve", &id, "ok")
            .status
            .success()
    );
    assert_eq!(show(server, &id)["request"]["state"], "pending");
    assert!(
        !client.answered("gated"),
        "the call ran before the second approval"
    );
    assert!(review(server, "sam", "approve", &id, "ok").status.success());
    let answer = client.outcome("gated");
    assert_eq!(answer["is_error"], false, "{answer}");
    assert_eq!(answer["text"], "The sum of 2 and 3 is 5.");
    assert_eq!(
        wait_for_event(server, &id, "grant.consumed"),
        1,
        "the grant is used exactly once"
    );
    let outcome = wait_for_event(server, &id, "action.outcome");
    assert_eq!(outcome, 1);

    // A reviewer's denial reaches the model as text.
    client.call("refused", "get-sum", json!({"a": 1, "b": 1}));
    let id = next_pending(server, &mut seen);
    assert!(
        review(server, "dana", "deny", &id, "not during the freeze")
            .status
            .success()
    );
    let answer = client.outcome("refused");
    assert_eq!(answer["is_error"], true);
    let text = answer["text"].as_str().unwrap();
    assert!(
        text.contains("denied by dana: not during the freeze"),
        "{text}"
    );

    // The server's own requests to the client still work through the proxy.
    client.call(
        "sampling",
        "trigger-sampling-request",
        json!({"prompt": "hi", "maxTokens": 5}),
    );
    let answer = client.outcome("sampling");
    assert!(
        answer["text"]
            .as_str()
            .unwrap()
            .contains("sampled by the test client"),
        "{answer}"
    );
    client.call("roots", "get-roots-list", json!({}));
    let answer = client.outcome("roots");
    assert!(
        answer["text"]
            .as_str()
            .unwrap()
            .contains("countersign-test-root"),
        "{answer}"
    );

    // notifications/cancelled withdraws a held call's request; it never runs.
    client.call("cancelled", "get-sum", json!({"a": 4, "b": 4}));
    let id = next_pending(server, &mut seen);
    client.send(json!({"op": "cancel", "tag": "cancelled"}));
    client.expect("the call to be cancelled", |e| {
        e["tag"] == "cancelled" && e["event"] == "cancelled"
    });
    let deadline = Instant::now() + DEADLINE;
    while show(server, &id)["request"]["state"] != "cancelled" {
        assert!(Instant::now() < deadline, "request {id} was not cancelled");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!client.answered("cancelled"));

    // Allowed and denied calls reach the audit log, each once.
    let allowed = wait_for_audit(server, "action.allowed", "mcp:everything/echo", 2);
    let ids: HashSet<&str> = allowed
        .iter()
        .map(|e| e["data"]["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(allowed[0]["principal"], "deploy-bot");
    assert_eq!(
        allowed[0]["data"]["action"]["details"],
        json!({"message": "hello"})
    );
    wait_for_audit(server, "action.denied", "mcp:everything/get-env", 1);
    // The broker decided each reported call again under the policy the proxy named: no alert.
    let export = server.run("sam", &["audit", "export"]);
    let alerts: Vec<Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|line| line.get("event").cloned())
        .filter(|e| e["type"] == "action.report_mismatch")
        .collect();
    assert_eq!(alerts, Vec::<Value>::new());
}

fn spool_dir(server: &Server) -> String {
    server.dir.join("spool").to_string_lossy().into_owned()
}

/// The client with `countersign mcp` (stdio) in front of server-everything, as deploy-bot. No
/// --name: `mcp-server-everything` is named `everything`.
fn stdio_client(server: &Server) -> Driver {
    let (agent, spool) = (token("deploy-bot"), spool_dir(server));
    let everything = everything();
    Driver::start(
        &[
            "stdio",
            BIN,
            "mcp",
            "--",
            everything.to_str().unwrap(),
            "stdio",
        ],
        &agent_env(server, &agent, &spool),
    )
}

#[test]
fn over_stdio_every_tool_call_is_checked() {
    let server = start_server_with_policy("mcp-stdio", POLICY);
    let mut client = stdio_client(&server);
    exercise(&server, &mut client);
    client.quit();
}

/// A policy under which the model may read the server's environment (server-everything's
/// `get-env`), as the example policy once allowed through `mcp:*/get-*`.
const ENV_POLICY: &str = r#"
version = 1
default = "deny"

[[rules]]
id = "env-readable"
decision = "allow"
reason = "In this test the model may read the server's environment"
match.kind = "mcp.tool_call"
match.resource = "mcp:everything/get-env"
"#;

#[test]
fn the_server_never_inherits_countersigns_credentials() {
    let server = start_server_with_policy("mcp-env", ENV_POLICY);
    let (agent, spool) = (token("deploy-bot"), spool_dir(&server));
    // After `source demo.env` the shell holds every demo principal's token too.
    let reviewer = token("sam");
    let mut env = agent_env(&server, &agent, &spool).to_vec();
    env.extend([
        ("COUNTERSIGN_TOKEN_SAM", reviewer.as_str()),
        ("MCP_TEST_SERVER_SETTING", "for-the-server"),
    ]);
    let everything = everything();
    let mut client = Driver::start(
        &[
            "stdio",
            BIN,
            "mcp",
            "--",
            everything.to_str().unwrap(),
            "stdio",
        ],
        &env,
    );
    client.call("env", "get-env", json!({}));
    let answer = client.outcome("env");
    assert_eq!(answer["is_error"], false, "{answer}");
    let text = answer["text"].as_str().unwrap();
    for secret in [&agent, &reviewer] {
        assert!(
            !text.contains(secret.as_str()),
            "a token reached the server: {text}"
        );
    }
    let seen: serde_json::Map<String, Value> = serde_json::from_str(text).unwrap();
    let countersign: Vec<&String> = seen
        .keys()
        .filter(|name| name.starts_with("COUNTERSIGN_"))
        .collect();
    assert!(countersign.is_empty(), "{countersign:?}");
    assert_eq!(
        seen["MCP_TEST_SERVER_SETTING"], "for-the-server",
        "the rest of the environment is the server's to read"
    );
    client.quit();
}

/// `countersign mcp --listen` in front of `upstream`; returns it and its endpoint.
fn http_proxy(server: &Server, upstream: &str, spool: &str) -> (Process, String) {
    http_proxy_with(server, upstream, spool, &[])
}

/// `http_proxy` with more environment.
fn http_proxy_with(
    server: &Server,
    upstream: &str,
    spool: &str,
    env: &[(&str, &str)],
) -> (Process, String) {
    let (process, port) = listening_proxy(server, "everything", upstream, spool, env);
    (process, format!("http://127.0.0.1:{port}/mcp"))
}

/// The port of an `http://HOST:PORT/mcp` endpoint.
fn port_of(url: &str) -> u16 {
    url.trim_end_matches("/mcp")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn over_streamable_http_every_tool_call_is_checked() {
    let server = start_server_with_policy("mcp-http", POLICY);
    let (_upstream, upstream_url) = everything_over_http();
    let (_proxy, url) = http_proxy(&server, &upstream_url, &spool_dir(&server));
    let mut client = Driver::start(&["http", &url], &[]);
    exercise(&server, &mut client);
    client.quit();
}

/// A TLS front for a plain HTTP server, as a remote MCP server behind https looks: its
/// certificate names `localhost` and comes from a certificate authority made for the test, whose
/// certificate is in the returned file. Serves until the runtime is dropped.
fn tls_front(dir: &std::path::Path, backend: u16) -> (tokio::runtime::Runtime, u16, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let authority_key = KeyPair::generate().unwrap();
    let mut authority = CertificateParams::new(Vec::<String>::new()).unwrap();
    authority.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    authority
        .distinguished_name
        .push(DnType::CommonName, "Countersign test authority");
    let authority_pem = authority.self_signed(&authority_key).unwrap().pem();
    let issuer = Issuer::new(authority, authority_key);
    let key = KeyPair::generate().unwrap();
    let certificate = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let ca_file = dir.join("test-authority.pem");
    std::fs::write(&ca_file, authority_pem).unwrap();

    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![certificate.der().clone()],
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    runtime.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut plain = tokio::net::TcpStream::connect(("127.0.0.1", backend))
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (runtime, port, ca_file.to_string_lossy().into_owned())
}

#[test]
fn in_front_of_an_https_server_its_certificate_is_verified() {
    let server = start_server_with_policy("mcp-https", POLICY);
    let (_upstream, upstream_url) = everything_over_http();
    let (_front, front_port, authority) = tls_front(&server.dir, port_of(&upstream_url));
    let https = format!("https://localhost:{front_port}/mcp");

    // Trusting the server's certificate authority (on Linux the platform verifier reads
    // SSL_CERT_FILE), calls go through TLS to the server.
    let spool = spool_dir(&server);
    let env = [("SSL_CERT_FILE", authority.as_str())];
    let (_proxy, url) = http_proxy_with(&server, &https, &spool, &env);
    let mut client = Driver::start(&["http", &url], &[]);
    client.call("over-tls", "echo", json!({"message": "over TLS"}));
    let answer = client.outcome("over-tls");
    assert_eq!(answer["text"], "Echo: over TLS", "{answer}");
    client.quit();

    // Not trusting it, nothing reaches the server, and the client is told why.
    let untrusting_spool = server.dir.join("spool-untrusting");
    let (_untrusting, url) =
        http_proxy_with(&server, &https, untrusting_spool.to_str().unwrap(), &[]);
    let (status, _, body) = http(
        port_of(&url),
        "POST",
        &[
            ("Accept", "application/json, text/event-stream"),
            ("Content-Type", "application/json"),
        ],
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#,
    );
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("cannot reach the MCP server") && body.contains("certificate"),
        "{body}"
    );
}

#[test]
fn without_the_policy_the_proxy_does_not_start() {
    let server = start_server_with_policy("mcp-no-broker", POLICY);
    let spool = spool_dir(&server);
    let out = Command::new(BIN)
        .args(["mcp", "--", everything().to_str().unwrap(), "stdio"])
        .env("COUNTERSIGN_SERVER", "http://127.0.0.1:9")
        .env("COUNTERSIGN_TOKEN", token("deploy-bot"))
        .env("COUNTERSIGN_SPOOL", &spool)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach the Countersign broker"),
        "{stderr}"
    );
}

#[test]
fn while_the_broker_is_down_allowed_calls_go_on_and_their_events_follow_later() {
    let mut server = start_server_with_policy("mcp-outage", POLICY);
    let mut client = stdio_client(&server);
    client.call("before", "echo", json!({"message": "one"}));
    assert_eq!(client.outcome("before")["text"], "Echo: one");
    wait_for_audit(&server, "action.allowed", "mcp:everything/echo", 1);

    server.stop();
    for n in ["two", "three"] {
        client.call(n, "echo", json!({"message": n}));
        assert_eq!(client.outcome(n)["text"], format!("Echo: {n}"));
    }
    // A call that needs the broker fails closed, in words.
    client.call("gated", "get-sum", json!({"a": 1, "b": 2}));
    let answer = client.outcome("gated");
    assert_eq!(answer["is_error"], true);
    let text = answer["text"].as_str().unwrap();
    assert!(
        text.contains("could not be asked for approval") && text.contains("fails closed"),
        "{text}"
    );

    server.start_again();
    let events = wait_for_audit(&server, "action.allowed", "mcp:everything/echo", 3);
    let messages: Vec<&Value> = events
        .iter()
        .map(|e| &e["data"]["action"]["details"]["message"])
        .collect();
    assert_eq!(messages, [&json!("one"), &json!("two"), &json!("three")]);
    client.quit();
}

/// One HTTP/1.1 exchange by hand: returns the status, the headers (lower-case names) and, unless
/// the answer is an event stream (left open), the body.
fn http(
    port: u16,
    method: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut request = format!(
        "{method} /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut answer_headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let Some((name, value)) = line.trim_end().split_once(": ") else {
            break;
        };
        answer_headers.push((name.to_ascii_lowercase(), value.to_owned()));
    }
    let streaming = content_type(&answer_headers).starts_with("text/event-stream");
    let mut body = String::new();
    if !streaming {
        let _ = reader.read_to_string(&mut body);
    }
    (status, answer_headers, body)
}

fn content_type(headers: &[(String, String)]) -> &str {
    headers
        .iter()
        .find(|(name, _)| name == "content-type")
        .map_or("", |(_, value)| value.as_str())
}

#[test]
fn over_http_sessions_streams_and_headers_pass_through() {
    let server = start_server_with_policy("mcp-http-headers", POLICY);
    let (_upstream, upstream_url) = everything_over_http();
    let (_proxy, url) = http_proxy(&server, &upstream_url, &spool_dir(&server));
    let port = port_of(&url);
    let accept = ("Accept", "application/json, text/event-stream");
    let json_body = ("Content-Type", "application/json");
    let (status, headers, _) = http(
        port,
        "POST",
        &[accept, json_body],
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#,
    );
    assert_eq!(status, 200);
    let session = headers
        .iter()
        .find(|(n, _)| n == "mcp-session-id")
        .expect("the session id comes back")
        .1
        .clone();
    let with_session = [
        accept,
        json_body,
        ("Mcp-Session-Id", session.as_str()),
        ("MCP-Protocol-Version", "2025-06-18"),
    ];
    let (status, _, _) = http(
        port,
        "POST",
        &with_session,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    assert_eq!(status, 202);
    // An answer stream that holds only the response comes back as that response, in JSON
    // (which the client accepts): the client can read it to its end and keep the connection.
    let (status, headers, body) = http(
        port,
        "POST",
        &with_session,
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"message":"plain"}}}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(content_type(&headers), "application/json");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["id"], 4);
    assert_eq!(answer["result"]["content"][0]["text"], "Echo: plain");
    // One that carries progress before the response stays a stream.
    let (status, headers, _) = http(
        port,
        "POST",
        &with_session,
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":{"duration":0,"steps":1},"_meta":{"progressToken":"p"}}}"#,
    );
    assert_eq!(status, 200);
    assert!(
        content_type(&headers).starts_with("text/event-stream"),
        "{headers:?}"
    );
    // The server's GET stream, resumed from an event id: relayed as an open event stream.
    let mut get = with_session.to_vec();
    get.push(("Last-Event-ID", "no-such-event"));
    let (status, headers, _) = http(port, "GET", &get, "");
    assert_eq!(status, 200);
    assert!(
        content_type(&headers).starts_with("text/event-stream"),
        "{headers:?}"
    );
    // A denied call is answered by Countersign in the session; DELETE ends the session upstream.
    let (status, _, body) = http(
        port,
        "POST",
        &with_session,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get-env","arguments":{}}}"#,
    );
    assert_eq!(status, 200);
    assert!(body.contains("Countersign denied this call"), "{body}");
    let (status, _, _) = http(port, "DELETE", &with_session, "");
    assert_eq!(status, 200);
    let (status, _, _) = http(
        port,
        "POST",
        &with_session,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#,
    );
    assert!(
        status == 400 || status == 404,
        "a deleted session is gone upstream: {status}"
    );
    // A web page of another site cannot use the proxy.
    let (status, _, _) = http(
        port,
        "POST",
        &[accept, json_body, ("Origin", "https://evil.example")],
        "{}",
    );
    assert_eq!(status, 403);
}

/// `http` to any request target (raw, as a client may spell it).
fn http_at(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer.split(' ').nth(1).unwrap().parse().unwrap();
    (status, answer)
}

/// Opens a session through the proxy on `port` (initialize, initialized); returns its id.
fn open_session(port: u16) -> String {
    let accept = ("Accept", "application/json, text/event-stream");
    let json_body = ("Content-Type", "application/json");
    let (_, headers, _) = http(
        port,
        "POST",
        &[accept, json_body],
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#,
    );
    let session = headers
        .iter()
        .find(|(n, _)| n == "mcp-session-id")
        .unwrap()
        .1
        .clone();
    let (status, _, _) = http(
        port,
        "POST",
        &[
            accept,
            json_body,
            ("Mcp-Session-Id", session.as_str()),
            ("MCP-Protocol-Version", "2025-06-18"),
        ],
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    assert_eq!(status, 202);
    session
}

#[test]
fn over_http_no_spelling_of_the_endpoint_walks_around_the_gate() {
    let server = start_server_with_policy("mcp-http-paths", POLICY);
    let (_upstream, upstream_url) = everything_over_http();
    let (_proxy, url) = http_proxy(&server, &upstream_url, &spool_dir(&server));
    let port = port_of(&url);
    let accept = ("Accept", "application/json, text/event-stream");
    let session = open_session(port);
    let with_session = [
        accept,
        ("Content-Type", "application/json"),
        ("Mcp-Session-Id", session.as_str()),
        ("MCP-Protocol-Version", "2025-06-18"),
    ];
    let denied = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"get-env","arguments":{}}}"#;
    // server-everything (express) takes /MCP, /mcp/ and /Mcp/ as its endpoint: through the
    // proxy, none of them reaches it.
    for target in [
        "/mcp/", "/MCP", "/Mcp/", "/%6Dcp", "//mcp", "/./mcp", "/mcp;x", "/mcp%2F",
    ] {
        let (status, answer) = http_at(port, "POST", target, &with_session, denied);
        assert_eq!(status, 404, "POST {target}: {answer}");
        assert!(
            !answer.contains("PATH"),
            "get-env ran for {target}: {answer}"
        );
    }
    // The exact path with a query is the endpoint, gated.
    let (status, answer) = http_at(port, "POST", "/mcp?x=1", &with_session, denied);
    assert_eq!(status, 200);
    assert!(answer.contains("Countersign denied this call"), "{answer}");
    // Bodies only ever go with a POST to the endpoint, and only as the gate read them.
    let (status, answer) = http_at(port, "PUT", "/mcp", &with_session, denied);
    assert_eq!(status, 405, "{answer}");
    let (status, answer) = http_at(port, "GET", "/mcp", &with_session, denied);
    assert_eq!(status, 400, "{answer}");
    let mut gzip = with_session.to_vec();
    gzip.push(("Content-Encoding", "gzip"));
    assert_eq!(http_at(port, "POST", "/mcp", &gzip, denied).0, 415);
    let utf7 = [
        accept,
        ("Content-Type", "application/json; charset=utf-7"),
        ("Mcp-Session-Id", session.as_str()),
    ];
    assert_eq!(http_at(port, "POST", "/mcp", &utf7, denied).0, 415);
    // Chunked, the body is gated all the same.
    let chunked_headers: String = with_session
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect();
    let chunked = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n{chunked_headers}\r\n{:x}\r\n{denied}\r\n0\r\n\r\n",
        denied.len()
    );
    let answer = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.write_all(chunked.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    assert!(answer.contains("Countersign denied this call"), "{answer}");

    // A server routing by the Mcp-Method header cannot be told of a tool call the gate did not
    // read as one.
    let mut routed = with_session.to_vec();
    routed.push(("Mcp-Method", "tools/call"));
    routed.push(("Mcp-Name", "get-env"));
    let (status, answer) = http_at(
        port,
        "POST",
        "/mcp",
        &routed,
        r#"{"jsonrpc":"2.0","id":11,"method":"tools/list"}"#,
    );
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("Mcp-Method header"), "{answer}");
    let (status, answer) = http_at(port, "POST", "/mcp", &routed, denied);
    assert_eq!(status, 200);
    assert!(answer.contains("Countersign denied this call"), "{answer}");
    // Twice, the first agreeing with the body: a server reading the second (or both) would route
    // a tool call the gate never saw, so it is refused.
    let mut twice = with_session.to_vec();
    twice.push(("Mcp-Method", "tools/list"));
    twice.push(("Mcp-Method", "tools/call"));
    let (status, answer) = http_at(
        port,
        "POST",
        "/mcp",
        &twice,
        r#"{"jsonrpc":"2.0","id":12,"method":"tools/list"}"#,
    );
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("send one Mcp-Method header"), "{answer}");
}

#[test]
fn over_http_a_key_twice_in_tool_arguments_is_refused() {
    let server = start_server_with_policy("mcp-http-duplicate", POLICY);
    let (_upstream, upstream_url) = everything_over_http();
    let (_proxy, url) = http_proxy(&server, &upstream_url, &spool_dir(&server));
    let port = port_of(&url);
    let session = open_session(port);
    let with_session = [
        ("Accept", "application/json, text/event-stream"),
        ("Content-Type", "application/json"),
        ("Mcp-Session-Id", session.as_str()),
        ("MCP-Protocol-Version", "2025-06-18"),
    ];
    // echo is allowed, and the gate and the server could each read either value: refused, naming
    // the key, never run.
    let (status, answer) = http_at(
        port,
        "POST",
        "/mcp",
        &with_session,
        r#"{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"echo","arguments":{"message":"checked","message":"run"}}}"#,
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.contains(r#"the key \"message\" appears twice"#),
        "{answer}"
    );
    assert!(!answer.contains("Echo:"), "{answer}");
}
