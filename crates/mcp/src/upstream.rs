//! The remote MCP server behind `countersign mcp --listen`: hyper's pooled HTTP/1.1 client, the
//! endpoint's address parsed once, TLS with the platform's trusted roots for `https`, no
//! redirects followed (an MCP endpoint that redirects is answered as it answered).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::uri::{Authority, PathAndQuery, Scheme};
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, Uri, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use reqwest::Url;
use rustls_platform_verifier::BuilderVerifierExt as _;

/// Headers that belong to one connection, not to the message (and `Host`, which is the
/// upstream's own, and `Content-Length`, which the client sets from the body).
pub(crate) const HOP_BY_HOP: [&str; 10] = [
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

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("'{0}' is not an MCP server address (expected http://HOST[:PORT]/PATH)")]
    Address(String),
    #[error("cannot set up TLS for the MCP server: {0}")]
    Tls(String),
}

/// Where the proxy sends what it relays.
#[derive(Debug)]
pub struct Upstream {
    url: Url,
    scheme: Scheme,
    authority: Authority,
    endpoint: Uri,
    user_agent: HeaderValue,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Upstream {
    pub fn new(url: Url) -> Result<Upstream, UpstreamError> {
        let address = || UpstreamError::Address(url.to_string());
        let endpoint: Uri = url.as_str().parse().map_err(|_| address())?;
        let (Some(scheme), Some(authority)) =
            (endpoint.scheme().cloned(), endpoint.authority().cloned())
        else {
            return Err(address());
        };
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(address());
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|builder| builder.with_platform_verifier())
            .map_err(|e| UpstreamError::Tls(e.to_string()))?
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Upstream {
            client: Client::builder(TokioExecutor::new()).build(connector),
            url,
            scheme,
            authority,
            endpoint,
            user_agent: HeaderValue::from_static(concat!(
                "countersign-mcp/",
                env!("CARGO_PKG_VERSION")
            )),
        })
    }

    /// The MCP endpoint, as given.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The endpoint's path: the path of the MCP endpoint here too.
    pub fn path(&self) -> &str {
        self.endpoint.path()
    }

    /// The MCP endpoint.
    pub fn endpoint(&self) -> Uri {
        self.endpoint.clone()
    }

    /// Another path on the upstream server (OAuth metadata, for one).
    pub fn at(&self, path_and_query: Option<&PathAndQuery>) -> Uri {
        let mut parts = axum::http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(
            path_and_query
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
        Uri::from_parts(parts).unwrap_or_else(|_| self.endpoint.clone())
    }

    /// Sends a request with the client's headers, less those of its connection.
    pub async fn send(
        &self,
        method: Method,
        uri: Uri,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        let outgoing = request.headers_mut();
        outgoing.reserve(headers.len() + 1);
        for (name, value) in headers {
            if !HOP_BY_HOP.contains(&name.as_str()) && name != header::ACCEPT_ENCODING {
                outgoing.append(name.clone(), value.clone());
            }
        }
        if !outgoing.contains_key(header::USER_AGENT) {
            outgoing.insert(header::USER_AGENT, self.user_agent.clone());
        }
        self.client.request(request).await
    }
}
