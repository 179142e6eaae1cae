//! OAuth through the HTTP proxy: the upstream's protected-resource metadata (RFC 9728) and the
//! `resource_metadata` of its `WWW-Authenticate` challenges name the upstream's URL, which a
//! client checks against the URL it connected to (the proxy's) and refuses. Both are rewritten to
//! name the proxy, keeping everything else the upstream said (its authorization servers, scopes).
//! The token a client then obtains is for the proxy's URL; docs/mcp.md says what that means.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, header};
use reqwest::Url;
use serde_json::Value;

/// How many metadata locations outside `/.well-known/` the proxy remembers.
const MAX_ADVERTISED: usize = 16;

/// The paths, outside `/.well-known/oauth-protected-resource`, at which the upstream's challenges
/// said its metadata is (`resource_metadata=…/custom/location.json`): the proxy serves its copy
/// at those paths too. Only the upstream's own answers add to it, so a client cannot make the
/// proxy relay a path of its choosing.
#[derive(Debug, Default)]
pub struct Advertised(Mutex<Vec<String>>);

impl Advertised {
    fn remember(&self, path: &str) {
        if let Ok(mut paths) = self.0.lock()
            && paths.len() < MAX_ADVERTISED
            && !paths.iter().any(|known| known == path)
        {
            paths.push(path.to_owned());
        }
    }

    /// Whether an upstream challenge named `path` as where its metadata is.
    pub fn knows(&self, path: &str) -> bool {
        self.0
            .lock()
            .is_ok_and(|paths| paths.iter().any(|known| known == path))
    }
}

/// The two origins a rewrite maps between: the upstream's, as the proxy reaches it, and the
/// proxy's, as the client reached it.
#[derive(Debug, Clone)]
pub struct Origins {
    /// `scheme://host[:port]` of the upstream.
    pub upstream: String,
    /// `http://host[:port]` of the proxy, from the client's `Host` header.
    pub proxy: String,
    /// Where the upstream's challenges said its metadata is.
    pub advertised: Arc<Advertised>,
}

impl Origins {
    /// The origins for a client's request: the proxy's is the `Host` the client asked for (what
    /// the client compares the metadata with), else the address it listens on.
    pub fn of(
        upstream: &Url,
        headers: &HeaderMap,
        listening: &str,
        advertised: Arc<Advertised>,
    ) -> Origins {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .filter(|host| {
                host.parse::<axum::http::uri::Authority>()
                    .is_ok_and(|a| !a.as_str().contains('@'))
            })
            .unwrap_or(listening);
        Origins {
            upstream: upstream.origin().ascii_serialization(),
            proxy: format!("http://{host}"),
            advertised,
        }
    }

    /// `url` moved to the proxy's origin, when it is on the upstream's: a challenge's metadata,
    /// a redirect's `Location`, which would otherwise send the client around the proxy.
    pub fn moved(&self, url: &str) -> Option<String> {
        let parsed = Url::parse(url).ok()?;
        if parsed.origin().ascii_serialization() != self.upstream {
            return None;
        }
        let query = parsed.query().map(|q| format!("?{q}")).unwrap_or_default();
        Some(format!("{}{}{query}", self.proxy, parsed.path()))
    }
}

/// The upstream's protected-resource metadata with `resource` naming the proxy, when it named
/// the upstream's origin (the same path, on the proxy's origin). A `resource` elsewhere is left
/// as it is: it does not match the upstream either, and the client must refuse it through the
/// proxy as it would direct, not be handed a match the proxy made up. Read strictly (a repeated
/// key could name two resources); an error says what is wrong.
pub fn resource_metadata(body: &[u8], origins: &Origins) -> Result<Vec<u8>, String> {
    let value = countersign_model::strict_json::from_slice(body).map_err(|e| e.to_string())?;
    let Value::Object(mut metadata) = value else {
        return Err("it is not a JSON object".into());
    };
    let moved = metadata
        .get("resource")
        .and_then(Value::as_str)
        .and_then(|resource| origins.moved(resource));
    if let Some(resource) = moved {
        metadata.insert("resource".into(), Value::String(resource));
    }
    serde_json::to_vec(&metadata).map_err(|e| e.to_string())
}

/// A `WWW-Authenticate` value with its `resource_metadata` URL moved to the proxy's origin;
/// `None` when there is nothing to change.
pub fn www_authenticate(value: &str, origins: &Origins) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(value.len() + 16);
    let (mut copied, mut i, mut changed) = (0, 0, false);
    while i < bytes.len() {
        if bytes[i] == b'"' {
            i = quoted_end(bytes, i);
            continue;
        }
        if !is_token(bytes[i]) || (i > 0 && is_token(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let name_end = (i..bytes.len())
            .find(|&j| !is_token(bytes[j]))
            .unwrap_or(bytes.len());
        let mut j = skip_spaces(bytes, name_end);
        if bytes.get(j) != Some(&b'=')
            || !value[i..name_end].eq_ignore_ascii_case("resource_metadata")
        {
            i = name_end;
            continue;
        }
        j = skip_spaces(bytes, j + 1);
        let (url, end) = if bytes.get(j) == Some(&b'"') {
            let end = quoted_end(bytes, j);
            let closed = end > j + 1 && bytes[end - 1] == b'"';
            (
                unquote(&value[j + 1..if closed { end - 1 } else { end }]),
                end,
            )
        } else {
            let end = (j..bytes.len())
                .find(|&k| bytes[k] == b',' || bytes[k].is_ascii_whitespace())
                .unwrap_or(bytes.len());
            (value[j..end].to_owned(), end)
        };
        if let Some(moved) = origins.moved(&url) {
            if let Ok(parsed) = Url::parse(&url)
                && crate::route::plain_path(parsed.path())
            {
                origins.advertised.remember(parsed.path());
            }
            out.push_str(&value[copied..j]);
            out.push('"');
            out.push_str(&moved.replace('\\', "\\\\").replace('"', "\\\""));
            out.push('"');
            copied = end;
            changed = true;
        }
        i = end;
    }
    changed.then(|| {
        out.push_str(&value[copied..]);
        out
    })
}

/// An HTTP token character (RFC 9110).
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn skip_spaces(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(|b| *b == b' ' || *b == b'\t') {
        i += 1;
    }
    i
}

/// Where the quoted string opening at `start` ends (just past its closing quote).
fn quoted_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

fn unquote(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}
