//! The client: one typed method per call of docs/api.md, each with its own time limit.

use std::fmt;
use std::time::Duration;

use countersign_api::AGENT_TOKEN_HEADER as AGENT_TOKEN;
use countersign_model::{Digest, PublicKey, RequestId};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bodies::{
    ActionRequest, AppendBody, ConsumeBody, OutcomeBody, OutcomeStatus, ReviewBody,
};
use crate::error::{ClientError, without_query};
use crate::views::{
    Appended, AuditKey, AuditPage, AuditVerification, ErrorBody, EvaluateResponse, GrantConsumed,
    Health, OutcomeRecorded, PolicyReloaded, PolicyView, ReadCode, RequestList, RequestState,
    RequestView, Verdict, Whoami,
};

/// The longest the broker holds a long-polling call (`?wait=`, `/wait?timeout=`); longer waits
/// are shortened to this.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// The time limit of an ordinary call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Added to a long poll's own timeout, so the broker's "still pending" answer arrives before the
/// client gives up on the connection.
const LONG_POLL_MARGIN: Duration = Duration::from_secs(10);

/// Reading or verifying the whole audit log takes time proportional to its length.
const WHOLE_LOG_TIMEOUT: Duration = Duration::from_secs(120);

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle connection is kept for the next call: well under the broker's header timeout.
const POOL_IDLE: Duration = Duration::from_secs(4);

/// A connection to one Countersign broker, authenticated as one principal.
///
/// Cheap to clone: clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The server address, its path ending with `/`.
    base: Url,
    authorization: HeaderValue,
    /// For a service principal submitting on behalf of an agent: that agent's token, sent as
    /// `Countersign-Agent-Token` (see [`Client::on_behalf_of`]).
    agent: Option<HeaderValue>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.server())
            .field("token", &"…")
            .finish()
    }
}

impl Client {
    /// A client for the broker at `server` (`http://HOST:PORT` or `https://HOST[/PREFIX]`),
    /// calling as the principal `token` names. Nothing is sent until the first call.
    pub fn new(server: &str, token: &str) -> Result<Client, ClientError> {
        let base = parse_server(server)?;
        let token = token.trim();
        if token.is_empty() {
            return Err(ClientError::InvalidToken {
                reason: "it is empty",
            });
        }
        let mut authorization =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                ClientError::InvalidToken {
                    reason: "it holds characters that cannot be sent in an HTTP header",
                }
            })?;
        authorization.set_sensitive(true);
        // reqwest builds its TLS configuration with aws-lc-rs explicitly when no process-wide
        // rustls provider is installed, so nothing needs installing here.
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            // The broker closes a kept-alive connection idle for its header timeout (10s by
            // default); reusing one only while it is fresher than that avoids sending a call
            // into a connection the broker is closing.
            .pool_idle_timeout(POOL_IDLE)
            .user_agent(concat!("countersign-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Setup {
                reason: e.to_string(),
            })?;
        Ok(Client {
            http,
            base,
            authorization,
            agent: None,
        })
    }

    /// This client, for a service principal (an enforcement point such as a proxy), calling on
    /// behalf of the agent whose token authenticated to it: the broker makes that agent the
    /// caller of every call (the requester of the actions it submits, with its chain, labels and
    /// resource bindings; who waits for, uses and reports on its requests), and records the
    /// service an action came through. The connection pool is shared.
    pub fn on_behalf_of(&self, agent_token: &str) -> Result<Client, ClientError> {
        let mut agent =
            HeaderValue::from_str(agent_token.trim()).map_err(|_| ClientError::InvalidToken {
                reason: "the agent's token holds characters that cannot be sent in an HTTP header",
            })?;
        agent.set_sensitive(true);
        Ok(Client {
            agent: Some(agent),
            ..self.clone()
        })
    }

    /// The server address, without a trailing `/`.
    pub fn server(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// Where a person can see a request: `SERVER/requests/ID`.
    pub fn request_link(&self, id: RequestId) -> String {
        format!("{}/requests/{id}", self.server())
    }

    /// `POST /v1/actions`: asks whether an action may run. With `wait`, a gated action's call is
    /// held until its request is decided or `wait` (at most [`MAX_WAIT`]) passes.
    ///
    /// A policy denial is an answer, not an error: it comes back as [`EvaluateResponse::Deny`].
    pub async fn evaluate(
        &self,
        action: &ActionRequest,
        wait: Option<Duration>,
    ) -> Result<EvaluateResponse, ClientError> {
        let mut url = self.endpoint(&["v1", "actions"])?;
        let mut limit = CALL_TIMEOUT;
        if let Some(wait) = wait {
            let wait = wait.min(MAX_WAIT);
            url.query_pairs_mut()
                .append_pair("wait", &duration_param(wait));
            limit = wait + LONG_POLL_MARGIN;
        }
        let body = to_json(action)?;
        let (status, bytes) = self.fetch(Method::POST, &url, Some(body), limit).await?;
        // A denial is a 403 that carries the decision; any other 403 is a refusal of the call.
        let is_decision =
            status.is_success() || (status == StatusCode::FORBIDDEN && has_decision(&bytes));
        if is_decision {
            decode(&url, status, &bytes)
        } else {
            Err(self.refusal(&url, status, &bytes))
        }
    }

    /// `GET /v1/requests`: requests, newest first (humans see all, agents their own).
    pub async fn list_requests(
        &self,
        state: Option<RequestState>,
        limit: Option<u32>,
    ) -> Result<Vec<RequestView>, ClientError> {
        let mut url = self.endpoint(&["v1", "requests"])?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(state) = state {
                query.append_pair("state", state.as_str());
            }
            if let Some(limit) = limit {
                query.append_pair("limit", &limit.to_string());
            }
        }
        let list: RequestList = self.call(Method::GET, url, None, CALL_TIMEOUT).await?;
        Ok(list.requests)
    }

    /// `GET /v1/requests/{id}`.
    pub async fn get_request(&self, id: RequestId) -> Result<RequestView, ClientError> {
        let url = self.endpoint(&["v1", "requests", &id.to_string()])?;
        self.call(Method::GET, url, None, CALL_TIMEOUT).await
    }

    /// `GET /v1/requests/{id}/wait`: the request the moment it is decided, or still pending once
    /// `timeout` (at most [`MAX_WAIT`]) passes.
    pub async fn wait(&self, id: RequestId, timeout: Duration) -> Result<RequestView, ClientError> {
        let timeout = timeout.min(MAX_WAIT);
        let mut url = self.endpoint(&["v1", "requests", &id.to_string(), "wait"])?;
        url.query_pairs_mut()
            .append_pair("timeout", &duration_param(timeout));
        self.call(Method::GET, url, None, timeout + LONG_POLL_MARGIN)
            .await
    }

    /// `POST /v1/requests/{id}/reviews`: approves or denies as the token's human. A refusal
    /// (self-approval, not eligible, already decided…) is an [`ClientError::Api`] with its reason.
    pub async fn review(
        &self,
        id: RequestId,
        verdict: Verdict,
        comment: Option<&str>,
    ) -> Result<RequestView, ClientError> {
        let url = self.endpoint(&["v1", "requests", &id.to_string(), "reviews"])?;
        let body = to_json(&ReviewBody {
            verdict,
            comment: comment.map(str::to_owned),
        })?;
        self.call(Method::POST, url, Some(body), CALL_TIMEOUT).await
    }

    /// `POST /v1/requests/{id}/cancel`: withdraws a pending request.
    pub async fn cancel(&self, id: RequestId) -> Result<RequestView, ClientError> {
        let url = self.endpoint(&["v1", "requests", &id.to_string(), "cancel"])?;
        self.call(Method::POST, url, Some(b"{}".to_vec()), CALL_TIMEOUT)
            .await
    }

    /// `POST /v1/grants/consume`: uses a grant for the action whose digest is `digest`, the last
    /// step before running it. A used grant is `409 grant_used`; a bad, expired or foreign one
    /// `403 grant_invalid`.
    pub async fn consume_grant(
        &self,
        token: &str,
        digest: Digest,
    ) -> Result<GrantConsumed, ClientError> {
        let url = self.endpoint(&["v1", "grants", "consume"])?;
        let body = to_json(&ConsumeBody {
            token: token.to_owned(),
            digest,
        })?;
        self.call(Method::POST, url, Some(body), CALL_TIMEOUT).await
    }

    /// `POST /v1/requests/{id}/outcome`: records how the approved action went.
    pub async fn record_outcome(
        &self,
        id: RequestId,
        status: OutcomeStatus,
        exit_code: Option<i32>,
        summary: Option<&str>,
    ) -> Result<(), ClientError> {
        let url = self.endpoint(&["v1", "requests", &id.to_string(), "outcome"])?;
        let body = to_json(&OutcomeBody {
            status,
            exit_code: exit_code.map(serde_json::Number::from),
            summary: summary.map(str::to_owned),
        })?;
        let recorded: OutcomeRecorded = self
            .call(Method::POST, url.clone(), Some(body), CALL_TIMEOUT)
            .await?;
        if recorded.recorded {
            Ok(())
        } else {
            Err(ClientError::MalformedResponse {
                url: without_query(&url),
                status: 200,
                reason: "it answered success but says the outcome was not recorded".into(),
            })
        }
    }

    /// `GET /v1/policy`: the policy in force, its text and hash.
    pub async fn policy(&self) -> Result<PolicyView, ClientError> {
        let url = self.endpoint(&["v1", "policy"])?;
        self.call(Method::GET, url, None, CALL_TIMEOUT).await
    }

    /// `POST /v1/audit/events`: reports events an enforcement point decided or saw itself, each
    /// a [`ReportedEvent`](crate::ReportedEvent) or one already serialized as such (a `&RawValue`, as a spool keeps
    /// them, sent on without being decoded again; the broker checks every event and refuses the
    /// batch if one is malformed). Returns how many were appended.
    pub async fn append_audit<E: Serialize>(&self, events: &[E]) -> Result<u64, ClientError> {
        let url = self.endpoint(&["v1", "audit", "events"])?;
        let body = to_json(&AppendBody { events })?;
        let appended: Appended = self
            .call(Method::POST, url, Some(body), CALL_TIMEOUT)
            .await?;
        Ok(appended.appended)
    }

    /// `GET /v1/whoami`: the principal the token names.
    pub async fn whoami(&self) -> Result<Whoami, ClientError> {
        let url = self.endpoint(&["v1", "whoami"])?;
        self.call(Method::GET, url, None, CALL_TIMEOUT).await
    }

    /// `GET /v1/audit`: events after event `after` (0: from the start), at most `limit`, with the
    /// checkpoints that sign them.
    pub async fn audit(&self, after: u64, limit: Option<u32>) -> Result<AuditPage, ClientError> {
        let mut url = self.endpoint(&["v1", "audit"])?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("after", &after.to_string());
            if let Some(limit) = limit {
                query.append_pair("limit", &limit.to_string());
            }
        }
        self.call(Method::GET, url, None, CALL_TIMEOUT).await
    }

    /// `GET /v1/audit/verify`: the broker verifies its whole log and its checkpoints.
    pub async fn audit_verify(&self) -> Result<AuditVerification, ClientError> {
        let url = self.endpoint(&["v1", "audit", "verify"])?;
        self.call(Method::GET, url, None, WHOLE_LOG_TIMEOUT).await
    }

    /// `GET /v1/audit/export`: the whole log as JSON Lines, events and checkpoints interleaved
    /// (read it with `countersign_audit::parse_export`).
    pub async fn audit_export(&self) -> Result<String, ClientError> {
        let url = self.endpoint(&["v1", "audit", "export"])?;
        let (status, bytes) = self
            .fetch(Method::GET, &url, None, WHOLE_LOG_TIMEOUT)
            .await?;
        if !status.is_success() {
            return Err(self.refusal(&url, status, &bytes));
        }
        String::from_utf8(bytes).map_err(|_| ClientError::MalformedResponse {
            url: without_query(&url),
            status: status.as_u16(),
            reason: "the export is not UTF-8 text".into(),
        })
    }

    /// `GET /v1/audit/key`: the public key that signs the log's checkpoints (and grants).
    pub async fn audit_key(&self) -> Result<PublicKey, ClientError> {
        let url = self.endpoint(&["v1", "audit", "key"])?;
        let key: AuditKey = self.call(Method::GET, url, None, CALL_TIMEOUT).await?;
        Ok(key.public_key)
    }

    /// `POST /v1/admin/policy/reload` (human administrators): re-reads the policy file. An
    /// invalid policy is a `400` whose message lists its errors; the old policy stays in force.
    pub async fn reload_policy(&self) -> Result<PolicyReloaded, ClientError> {
        let url = self.endpoint(&["v1", "admin", "policy", "reload"])?;
        self.call(Method::POST, url, Some(b"{}".to_vec()), CALL_TIMEOUT)
            .await
    }

    /// `GET /healthz` (sent without the token: anyone may ask).
    pub async fn healthz(&self) -> Result<Health, ClientError> {
        let url = self.endpoint(&["healthz"])?;
        let (status, bytes) = self
            .send(Method::GET, &url, None, CALL_TIMEOUT, false)
            .await?;
        self.answer(&url, status, &bytes)
    }

    /// The URL of an endpoint below the server address; each segment is percent-encoded.
    fn endpoint(&self, segments: &[&str]) -> Result<Url, ClientError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| ClientError::InvalidServer {
                server: self.base.to_string(),
                reason: "it cannot have a path".into(),
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// Sends an authenticated call and decodes a successful answer as `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        limit: Duration,
    ) -> Result<T, ClientError> {
        let (status, bytes) = self.fetch(method, &url, body, limit).await?;
        self.answer(&url, status, &bytes)
    }

    /// A successful answer decoded as `T`, or the broker's refusal.
    fn answer<T: DeserializeOwned>(
        &self,
        url: &Url,
        status: StatusCode,
        bytes: &[u8],
    ) -> Result<T, ClientError> {
        if status.is_success() {
            decode(url, status, bytes)
        } else {
            Err(self.refusal(url, status, bytes))
        }
    }

    async fn fetch(
        &self,
        method: Method,
        url: &Url,
        body: Option<Vec<u8>>,
        limit: Duration,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        self.send(method, url, body, limit, true).await
    }

    async fn send(
        &self,
        method: Method,
        url: &Url,
        body: Option<Vec<u8>>,
        limit: Duration,
        authenticated: bool,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let mut request = self
            .http
            .request(method, url.clone())
            .timeout(limit)
            .header(ACCEPT, "application/json");
        if authenticated {
            request = request.header(AUTHORIZATION, self.authorization.clone());
            if let Some(agent) = &self.agent {
                request = request.header(AGENT_TOKEN, agent.clone());
            }
        }
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::unreachable(url, &e, limit))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::unreachable(url, &e, limit))?;
        Ok((status, bytes.to_vec()))
    }

    /// The error for an unsuccessful answer: the broker's own code and sentence when it sent one.
    fn refusal(&self, url: &Url, status: StatusCode, bytes: &[u8]) -> ClientError {
        let body = serde_json::from_slice::<ErrorBody>(bytes).ok();
        match (status, body) {
            (StatusCode::UNAUTHORIZED, body) => {
                let mut message = body.map_or_else(
                    || "it answered 401 Unauthorized".to_owned(),
                    |b| b.error.message,
                );
                if !message.contains("COUNTERSIGN_TOKEN") {
                    message.push_str("; check COUNTERSIGN_TOKEN (or --token)");
                }
                ClientError::Unauthenticated {
                    server: self.server().to_owned(),
                    message,
                }
            }
            (status, Some(body)) => ClientError::Api {
                status: status.as_u16(),
                code: ReadCode::from(body.error.code),
                message: body.error.message,
            },
            (status, None) => ClientError::MalformedResponse {
                url: without_query(url),
                status: status.as_u16(),
                reason: format!(
                    "expected a Countersign error ({{\"error\": {{\"code\", \"message\"}}}}), got {}",
                    snippet(bytes)
                ),
            },
        }
    }
}

/// Checks and normalizes a server address: http or https, a host, no credentials, no query.
fn parse_server(server: &str) -> Result<Url, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidServer {
        server: server.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = server.trim();
    if trimmed.is_empty() {
        return Err(invalid("it is empty"));
    }
    let mut url = Url::parse(trimmed).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(&format!(
            "the scheme is '{}', not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it names no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "it holds a user name or password; pass the token in COUNTERSIGN_TOKEN instead",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("it has a query or a fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// A duration as the API reads it: whole seconds, at least one (`90s`).
fn duration_param(d: Duration) -> String {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    format!("{}s", secs.max(1))
}

fn to_json<T: Serialize>(body: &T) -> Result<Vec<u8>, ClientError> {
    serde_json::to_vec(body).map_err(|e| ClientError::Unsendable {
        reason: e.to_string(),
    })
}

fn decode<T: DeserializeOwned>(
    url: &Url,
    status: StatusCode,
    bytes: &[u8],
) -> Result<T, ClientError> {
    serde_json::from_slice(bytes).map_err(|e| ClientError::MalformedResponse {
        url: without_query(url),
        status: status.as_u16(),
        reason: e.to_string(),
    })
}

/// Whether a body is a JSON object with a `decision` field (the answer to an evaluation).
fn has_decision(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .is_ok_and(|value| value.get("decision").is_some())
}

/// The start of a body, for a message about an answer that makes no sense.
fn snippet(bytes: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        return "an empty body".to_owned();
    }
    let mut cut: String = text
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > MAX {
        cut.push('…');
    }
    format!("'{cut}'")
}
