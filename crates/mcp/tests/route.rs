#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.
//! Which HTTP requests the proxy relays: the MCP endpoint's exact path (POSTs to the gate), OAuth
//! metadata by GET; every other spelling of the endpoint refused, and bodies the upstream could
//! read otherwise than the gate (compressed, another charset) too. Also the OAuth rewrites.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use countersign_mcp::oauth::{self, Origins};
use countersign_mcp::route::{Route, route};
use serde_json::{Value, json};

fn routed(method: Method, target: &str, headers: &[(&str, &str)]) -> Result<Route, StatusCode> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let uri: Uri = target.parse().unwrap();
    route(&method, &uri, &map, "/mcp").map_err(|refused| refused.status)
}

const JSON: (&str, &str) = ("content-type", "application/json");

#[test]
fn only_the_exact_endpoint_path_is_relayed() {
    assert_eq!(routed(Method::POST, "/mcp", &[JSON]), Ok(Route::Message));
    // A query string does not make another endpoint: the POST is still gated.
    assert_eq!(
        routed(Method::POST, "/mcp?x=1", &[JSON]),
        Ok(Route::Message)
    );
    assert_eq!(
        routed(Method::POST, "http://elsewhere/mcp", &[JSON]),
        Ok(Route::Message)
    );
    for method in [Method::GET, Method::DELETE, Method::OPTIONS] {
        assert_eq!(routed(method, "/mcp", &[]), Ok(Route::Endpoint));
    }
    for spelling in [
        "/mcp/",
        "/MCP",
        "/Mcp/",
        "/%6Dcp",
        "/%6dcp",
        "//mcp",
        "/./mcp",
        "/mcp;x",
        "/mcp%2F",
        "/a/../mcp",
        "/mcp//",
        "/mcp%00",
        "/",
        "/other",
        "*",
    ] {
        for method in [Method::POST, Method::GET, Method::DELETE] {
            assert_eq!(
                routed(method.clone(), spelling, &[JSON]),
                Err(StatusCode::NOT_FOUND),
                "{method} {spelling}"
            );
        }
    }
    for method in [Method::PUT, Method::PATCH, Method::HEAD, Method::TRACE] {
        assert_eq!(
            routed(method, "/mcp", &[JSON]),
            Err(StatusCode::METHOD_NOT_ALLOWED)
        );
    }
}

#[test]
fn a_body_the_upstream_could_read_otherwise_is_refused() {
    for headers in [
        vec![JSON, ("content-encoding", "gzip")],
        vec![JSON, ("content-encoding", "identity, deflate")],
        vec![("content-type", "application/json; charset=utf-7")],
        vec![("content-type", "application/json; charset=\"UTF-16\"")],
        vec![(
            "content-type",
            "application/json; charset=utf-8; charset=latin1",
        )],
        vec![JSON, ("content-type", "text/plain; charset=utf-7")],
    ] {
        assert_eq!(
            routed(Method::POST, "/mcp", &headers),
            Err(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            "{headers:?}"
        );
    }
    for headers in [
        vec![("content-type", "application/json; charset=utf-8")],
        vec![("content-type", "application/json;charset=\"UTF-8\"")],
        vec![JSON, ("content-encoding", "identity")],
        vec![],
    ] {
        assert_eq!(
            routed(Method::POST, "/mcp", &headers),
            Ok(Route::Message),
            "{headers:?}"
        );
    }
    assert!(!Route::Endpoint.takes_body() && !Route::Metadata.takes_body());
}

#[test]
fn oauth_metadata_is_relayed_by_get_only_on_plain_paths() {
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        assert_eq!(routed(Method::GET, path, &[]), Ok(Route::ResourceMetadata));
        assert_eq!(routed(Method::OPTIONS, path, &[]), Ok(Route::Metadata));
        assert_eq!(
            routed(Method::POST, path, &[JSON]),
            Err(StatusCode::METHOD_NOT_ALLOWED)
        );
    }
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration/tenant",
    ] {
        assert_eq!(routed(Method::GET, path, &[]), Ok(Route::Metadata));
    }
    for path in [
        "/.well-known/oauth-protected-resource/../../mcp",
        "/.well-known/oauth-protected-resource/%2e%2e/mcp",
        "/.well-known/oauth-protected-resource//mcp",
        "/.well-known/oauth-protected-resourcex",
        "/.well-known/other",
    ] {
        assert_eq!(
            routed(Method::GET, path, &[]),
            Err(StatusCode::NOT_FOUND),
            "{path}"
        );
    }
}

fn origins() -> Origins {
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8766"));
    Origins::of(
        &"http://10.0.0.5:3000/mcp".parse().unwrap(),
        &headers,
        "127.0.0.1:1",
        Default::default(),
    )
}

#[test]
fn protected_resource_metadata_names_the_proxy_and_keeps_the_rest() {
    let upstream = br#"{"resource":"http://10.0.0.5:3000/mcp","authorization_servers":["https://auth.example.com"],"scopes_supported":["tools"]}"#;
    let served: Value =
        serde_json::from_slice(&oauth::resource_metadata(upstream, &origins()).unwrap()).unwrap();
    assert_eq!(
        served,
        json!({"resource": "http://127.0.0.1:8766/mcp", "authorization_servers": ["https://auth.example.com"], "scopes_supported": ["tools"]})
    );
    // A resource elsewhere is left as it is, so the client refuses it as it would direct (the
    // suite's auth/resource-mismatch).
    let elsewhere = br#"{"resource":"https://evil.example.com/mcp","authorization_servers":[]}"#;
    let served: Value =
        serde_json::from_slice(&oauth::resource_metadata(elsewhere, &origins()).unwrap()).unwrap();
    assert_eq!(served["resource"], "https://evil.example.com/mcp");
    // Two resources in one document could mean either: refused.
    let error = oauth::resource_metadata(
        br#"{"resource":"http://127.0.0.1:8766/mcp","resource":"http://10.0.0.5:3000/mcp"}"#,
        &origins(),
    )
    .unwrap_err();
    assert!(error.contains("\"resource\" appears twice"), "{error}");
    assert!(oauth::resource_metadata(b"[1]", &origins()).is_err());
    // Without a usable Host, the listening address names the proxy.
    let bare = Origins::of(
        &"http://10.0.0.5:3000/mcp".parse().unwrap(),
        &HeaderMap::new(),
        "127.0.0.1:9000",
        Default::default(),
    );
    assert_eq!(bare.proxy, "http://127.0.0.1:9000");
}

#[test]
fn a_challenge_points_at_the_proxys_metadata() {
    let moved = |value: &str| oauth::www_authenticate(value, &origins());
    assert_eq!(
        moved(r#"Bearer resource_metadata="http://10.0.0.5:3000/.well-known/oauth-protected-resource/mcp", scope="tools""#)
            .as_deref(),
        Some(r#"Bearer resource_metadata="http://127.0.0.1:8766/.well-known/oauth-protected-resource/mcp", scope="tools""#)
    );
    assert_eq!(
        moved("Basic realm=\"x\", Bearer error=\"invalid_token\", Resource_Metadata = http://10.0.0.5:3000/.well-known/oauth-protected-resource")
            .as_deref(),
        Some("Basic realm=\"x\", Bearer error=\"invalid_token\", Resource_Metadata = \"http://127.0.0.1:8766/.well-known/oauth-protected-resource\"")
    );
    // A look-alike inside another parameter's quoted value is left alone.
    assert_eq!(
        moved(r#"Bearer error_description="resource_metadata=http://10.0.0.5:3000/x""#),
        None
    );
    // Metadata on another origin is not the upstream's to move.
    assert_eq!(
        moved(r#"Bearer resource_metadata="https://meta.example.com/prm""#),
        None
    );
    assert_eq!(moved("Bearer"), None);

    // A location outside /.well-known/ is remembered, so the proxy serves its copy there too.
    let origins = origins();
    assert!(!origins.advertised.knows("/custom/metadata.json"));
    oauth::www_authenticate(
        r#"Bearer resource_metadata="http://10.0.0.5:3000/custom/metadata.json""#,
        &origins,
    )
    .unwrap();
    assert!(origins.advertised.knows("/custom/metadata.json"));
    assert!(!origins.advertised.knows("/custom/other.json"));

    // A redirect's location on the upstream's origin keeps the client on the proxy's.
    assert_eq!(
        origins.moved("http://10.0.0.5:3000/mcp/?a=1").as_deref(),
        Some("http://127.0.0.1:8766/mcp/?a=1")
    );
    assert_eq!(origins.moved("https://elsewhere.example/mcp"), None);
    assert_eq!(origins.moved("/relative"), None);
}
