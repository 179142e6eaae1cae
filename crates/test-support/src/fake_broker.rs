//! A scripted stand-in for the broker: a tiny HTTP/1.1 server on 127.0.0.1 that records every call
//! and answers each with what the test's function says. It knows nothing of Countersign.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One call as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The path with its query string.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// An answer: status, content type, body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: body.to_string(),
        }
    }

    pub fn text(status: u16, content_type: &'static str, body: &str) -> Reply {
        Reply {
            status,
            content_type,
            body: body.to_owned(),
        }
    }
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

#[derive(Debug)]
pub struct FakeBroker {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeBroker {
    /// Starts a server answering every call with `handler`.
    pub async fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> FakeBroker {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let recorded = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let handler = Arc::clone(&handler);
                let recorded = Arc::clone(&recorded);
                tokio::spawn(async move {
                    serve(stream, &*handler, &recorded).await;
                });
            }
        });
        FakeBroker { url, seen }
    }

    /// Every call so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The only call so far.
    pub fn only_call(&self) -> Seen {
        let seen = self.seen();
        assert_eq!(seen.len(), 1, "{seen:#?}");
        seen.into_iter().next().unwrap()
    }
}

async fn serve(mut stream: TcpStream, handler: &Handler, recorded: &Mutex<Vec<Seen>>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = find(&buffer, b"\r\n\r\n") {
            break end;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let target = request_line.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let seen = Seen {
        method,
        target,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    recorded.lock().unwrap().push(seen.clone());
    let reply = handler(&seen);
    let response = format!(
        "HTTP/1.1 {} Fake\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        reply.status,
        reply.content_type,
        reply.body.len(),
        reply.body
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A request view as docs/api.md shows it, in `state`.
pub fn request_view(state: &str) -> serde_json::Value {
    serde_json::json!({
        "id": REQUEST_ID,
        "state": state,
        "digest": "sha256:ce900acc43b9b0b0f8b6b6c1a3b0c8b0d3e0f2a1b4c5d6e7f8091a2b3c4d5e6f",
        "action": {
            "kind": "shell.exec", "resource": "db:prod/customers",
            "labels": {"env": "production"},
            "details": {"argv": ["pg_dump", "customers"]},
            "principal": {"id": "deploy-bot", "kind": "agent", "on_behalf_of": ["alice"]},
            "justification": "nightly export"
        },
        "rules": ["prod-db-export"],
        "explanation": "deploy-bot (agent), acting for alice, asked to run `pg_dump customers`.",
        "requirements": [{"rule": "prod-db-export", "groups": ["dba", "sre"], "principals": [], "count": 2, "distinct_groups": 2, "denials": 1}],
        "progress": [{"rule": "prod-db-export", "approved_by": ["dana"], "needed": 2, "groups_covered": 1, "groups_needed": 2, "denied_by": [], "denials_needed": 1, "satisfied": false, "rejected": false}],
        "reviews": [{"reviewer": "dana", "verdict": "approve", "comment": null, "channel": "cli", "authentication": "api_token", "at": "2026-11-21T16:09:00.000Z"}],
        "created_at": "2026-11-21T16:08:00.000Z",
        "expires_at": "2026-11-21T16:38:00.000Z",
        "decided_at": null,
        "decided_by": null,
        "summary": "waiting for 1 more approval from members of dba or sre; request r_0123456789abcdef0123456789abcdef",
        "grant": null,
        "a_field_from_a_newer_broker": {"ignored": true}
    })
}

pub const REQUEST_ID: &str = "r_0123456789abcdef0123456789abcdef";
