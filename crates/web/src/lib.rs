//! The web inbox: reviewers see and decide requests in the browser, signed in through OpenID
//! Connect (or, for the demo, with their API token). Pages are rendered by the broker itself,
//! every asset embedded; reviews go through the broker's one review path, like every channel.
//!
//! Like the broker, this crate reads no file and no environment: the binary hands it the
//! `[web]` table and a way to read the environment variable that holds the client secret.

mod charts;
mod html;
pub mod id_token;
mod oidc;
mod pages;
pub mod sessions;
pub mod settings;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use countersign_broker::{ApiError, Broker, Principal};
use countersign_model::PrincipalKind;

pub use oidc::{OidcError, pkce_challenge};
pub use pages::principal_for;
pub use settings::{Settings, SettingsError};

use crate::html::{Nav, Viewer};
use crate::sessions::{SESSION_COOKIE, Session, Sessions};

/// Form bodies are small; anything bigger is not a review.
const MAX_FORM: usize = 16 * 1024;

/// The web inbox, ready to be merged into the broker's router.
#[derive(Debug, Clone)]
pub struct Web {
    app: Arc<App>,
}

/// What every page shares.
#[derive(Debug)]
pub(crate) struct App {
    pub broker: Broker,
    pub settings: Settings,
    pub sessions: Sessions,
    pub oidc: Option<oidc::Provider>,
    /// Cookies carry `Secure` when reviewers reach Countersign over https.
    pub secure: bool,
    /// `https://countersign.example.com`: what a same-site form's `Origin` says.
    pub origin: String,
}

/// Why the web inbox cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("{0}")]
    Settings(#[from] SettingsError),
    #[error(
        "web.oidc.client_secret_env names the environment variable {0}, which is not set: export {0}=… with the client secret your provider gave Countersign"
    )]
    MissingSecret(String),
    #[error("web.oidc: {0}")]
    Oidc(#[from] OidcError),
}

impl Web {
    /// Checks the `[web]` table and builds the inbox. `env` reads one environment variable (the
    /// binary passes `std::env::var`); it is asked only for `web.oidc.client_secret_env`.
    pub fn new(
        broker: Broker,
        table: &toml::Table,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Web, WebError> {
        let settings = Settings::parse(table)?;
        let public_url = broker.public_url().to_owned();
        let oidc = match &settings.oidc {
            Some(o) => {
                let secret = match &o.client_secret_env {
                    Some(name) => {
                        Some(env(name).ok_or_else(|| WebError::MissingSecret(name.clone()))?)
                    }
                    None => None,
                };
                Some(oidc::Provider::new(
                    o.clone(),
                    secret,
                    format!("{public_url}/auth/callback"),
                )?)
            }
            None => None,
        };
        Ok(Web {
            app: Arc::new(App {
                secure: public_url.starts_with("https://"),
                origin: sessions::origin_of(&public_url),
                broker,
                settings,
                sessions: Sessions::default(),
                oidc,
            }),
        })
    }

    /// The inbox's routes; no fallback, so it merges with the broker's router.
    pub fn router(&self) -> Router {
        pages::routes()
            .route("/assets/style.css", get(style))
            .route("/assets/live.js", get(script))
            .layer(DefaultBodyLimit::max(MAX_FORM))
            .layer(axum::middleware::map_response(security_headers))
            .with_state(Arc::clone(&self.app))
    }
}

async fn style() -> impl IntoResponse {
    asset(
        "text/css; charset=utf-8",
        include_str!("../assets/style.css"),
    )
}

async fn script() -> impl IntoResponse {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../assets/live.js"),
    )
}

fn asset(kind: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, kind), (CACHE_CONTROL, "public, max-age=300")],
        body,
    )
}

/// Headers on every page: scripts and styles from this site only, no framing, no caching of
/// pages that show requests.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: &'static str, value: &'static str| {
        headers
            .entry(HeaderName::from_static(name))
            .or_insert(HeaderValue::from_static(value));
    };
    set(
        headers,
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    );
    set(headers, "x-frame-options", "DENY");
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "same-origin");
    set(headers, "cache-control", "no-store");
    response
}

/// A signed-in human: the extractor every page but sign-in uses. Without a session, pages
/// redirect to the sign-in page (and come back afterwards); other calls get 401.
#[derive(Debug, Clone)]
pub(crate) struct Reviewer {
    pub principal: Arc<Principal>,
    pub session: Session,
    pub session_id: String,
}

impl Reviewer {
    /// Refuses a form that does not carry this session's token, or that the browser says came
    /// from another site.
    pub fn check_form(
        &self,
        app: &App,
        headers: &axum::http::HeaderMap,
        sent: Option<&str>,
    ) -> Result<(), PageError> {
        sessions::check_form(headers, &app.origin, &self.session.csrf, sent).map_err(pages::forged)
    }

    pub fn viewer(&self) -> Viewer<'_> {
        Viewer {
            id: &self.principal.id,
            csrf: &self.session.csrf,
        }
    }
}

impl FromRequestParts<Arc<App>> for Reviewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Response> {
        let found = sessions::cookie(&parts.headers, SESSION_COOKIE).and_then(|id| {
            let session = app.sessions.get(&id)?;
            let principal = app.broker.principal(&session.principal)?;
            // Agents never get a session; this guards against a directory changed under us.
            (principal.kind == PrincipalKind::Human).then_some(Reviewer {
                principal,
                session,
                session_id: id,
            })
        });
        match found {
            Some(reviewer) => Ok(reviewer),
            None if parts.method == Method::GET && !parts.uri.path().ends_with("/events") => {
                let here = parts
                    .uri
                    .path_and_query()
                    .map_or("/inbox", |p| p.as_str())
                    .to_owned();
                let next = reqwest::Url::parse_with_params("x:/sign-in", [("next", here)])
                    .map(|u| format!("/sign-in?{}", u.query().unwrap_or_default()))
                    .unwrap_or_else(|_| "/sign-in".into());
                Err(Redirect::to(&next).into_response())
            }
            None => Err(PageError::new(
                StatusCode::UNAUTHORIZED,
                "Signed out",
                "You are not signed in, or your sign-in expired. Sign in again and retry.",
            )
            .into_response()),
        }
    }
}

/// A page that could not be shown, with what to do about it.
#[derive(Debug)]
pub(crate) struct PageError {
    status: StatusCode,
    title: &'static str,
    message: String,
}

impl PageError {
    pub fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> PageError {
        PageError {
            status,
            title,
            message: message.into(),
        }
    }
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> PageError {
        let title = match error.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::SERVICE_UNAVAILABLE => "Unavailable",
            _ => "Refused",
        };
        PageError::new(error.status, title, error.message)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let body = format!(
            "<h1>{}</h1>{}<p><a href=\"/inbox\">Back to the inbox</a></p>",
            html::escape(self.title),
            html::notice("error", "", &self.message)
        );
        (
            self.status,
            axum::response::Html(html::page(self.title, None, Nav::None, &body)),
        )
            .into_response()
    }
}
