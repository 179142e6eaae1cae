//! The streamable HTTP transport (MCP 2025-03-26 and later): Countersign listens where the
//! client expects the server and mirrors the upstream server. Every request goes upstream with its
//! headers (`Authorization`, `Mcp-Session-Id`, `MCP-Protocol-Version`, `Last-Event-ID`…) and its
//! answer comes back as it is, status, headers and body (JSON or an SSE stream, relayed as it
//! arrives). Only POSTs to the MCP endpoint are looked into: a `tools/call` is gated, and a
//! `notifications/cancelled` for a held call withdraws it.
//!
//! A held call is answered with an SSE stream of Countersign's own: progress notifications (or
//! comments) while reviewers decide, then the upstream's answer relayed into it once the call has
//! been approved and forwarded. If the client drops that stream, the call is withdrawn.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use countersign_model::RequestId;
use reqwest::Url;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::approval::{Held, Hold, record_outcome};
use crate::gate::{Check, Gate};
use crate::held::{HeldCalls, Withdrawal};
use crate::message::{self, Answer, INVALID_PARAMS, Inbound, Refusal, RpcId, ToolCall};
use crate::sse;

const MAX_BODY: usize = 64 * 1024 * 1024;

/// Headers that belong to one connection, not to the message.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

#[derive(Debug)]
struct Proxy {
    gate: Arc<Gate>,
    held: HeldCalls,
    /// The upstream MCP endpoint; its path is the endpoint's path here too.
    upstream: Url,
    http: reqwest::Client,
    /// Refuse browser origins other than this machine (DNS rebinding), when listening on
    /// loopback.
    loopback_only: bool,
}

/// Serves the proxy on `listener` until `shutdown` completes.
pub async fn serve(
    gate: Arc<Gate>,
    listener: TcpListener,
    upstream: Url,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let loopback_only = listener
        .local_addr()
        .is_ok_and(|a: SocketAddr| a.ip().is_loopback());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("countersign-mcp/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(std::io::Error::other)?;
    let proxy = Arc::new(Proxy {
        gate,
        held: HeldCalls::default(),
        upstream,
        http,
        loopback_only,
    });
    let app = axum::Router::new().fallback(handle).with_state(proxy);
    // Small JSON-RPC answers must not wait for Nagle's algorithm.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn handle(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if proxy.loopback_only && !origin_is_local(&parts.headers) {
        return plain(
            StatusCode::FORBIDDEN,
            "Countersign refuses requests from web pages of other sites (Origin header)",
        );
    }
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large",
            );
        }
    };
    let is_endpoint = parts.uri.path() == proxy.upstream.path();
    if is_endpoint && parts.method == Method::POST {
        return proxy.post(&parts.headers, body).await;
    }
    let mut url = proxy.upstream.clone();
    if !is_endpoint {
        url.set_path(parts.uri.path());
        url.set_query(parts.uri.query());
    }
    proxy.forward(parts.method, url, &parts.headers, body).await
}

impl Proxy {
    async fn post(self: &Arc<Self>, headers: &HeaderMap, body: Bytes) -> Response {
        match message::classify(&body) {
            Inbound::Pass => self.forward_post(headers, body).await,
            Inbound::Cancelled(id) => match self.held.withdraw(&session_key(headers, &id), &body) {
                Withdrawal::NotHeld => self.forward_post(headers, body).await,
                Withdrawal::Withdrawn | Withdrawal::Deferred => {
                    StatusCode::ACCEPTED.into_response()
                }
            },
            Inbound::ToolCall(call) => {
                if let Some(refusal) = name_header_mismatch(headers, &call) {
                    return json(StatusCode::BAD_REQUEST, message::error_response(&refusal));
                }
                match self.gate.check(&call) {
                    Check::Allow => self.forward_post(headers, body).await,
                    Check::Deny(text) | Check::Refuse(text) => {
                        json(StatusCode::OK, message::tool_error(&call.id, &text))
                    }
                    Check::Approval(action) => self.hold(headers, body, call, *action),
                }
            }
            Inbound::Refused(refusal) => {
                json(StatusCode::BAD_REQUEST, message::error_response(&refusal))
            }
            Inbound::Batch(items) => {
                let mut replies = Vec::new();
                for item in &items {
                    match item {
                        Inbound::ToolCall(call) => match self.gate.check(call) {
                            Check::Allow => {}
                            Check::Deny(text) | Check::Refuse(text) => {
                                replies.push(message::tool_error(&call.id, &text));
                            }
                            Check::Approval(_) => replies.push(message::tool_error(
                                &call.id,
                                "Countersign did not run this call: it needs approval, and calls \
                                 that need approval cannot be held inside a batch; send it on its own",
                            )),
                        },
                        Inbound::Refused(refusal) => {
                            replies.push(message::error_response(refusal));
                        }
                        _ => {}
                    }
                }
                if replies.is_empty() {
                    self.forward_post(headers, body).await
                } else {
                    json(StatusCode::OK, message::batch(&replies))
                }
            }
        }
    }

    async fn forward_post(&self, headers: &HeaderMap, body: Bytes) -> Response {
        self.forward(Method::POST, self.upstream.clone(), headers, body)
            .await
    }

    fn upstream_request(
        &self,
        method: Method,
        url: Url,
        headers: &HeaderMap,
        body: Bytes,
    ) -> reqwest::RequestBuilder {
        let mut outgoing = HeaderMap::with_capacity(headers.len());
        for (name, value) in headers {
            if !HOP_BY_HOP.contains(&name.as_str()) && name != header::ACCEPT_ENCODING {
                outgoing.append(name.clone(), value.clone());
            }
        }
        let request = self.http.request(method, url).headers(outgoing);
        if body.is_empty() {
            request
        } else {
            request.body(body)
        }
    }

    /// Sends a request upstream and relays the answer as it comes.
    async fn forward(
        &self,
        method: Method,
        url: Url,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Response {
        match self
            .upstream_request(method, url, headers, body)
            .send()
            .await
        {
            Ok(answer) => relay(answer).await,
            Err(e) => self.unreachable(&e),
        }
    }

    fn unreachable(&self, error: &reqwest::Error) -> Response {
        plain(
            StatusCode::BAD_GATEWAY,
            &format!(
                "Countersign cannot reach the MCP server at {}: {error}",
                self.upstream
            ),
        )
    }

    /// Holds a call that needs approval; answers with an SSE stream (or, for a client that does
    /// not take one, with the final JSON once the call is done).
    fn hold(
        self: &Arc<Self>,
        headers: &HeaderMap,
        body: Bytes,
        call: ToolCall,
        action: countersign_client::ActionRequest,
    ) -> Response {
        let key = session_key(headers, &call.id);
        let Some(withdrawn) = self.held.hold(&key) else {
            let text = format!(
                "Countersign did not run this call: another call with id {} is already waiting \
                 for approval; use a new id",
                call.id
            );
            return json(StatusCode::OK, message::tool_error(&call.id, &text));
        };
        let streams = headers
            .get_all(header::ACCEPT)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.contains("text/event-stream")));
        let (events, mut receiver) = mpsc::channel::<Bytes>(64);
        let (last, final_answer) = oneshot::channel::<Bytes>();
        let held = HeldCall {
            proxy: Arc::clone(self),
            headers: headers.clone(),
            body,
            call,
            action,
            key,
            events,
            streams,
        };
        tokio::spawn(held.run(withdrawn, last));
        if streams {
            let stream = futures_util::stream::poll_fn(move |cx| {
                receiver
                    .poll_recv(cx)
                    .map(|item| item.map(Ok::<_, std::io::Error>))
            });
            return Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .header(header::CACHE_CONTROL, "no-cache")
                .body(Body::from_stream(stream))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
        Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(futures_util::stream::once(async move {
                // Dropped with the body when the client goes away, which withdraws the call.
                let _open = receiver;
                Ok::<_, std::io::Error>(final_answer.await.unwrap_or_default())
            })))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }
}

/// A held call and where its answer goes.
struct HeldCall {
    proxy: Arc<Proxy>,
    headers: HeaderMap,
    body: Bytes,
    call: ToolCall,
    action: countersign_client::ActionRequest,
    key: String,
    /// The SSE stream to the client (progress, then the answer).
    events: mpsc::Sender<Bytes>,
    streams: bool,
}

impl HeldCall {
    async fn run(self, withdrawn: oneshot::Receiver<()>, last: oneshot::Sender<Bytes>) {
        // A client that drops the stream withdraws the call.
        let watcher = {
            let (events, proxy, key) = (
                self.events.clone(),
                Arc::clone(&self.proxy),
                self.key.clone(),
            );
            tokio::spawn(async move {
                events.closed().await;
                proxy.held.withdraw(&key, b"");
            })
        };
        let mut sent = 0u64;
        let (events, token, streams) = (
            self.events.clone(),
            self.call.progress_token.clone(),
            self.streams,
        );
        let mut progress = move |text: &str| {
            let event = match &token {
                Some(token) => {
                    sent += 1;
                    sse::message_event(&message::progress(token, sent, text))
                }
                None => sse::comment(text),
            };
            if streams {
                let _ = events.try_send(Bytes::from(event));
            }
        };
        let hold = Hold {
            gate: &self.proxy.gate,
            tool: &self.call.name,
            action: &self.action,
            held: &self.proxy.held,
            key: &self.key,
        };
        let held = hold.run(withdrawn, &mut progress).await;
        let answer = match held {
            Held::Forward { request } => {
                let answer = self.forward(request).await;
                if let Some(cancel) = self.proxy.held.release(&self.key).filter(|c| !c.is_empty()) {
                    let _ = self
                        .proxy
                        .upstream_request(
                            Method::POST,
                            self.proxy.upstream.clone(),
                            &self.headers,
                            Bytes::from(cancel),
                        )
                        .send()
                        .await;
                }
                answer
            }
            Held::Refused(text) => {
                self.proxy.held.release(&self.key);
                Some(message::tool_error(&self.call.id, &text))
            }
            Held::Withdrawn => {
                self.proxy.held.release(&self.key);
                None
            }
        };
        watcher.abort();
        if let Some(answer) = answer {
            if self.streams {
                let _ = self
                    .events
                    .send(Bytes::from(sse::message_event(&answer)))
                    .await;
            } else {
                let _ = last.send(Bytes::from(answer));
            }
        }
    }

    /// Forwards the approved call and relays the upstream's answer into the client's stream;
    /// returns a last message to send, if the answer is not relayed already.
    async fn forward(&self, request: Option<RequestId>) -> Option<Vec<u8>> {
        let proxy = &self.proxy;
        let sent = proxy
            .upstream_request(
                Method::POST,
                proxy.upstream.clone(),
                &self.headers,
                self.body.clone(),
            )
            .send()
            .await;
        let mut answer = match sent {
            Ok(answer) => answer,
            Err(e) => {
                let text = format!(
                    "Countersign approved this call but cannot reach the MCP server at {}: {e}",
                    proxy.upstream
                );
                self.outcome(
                    request,
                    &Answer::Error {
                        code: 0,
                        message: text.clone(),
                    },
                )
                .await;
                return Some(message::tool_error(&self.call.id, &text));
            }
        };
        let is_sse = answer
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            let status = answer.status();
            let bytes = answer.bytes().await.unwrap_or_default();
            let found = message::answers(&bytes)
                .into_iter()
                .find(|(id, _)| *id == self.call.id);
            let outcome = found.map_or_else(
                || Answer::Error {
                    code: 0,
                    message: format!("the MCP server answered HTTP {status}"),
                },
                |(_, answer)| answer,
            );
            self.outcome(request, &outcome).await;
            if bytes.is_empty() || matches!(outcome, Answer::Error { code: 0, .. }) {
                let refusal = Refusal {
                    id: Some(self.call.id.clone()),
                    code: -32603,
                    message: format!(
                        "the MCP server answered HTTP {status} without a JSON-RPC answer"
                    ),
                };
                return Some(message::error_response(&refusal));
            }
            return Some(bytes.to_vec());
        }
        let mut parser = sse::Parser::default();
        let mut recorded = false;
        while let Ok(Some(chunk)) = answer.chunk().await {
            for event in parser.push(&chunk) {
                if !recorded {
                    let found = message::answers(event.data.as_bytes())
                        .into_iter()
                        .find(|(id, _)| *id == self.call.id);
                    if let Some((_, outcome)) = found {
                        recorded = true;
                        self.outcome(request, &outcome).await;
                    }
                }
                if self.streams {
                    let _ = self.events.send(Bytes::from(event.raw)).await;
                } else if recorded {
                    return Some(event.data.into_bytes());
                }
            }
        }
        if !recorded {
            let lost = Answer::Error {
                code: 0,
                message: "the server's stream ended before its answer".into(),
            };
            self.outcome(request, &lost).await;
        }
        None
    }

    async fn outcome(&self, request: Option<RequestId>, answer: &Answer) {
        if let Some(request) = request {
            record_outcome(&self.proxy.gate, request, &self.call.name, answer).await;
        }
    }
}

/// Relays an upstream answer: JSON whole, anything else (SSE) chunk by chunk as it arrives.
async fn relay(answer: reqwest::Response) -> Response {
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response = response.header(name, value);
        }
    }
    let streaming = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let body = if streaming {
        let chunks = futures_util::stream::unfold(Some(answer), |answer| async move {
            let mut answer = answer?;
            match answer.chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(answer))),
                Ok(None) => None,
                Err(e) => Some((Err(std::io::Error::other(e)), None)),
            }
        });
        Body::from_stream(chunks)
    } else {
        match answer.bytes().await {
            Ok(bytes) => Body::from(bytes),
            Err(e) => {
                return plain(
                    StatusCode::BAD_GATEWAY,
                    &format!("the MCP server's answer broke off: {e}"),
                );
            }
        }
    };
    response
        .body(body)
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

/// A held call's key: the session it belongs to and its JSON-RPC id.
fn session_key(headers: &HeaderMap, id: &RpcId) -> String {
    let session = headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    format!("{session}\u{0}{id}")
}

/// A `Mcp-Name` header (protocol 2026-07-28) that names another tool than the body: refused, so
/// a server routing by the header cannot run a tool other than the one checked.
fn name_header_mismatch(headers: &HeaderMap, call: &ToolCall) -> Option<Refusal> {
    let value = headers.get("mcp-name")?.to_str().ok();
    let named = value.and_then(|v| {
        match v
            .strip_prefix("=?base64?")
            .and_then(|v| v.strip_suffix("?="))
        {
            Some(encoded) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok()),
            None => Some(v.to_owned()),
        }
    });
    (named.as_deref() != Some(call.name.as_str())).then(|| Refusal {
        id: Some(call.id.clone()),
        code: INVALID_PARAMS,
        message: format!(
            "the Mcp-Name header does not name the tool the request calls (`{}`); Countersign \
             refuses the mismatch",
            call.name
        ),
    })
}

/// No `Origin` (not a browser), or an origin on this machine.
fn origin_is_local(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(url) = origin.to_str().ok().and_then(|o| Url::parse(o).ok()) else {
        return false;
    };
    matches!(
        url.host_str(),
        Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
    )
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn plain(status: StatusCode, text: &str) -> Response {
    (status, text.to_owned()).into_response()
}
