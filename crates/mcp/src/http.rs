//! The streamable HTTP transport (MCP 2025-03-26 and later): Countersign listens where the
//! client expects the server and mirrors the upstream server. Every request goes upstream with its
//! headers (`Authorization`, `Mcp-Session-Id`, `MCP-Protocol-Version`, `Last-Event-ID`…) and its
//! answer comes back as it is, status, headers and body (JSON or an SSE stream, relayed as it
//! arrives), with one exception: an SSE answer to a POST that turns out to hold nothing but the
//! response comes back as that response in JSON (see `relay`). Which requests are taken at all
//! is `route`'s: a body goes upstream only as a POST to the MCP endpoint's exact path, and every
//! such POST is looked into: a `tools/call` is gated, and a `notifications/cancelled` for a held
//! call withdraws it. OAuth metadata and challenges are rewritten to name the proxy (`oauth`).
//!
//! A held call is answered with an SSE stream of Countersign's own: progress notifications (or
//! comments) while reviewers decide, then the upstream's answer relayed into it once the call has
//! been approved and forwarded. If the client drops that stream, the call is withdrawn.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::Uri;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use countersign_model::RequestId;
use hyper::body::Incoming;
use reqwest::Url;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::approval::{Held, Hold, record_outcome};
use crate::gate::{Check, Gate};
use crate::held::{HeldCalls, Withdrawal};
use crate::message::{self, Answer, INVALID_PARAMS, Inbound, Refusal, RpcId, ToolCall};
use crate::oauth::{self, Origins};
use crate::route::{self, Route};
use crate::sse;
use crate::upstream::{HOP_BY_HOP, Upstream};

const MAX_BODY: usize = 64 * 1024 * 1024;

#[derive(Debug)]
struct Proxy {
    gate: Arc<Gate>,
    held: HeldCalls,
    /// The upstream MCP server; its endpoint's path is the endpoint's path here too.
    upstream: Upstream,
    /// Refuse browser origins other than this machine (DNS rebinding), when listening on
    /// loopback.
    loopback_only: bool,
    /// The address the proxy listens on, for OAuth metadata asked for without a `Host`.
    listening: String,
    /// Where the upstream's challenges said its OAuth metadata is.
    advertised: Arc<oauth::Advertised>,
}

/// Serves the proxy on `listener` until `shutdown` completes.
pub async fn serve(
    gate: Arc<Gate>,
    listener: TcpListener,
    upstream: Upstream,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let local = listener.local_addr();
    let loopback_only = local
        .as_ref()
        .is_ok_and(|a: &SocketAddr| a.ip().is_loopback());
    let proxy = Arc::new(Proxy {
        gate,
        held: HeldCalls::default(),
        upstream,
        loopback_only,
        listening: local.map_or_else(|_| "localhost".into(), |a| a.to_string()),
        advertised: Arc::default(),
    });
    serve_connections(listener, proxy, shutdown).await;
    Ok(())
}

/// How long open connections (held calls, SSE streams) may take to finish after a shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Accepts connections and serves each with HTTP/1.1 (what MCP clients speak) until `shutdown`;
/// then stops accepting, asks open connections to close once their current answer is sent, and
/// waits for them at most `SHUTDOWN_GRACE`. Straight on hyper: an allowed call is relayed with
/// nothing between the connection and `handle` but the service function.
async fn serve_connections(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (closing, closed) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors, mostly: pause rather than spin.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = &mut shutdown => break,
        };
        // Small JSON-RPC answers must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let proxy = Arc::clone(&proxy);
        let mut closed = closed.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let proxy = Arc::clone(&proxy);
                async move { Ok::<_, std::convert::Infallible>(handle(proxy, request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = closed.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!("an MCP client's connection ended: {e}");
            }
        });
    }
    drop(listener);
    let _ = closing.send(true);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

async fn handle(proxy: Arc<Proxy>, request: hyper::Request<hyper::body::Incoming>) -> Response {
    let (parts, body) = request.into_parts();
    if proxy.loopback_only && !origin_is_local(&parts.headers) {
        return plain(
            StatusCode::FORBIDDEN,
            "Countersign refuses requests from web pages of other sites (Origin header)",
        );
    }
    // Routed by the head alone: nothing is read, let alone sent, for a path that is refused.
    let route = match route::route(
        &parts.method,
        &parts.uri,
        &parts.headers,
        proxy.upstream.path(),
    ) {
        Ok(route) => route,
        // A metadata location the upstream itself named in a challenge.
        Err(_) if parts.method == Method::GET && proxy.advertised.knows(parts.uri.path()) => {
            Route::ResourceMetadata
        }
        Err(refused) => {
            let mut answer = plain(refused.status, &refused.text);
            if let Some(allow) = refused.allow {
                answer
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            return answer;
        }
    };
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    let body = match http_body_util::BodyExt::collect(limited).await {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "the request body is larger than {} MiB",
                    MAX_BODY / (1024 * 1024)
                ),
            );
        }
        Err(e) => {
            return plain(
                StatusCode::BAD_REQUEST,
                &format!("the request body could not be read: {e}"),
            );
        }
    };
    if !route.takes_body() && !body.is_empty() {
        return plain(
            StatusCode::BAD_REQUEST,
            &format!(
                "Countersign relays a body only with a POST to the MCP endpoint; a {} carries none",
                parts.method
            ),
        );
    }
    match route {
        Route::Message => proxy.post(&parts.headers, body).await,
        Route::Endpoint => {
            let endpoint = proxy.upstream.endpoint();
            proxy
                .forward(parts.method, endpoint, &parts.headers, body)
                .await
        }
        Route::Metadata => {
            let uri = proxy.upstream.at(parts.uri.path_and_query());
            proxy.forward(parts.method, uri, &parts.headers, body).await
        }
        Route::ResourceMetadata => proxy.resource_metadata(&parts.uri, &parts.headers).await,
    }
}

impl Proxy {
    async fn post(self: &Arc<Self>, headers: &HeaderMap, body: Bytes) -> Response {
        if let Some(refusal) = method_header_mismatch(headers, &body) {
            return json(StatusCode::BAD_REQUEST, message::error_response(&refusal));
        }
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
        self.forward(Method::POST, self.upstream.endpoint(), headers, body)
            .await
    }

    /// Sends a request upstream and relays the answer as it comes.
    async fn forward(
        &self,
        method: Method,
        uri: Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Response {
        let asked = Asked::of(&method, headers, &body);
        let origins = self.origins(headers);
        match self.upstream.send(method, uri, headers, body).await {
            Ok(answer) => relay(answer, asked, &origins).await,
            Err(e) => plain(
                StatusCode::BAD_GATEWAY,
                &format!(
                    "Countersign cannot reach the MCP server at {}: {}",
                    self.upstream.url(),
                    error_chain(&e)
                ),
            ),
        }
    }

    fn origins(&self, headers: &HeaderMap) -> Origins {
        Origins::of(
            self.upstream.url(),
            headers,
            &self.listening,
            Arc::clone(&self.advertised),
        )
    }

    /// Serves the upstream's protected-resource metadata (the same path there) with its
    /// resource moved to the proxy (`oauth::resource_metadata`). A document the proxy cannot
    /// read is not passed on: it would name the upstream, which the client must refuse anyway.
    async fn resource_metadata(&self, uri: &Uri, headers: &HeaderMap) -> Response {
        let origins = self.origins(headers);
        let at = self.upstream.at(uri.path_and_query());
        let answer = match self
            .upstream
            .send(Method::GET, at, headers, Bytes::new())
            .await
        {
            Ok(answer) => answer,
            Err(e) => {
                return plain(
                    StatusCode::BAD_GATEWAY,
                    &format!(
                        "Countersign cannot reach the MCP server at {}: {}",
                        self.upstream.url(),
                        error_chain(&e)
                    ),
                );
            }
        };
        if answer.status() != StatusCode::OK {
            return relay(answer, Asked::Other, &origins).await;
        }
        let (head, body) = answer.into_parts();
        let rewritten = match http_body_util::BodyExt::collect(body).await {
            Ok(_) if head.headers.contains_key(header::CONTENT_ENCODING) => {
                Err("it came compressed".to_owned())
            }
            Ok(body) => oauth::resource_metadata(&body.to_bytes(), &origins),
            Err(e) => Err(format!("it broke off: {e}")),
        };
        match rewritten {
            Ok(metadata) => {
                let mut response = with_head(&head, Body::from(metadata), &origins);
                let headers = response.headers_mut();
                headers.remove(header::ETAG);
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
            Err(why) => plain(
                StatusCode::BAD_GATEWAY,
                &format!(
                    "Countersign cannot serve the MCP server's protected-resource metadata: {why}"
                ),
            ),
        }
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
                        .upstream
                        .send(
                            Method::POST,
                            self.proxy.upstream.endpoint(),
                            &self.headers,
                            Bytes::from(cancel),
                        )
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
            .upstream
            .send(
                Method::POST,
                proxy.upstream.endpoint(),
                &self.headers,
                self.body.clone(),
            )
            .await;
        let mut answer = match sent {
            Ok(answer) => answer,
            Err(e) => {
                let text = format!(
                    "Countersign approved this call but cannot reach the MCP server at {}: {}",
                    proxy.upstream.url(),
                    error_chain(&e)
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
            let bytes = http_body_util::BodyExt::collect(answer.into_body())
                .await
                .map(http_body_util::Collected::to_bytes)
                .unwrap_or_default();
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
        while let Some(Ok(chunk)) = next_chunk(answer.body_mut()).await {
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

/// What the client asked with, as far as relaying the answer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// Anything but a POST (a GET's stream of server messages, a DELETE).
    Other,
    /// A POST.
    Post,
    /// A POST of one message by a client that takes a JSON answer too (as every MCP client must).
    PostTakingJson,
}

impl Asked {
    fn of(method: &Method, headers: &HeaderMap, body: &[u8]) -> Self {
        if method != Method::POST {
            return Asked::Other;
        }
        let batch = body.trim_ascii_start().starts_with(b"[");
        if !batch && takes_json(headers) {
            Asked::PostTakingJson
        } else {
            Asked::Post
        }
    }
}

/// Whether the `Accept` header lets the answer be `application/json`.
fn takes_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|range| range.split(';').next().unwrap_or("").trim())
        .any(|range| {
            range.eq_ignore_ascii_case("application/json")
                || range.eq_ignore_ascii_case("application/*")
                || range == "*/*"
        })
}

/// Relays an upstream answer: JSON whole, anything else (SSE) as it arrives.
///
/// An SSE answer to a POST usually holds one event and ends right after it. Its head waits for
/// that first event (at most `FIRST_EVENT_WAIT`, so a long tool call's stream still opens at once
/// for the client), and every write to the client takes along what the upstream connection has
/// already received: a short answer leaves in one write instead of three, which costs the client
/// and the proxy a wake-up and a system call each.
///
/// When that first run is the whole stream and it carries nothing but the response, the client
/// gets the response as `application/json`, which the protocol lets a server answer any POST
/// with: the same message, without a stream around it. It matters to clients that stop reading a
/// stream at the response, as the official SDKs do: they must then close the connection, while a
/// JSON answer is read to its end and the connection serves the next call.
async fn relay(answer: hyper::Response<Incoming>, asked: Asked, origins: &Origins) -> Response {
    let (head, body) = answer.into_parts();
    let streaming = head
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let body = if streaming {
        let mut upstream = Runs::new(body);
        // Only `chunk` is given up at the deadline: a run under way is never cut short.
        let first = if asked == Asked::Other {
            None
        } else {
            match tokio::time::timeout(FIRST_EVENT_WAIT, upstream.chunk()).await {
                Ok(chunk) => Some(upstream.run_from(chunk).await),
                Err(_) => None,
            }
        };
        if let Some(Some(Ok(run))) = &first
            && asked == Asked::PostTakingJson
            && upstream.ended()
            && let Some(response) = sse::sole_message(run)
            && message::is_response(response.as_bytes())
        {
            let mut answer = with_head(&head, Body::from(response), origins);
            answer.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return answer;
        }
        let chunks =
            futures_util::stream::unfold((upstream, first), |(mut upstream, first)| async move {
                let next = match first {
                    Some(ready) => ready,
                    None => upstream.next().await,
                };
                next.map(|chunk| (chunk, (upstream, None)))
            });
        Body::from_stream(chunks)
    } else {
        match http_body_util::BodyExt::collect(body).await {
            Ok(collected) => Body::from(collected.to_bytes()),
            Err(e) => {
                return plain(
                    StatusCode::BAD_GATEWAY,
                    &format!("the MCP server's answer broke off: {e}"),
                );
            }
        }
    };
    with_head(&head, body, origins)
}

/// The client's answer: the upstream's status and headers (but those of its connection), `body`.
/// A challenge's `resource_metadata` names the proxy's copy of the metadata (see `oauth`), and a
/// redirect to the upstream's origin stays on the proxy's: a client following it goes through
/// the proxy again (to a path it relays, or not at all).
fn with_head(head: &hyper::http::response::Parts, body: Body, origins: &Origins) -> Response {
    let mut response = Response::builder().status(head.status);
    for (name, value) in &head.headers {
        if HOP_BY_HOP.contains(&name.as_str()) {
            continue;
        }
        let text = || value.to_str().ok();
        let moved = if name == header::WWW_AUTHENTICATE {
            text().and_then(|text| oauth::www_authenticate(text, origins))
        } else if name == header::LOCATION {
            text().and_then(|url| origins.moved(url))
        } else {
            None
        }
        .and_then(|text| HeaderValue::from_str(&text).ok());
        response = response.header(name, moved.as_ref().unwrap_or(value));
    }
    response
        .body(body)
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

/// How long the head of an SSE answer to a POST waits for its first event.
const FIRST_EVENT_WAIT: Duration = Duration::from_millis(20);

/// An upstream SSE body read in runs: each run is what arrived, plus what the upstream
/// connection had already received behind it.
struct Runs {
    answer: Option<Incoming>,
    /// A break found while taking a run along, reported after the run.
    broken: Option<std::io::Error>,
}

impl Runs {
    fn new(answer: Incoming) -> Self {
        Runs {
            answer: Some(answer),
            broken: None,
        }
    }

    /// Whether the body has ended, all of it taken (and not broken off).
    fn ended(&self) -> bool {
        self.answer.is_none() && self.broken.is_none()
    }

    /// The next run of bytes; `None` once the body ended (or broke off, after the error).
    async fn next(&mut self) -> Option<std::io::Result<Bytes>> {
        let chunk = self.chunk().await;
        self.run_from(chunk).await
    }

    /// The next chunk as it comes. Unlike `next`, it may be given up (a timeout) without losing
    /// anything.
    async fn chunk(&mut self) -> Option<std::io::Result<Bytes>> {
        if let Some(e) = self.broken.take() {
            return Some(Err(e));
        }
        next_chunk(self.answer.as_mut()?).await
    }

    /// The run that begins with `chunk`: it, and what the upstream connection already received
    /// behind it.
    async fn run_from(
        &mut self,
        chunk: Option<std::io::Result<Bytes>>,
    ) -> Option<std::io::Result<Bytes>> {
        let first = match chunk {
            Some(Ok(chunk)) => chunk,
            ended => {
                self.answer = None;
                return ended;
            }
        };
        let answer = self.answer.as_mut()?;
        let mut run: Option<Vec<u8>> = None;
        loop {
            // The connection task hands over what it has read when it next runs: let it.
            tokio::task::yield_now().await;
            match futures_util::FutureExt::now_or_never(next_chunk(answer)) {
                Some(Some(Ok(more))) => run
                    .get_or_insert_with(|| first.to_vec())
                    .extend_from_slice(&more),
                Some(None) => {
                    self.answer = None;
                    break;
                }
                // What arrived goes first; the break is reported by the next call.
                Some(Some(Err(e))) => {
                    self.answer = None;
                    self.broken = Some(e);
                    break;
                }
                None => break,
            }
        }
        Some(Ok(run.map_or(first, Bytes::from)))
    }
}

/// The next piece of an upstream body's data (trailers are not relayed); `None` at its end.
async fn next_chunk(body: &mut Incoming) -> Option<std::io::Result<Bytes>> {
    loop {
        match http_body_util::BodyExt::frame(body).await? {
            Ok(frame) => match frame.into_data() {
                Ok(data) if data.is_empty() => {}
                Ok(data) => return Some(Ok(data)),
                Err(_trailers) => {}
            },
            Err(e) => return Some(Err(std::io::Error::other(e))),
        }
    }
}

/// An error with its causes, as one line: hyper's own message says little ("client error
/// (Connect)") without them.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A held call's key: the session it belongs to and its JSON-RPC id.
fn session_key(headers: &HeaderMap, id: &RpcId) -> String {
    let session = headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    format!("{session}\u{0}{id}")
}

/// The value of header `name`, when there is exactly one: `None` when it is absent, `Some(None)`
/// when it is repeated or not readable text. A server may read any of several values (the last,
/// or all joined), so a header the gate compares must come once.
fn sole_header<'a>(headers: &'a HeaderMap, name: &str) -> Option<Option<&'a str>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    Some(values.next().map_or(first.to_str().ok(), |_| None))
}

/// A `Mcp-Method` header (protocol 2026-07-28) that names another method than the body's (or
/// comes twice, with a batch, or with a body without a method): refused, so a server routing by
/// the header cannot take for a tool call what the gate read as something else.
fn method_header_mismatch(headers: &HeaderMap, body: &[u8]) -> Option<Refusal> {
    let header = sole_header(headers, "mcp-method")?;
    let method = message::method_of(body);
    let message = match (header, method) {
        (Some(header), Some(method)) if header == method => return None,
        (None, _) => "send one Mcp-Method header, in plain text; Countersign refuses it repeated \
                      or unreadable"
            .to_owned(),
        (Some(_), Some(method)) => format!(
            "the Mcp-Method header does not name the method of the message (`{method}`); \
             Countersign refuses the mismatch"
        ),
        (Some(_), None) => "an Mcp-Method header goes only with one request or notification, and \
                            must name its method; Countersign refuses it here"
            .to_owned(),
    };
    Some(Refusal {
        id: None,
        code: message::INVALID_REQUEST,
        message,
    })
}

/// A `Mcp-Name` header (protocol 2026-07-28) that names another tool than the body (or comes
/// twice): refused, so a server routing by the header cannot run a tool other than the one checked.
fn name_header_mismatch(headers: &HeaderMap, call: &ToolCall) -> Option<Refusal> {
    let value = sole_header(headers, "mcp-name")?;
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
