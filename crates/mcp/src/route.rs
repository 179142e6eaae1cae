//! Which HTTP requests the proxy takes from a client, and what becomes of each. The rule it
//! keeps: the only body that leaves for the upstream is that of a POST to the MCP endpoint's
//! exact path, read by the gate as the upstream will read it (UTF-8, not compressed). Other
//! methods of the endpoint and the OAuth metadata documents go on without a body; any other path
//! is refused here, however the upstream would have understood it (`/MCP`, `/mcp/`, `/%6Dcp`,
//! `//mcp`: servers route case-insensitively, with a trailing slash, after decoding…).

use axum::http::{HeaderMap, Method, StatusCode, Uri, header};

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A POST to the MCP endpoint: its body is a message for the gate.
    Message,
    /// Another method of the MCP endpoint (the server's stream, the end of a session, a CORS
    /// preflight): relayed without a body.
    Endpoint,
    /// The protected resource's OAuth metadata (RFC 9728): fetched from the upstream at the same
    /// path and served naming the proxy as the resource.
    ResourceMetadata,
    /// The authorization server's metadata (RFC 8414, OpenID discovery) where an upstream serves
    /// its own, or a CORS preflight of a metadata document: relayed without a body.
    Metadata,
}

impl Route {
    /// Whether the request may carry a body.
    pub fn takes_body(self) -> bool {
        self == Route::Message
    }
}

/// A request refused before anything is sent upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: StatusCode,
    /// The methods the path takes, for a 405's `Allow` header.
    pub allow: Option<&'static str>,
    pub text: String,
}

impl Refused {
    fn new(status: StatusCode, text: impl Into<String>) -> Refused {
        Refused {
            status,
            allow: None,
            text: text.into(),
        }
    }
}

const RESOURCE_METADATA: &str = "/.well-known/oauth-protected-resource";
const SERVER_METADATA: [&str; 2] = [
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
];

/// Routes a request by its head; `endpoint` is the MCP endpoint's path.
pub fn route(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    endpoint: &str,
) -> Result<Route, Refused> {
    let path = uri.path();
    if path == endpoint {
        return match *method {
            Method::POST => readable_body(headers).map(|()| Route::Message),
            Method::GET | Method::DELETE | Method::OPTIONS => Ok(Route::Endpoint),
            _ => Err(Refused {
                status: StatusCode::METHOD_NOT_ALLOWED,
                allow: Some("GET, POST, DELETE, OPTIONS"),
                text: format!(
                    "Countersign relays only GET, POST, DELETE and OPTIONS of the MCP endpoint, \
                     not {method}"
                ),
            }),
        };
    }
    let metadata = if under(path, RESOURCE_METADATA) {
        Some(Route::ResourceMetadata)
    } else if SERVER_METADATA.iter().any(|prefix| under(path, prefix)) {
        Some(Route::Metadata)
    } else {
        None
    };
    match metadata {
        Some(_) if !plain_path(path) => Err(not_relayed(endpoint)),
        Some(route) if *method == Method::GET => Ok(route),
        Some(_) if *method == Method::OPTIONS => Ok(Route::Metadata),
        Some(_) => Err(Refused {
            status: StatusCode::METHOD_NOT_ALLOWED,
            allow: Some("GET, OPTIONS"),
            text: format!("Countersign relays only GET of OAuth metadata, not {method}"),
        }),
        None => Err(not_relayed(endpoint)),
    }
}

fn not_relayed(endpoint: &str) -> Refused {
    Refused::new(
        StatusCode::NOT_FOUND,
        format!(
            "Countersign relays only the MCP endpoint, at exactly {endpoint}, and OAuth metadata \
             under /.well-known/; use the endpoint's path as configured"
        ),
    )
}

/// `path` is `prefix` or below it.
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// A path the upstream cannot read as another: unreserved characters only (nothing
/// percent-encoded, no `;` parameters), no empty, `.` or `..` segment.
pub(crate) fn plain_path(path: &str) -> bool {
    let unreserved = |c: char| c.is_ascii_alphanumeric() || "-._~/".contains(c);
    path.chars().all(unreserved)
        && path
            .split('/')
            .skip(1)
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

/// The body of a POST is read as UTF-8 JSON, uncompressed: a body the upstream would decompress
/// or decode from another character set could be read there as another message than the one
/// checked, so it is refused.
fn readable_body(headers: &HeaderMap) -> Result<(), Refused> {
    let unsupported = |text: &str| Refused::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, text);
    for encoding in headers.get_all(header::CONTENT_ENCODING) {
        let identity = encoding.to_str().is_ok_and(|v| {
            v.split(',')
                .all(|coding| coding.trim().eq_ignore_ascii_case("identity"))
        });
        if !identity {
            return Err(unsupported(
                "Countersign reads request bodies only uncompressed: send the message without \
                 Content-Encoding",
            ));
        }
    }
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(content_type), None) = (types.next(), types.next()) else {
        // None at all is the upstream's to refuse; the body is still checked.
        return if headers.contains_key(header::CONTENT_TYPE) {
            Err(unsupported(
                "send one Content-Type header: application/json",
            ))
        } else {
            Ok(())
        };
    };
    let Ok(content_type) = content_type.to_str() else {
        return Err(unsupported("the Content-Type header is not readable text"));
    };
    // Every charset parameter, in case the upstream reads another one than the first.
    let other_charset = content_type.split(';').skip(1).any(|parameter| {
        parameter.split_once('=').is_some_and(|(name, value)| {
            let value = value.trim().trim_matches('"');
            name.trim().eq_ignore_ascii_case("charset")
                && !value.eq_ignore_ascii_case("utf-8")
                && !value.eq_ignore_ascii_case("utf8")
        })
    });
    if other_charset {
        return Err(unsupported(
            "Countersign reads messages only in UTF-8: send Content-Type: application/json \
             without another charset",
        ));
    }
    Ok(())
}
