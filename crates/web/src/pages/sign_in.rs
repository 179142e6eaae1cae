//! Signing in and out: through the OpenID Connect provider (code flow with PKCE), or, where
//! `token_sign_in` allows it, with a human's API token. Agents never sign in.

use std::sync::Arc;
use std::time::Instant;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{AppendHeaders, Html, IntoResponse, Redirect, Response};
use countersign_approval::Authentication;
use countersign_broker::Principal;
use countersign_model::PrincipalKind;
use serde::Deserialize;

use crate::html::{Nav, escape, notice, page as layout};
use crate::id_token::Identity;
use crate::sessions::{
    FORM_COOKIE, Forgery, LOGIN_COOKIE, LOGIN_TTL, PendingLogin, SESSION_COOKIE, check_form,
    clear_cookie, cookie, random_token, same_secret, set_cookie,
};
use crate::settings::OidcSettings;
use crate::{App, PageError, Reviewer};

/// The channel name of a principal's OpenID Connect subject in `identities`.
const OIDC: &str = "oidc";

/// A path on this site to return to after signing in; anything else goes to the inbox.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/inbox".to_owned(),
    }
}

fn no_randomness(e: getrandom::Error) -> PageError {
    PageError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        format!("the system's random source failed, so nobody can sign in right now: {e}"),
    )
}

/// The refusal of a form that did not come from a page Countersign served.
pub fn forged(forgery: Forgery) -> PageError {
    let why = match forgery {
        Forgery::Token => "its security token is missing or is not the one of your session",
        Forgery::Origin => "your browser says it was sent from another site",
    };
    tracing::warn!(
        ?forgery,
        "refused a form that did not come from Countersign"
    );
    PageError::new(
        StatusCode::FORBIDDEN,
        "Refused",
        format!(
            "Countersign refused this form because {why}. Nothing was done. Reload the page and try again."
        ),
    )
}

#[derive(Debug, Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
    error: Option<String>,
    signed_out: Option<String>,
}

pub async fn page(
    State(app): State<Arc<App>>,
    Query(query): Query<SignInQuery>,
) -> Result<Response, PageError> {
    let next = safe_next(query.next.as_deref());
    let mut body =
        String::from("<h1>Sign in</h1><p>Sign in to review the requests waiting for you.</p>");
    if query.signed_out.is_some() {
        body.push_str(&notice(
            "ok",
            "Signed out.",
            "Sign in again whenever you need to.",
        ));
    }
    if let Some(error) = &query.error {
        body.push_str(&notice("error", "Not signed in:", error));
    }
    let next_query = reqwest::Url::parse_with_params("x:/", [("next", next.as_str())])
        .ok()
        .and_then(|u| u.query().map(str::to_owned))
        .unwrap_or_default();
    if let Some(oidc) = &app.oidc {
        body.push_str(&format!(
            "<p><a class=\"button primary\" id=\"oidc-sign-in\" href=\"/auth/login?{}\">Sign in with {}</a></p>",
            escape(&next_query),
            escape(&oidc.settings.issuer)
        ));
    }
    let mut headers = Vec::new();
    if app.settings.token_sign_in {
        let token = random_token().map_err(no_randomness)?;
        headers.push((
            SET_COOKIE,
            set_cookie(FORM_COOKIE, &token, "/sign-in", LOGIN_TTL, app.secure),
        ));
        body.push_str(&format!(
            "<form class=\"card\" method=\"post\" action=\"/sign-in/token\">\
             <h2>With an API token</h2>\
             <p class=\"hint\">This Countersign lets reviewers sign in with their own API token \
             (for trying it out). Agents cannot sign in.</p>\
             <label for=\"token\">Your API token</label>\
             <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required>\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <input type=\"hidden\" name=\"next\" value=\"{}\">\
             <button type=\"submit\" class=\"primary\">Sign in</button></form>",
            escape(&token),
            escape(&next)
        ));
    }
    Ok((
        AppendHeaders(headers),
        Html(layout("Sign in", None, Nav::None, &body)),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    token: String,
    csrf: Option<String>,
    next: Option<String>,
}

/// Signs a session in and goes on to `next`.
fn signed_in(
    app: &App,
    principal: &Principal,
    authentication: Authentication,
    next: &str,
    clear: &str,
    clear_path: &str,
) -> Result<Response, PageError> {
    let (id, _) = app
        .sessions
        .create(&principal.id, authentication, app.settings.session_ttl)
        .map_err(no_randomness)?;
    tracing::info!(principal = %principal.id, ?authentication, "signed in to the web inbox");
    Ok((
        AppendHeaders([
            (
                SET_COOKIE,
                set_cookie(
                    SESSION_COOKIE,
                    &id,
                    "/",
                    app.settings.session_ttl,
                    app.secure,
                ),
            ),
            (SET_COOKIE, clear_cookie(clear, clear_path, app.secure)),
        ]),
        Redirect::to(next),
    )
        .into_response())
}

fn back_to_sign_in(next: &str, error: &str) -> Response {
    let url = reqwest::Url::parse_with_params("x:/sign-in", [("next", next), ("error", error)])
        .ok()
        .and_then(|u| u.query().map(|q| format!("/sign-in?{q}")))
        .unwrap_or_else(|| "/sign-in".into());
    Redirect::to(&url).into_response()
}

pub async fn with_token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Result<Response, PageError> {
    if !app.settings.token_sign_in {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "Not found",
            "Signing in with an API token is turned off here (web.token_sign_in).",
        ));
    }
    let expected = cookie(&headers, FORM_COOKIE).unwrap_or_default();
    check_form(&headers, &app.origin, &expected, form.csrf.as_deref()).map_err(forged)?;
    let next = safe_next(form.next.as_deref());
    match app.broker.principal_by_token(form.token.trim()) {
        Some(p) if p.kind == PrincipalKind::Human => signed_in(
            &app,
            &p,
            Authentication::ApiToken,
            &next,
            FORM_COOKIE,
            "/sign-in",
        ),
        Some(p) => Ok(back_to_sign_in(
            &next,
            &format!(
                "{} is an agent; agents cannot sign in, only humans review requests.",
                p.id
            ),
        )),
        None => Ok(back_to_sign_in(
            &next,
            "that token is not known to Countersign. Check it, or ask an administrator for one.",
        )),
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

pub async fn start_oidc(
    State(app): State<Arc<App>>,
    Query(query): Query<LoginQuery>,
) -> Result<Response, PageError> {
    let Some(oidc) = &app.oidc else {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "Not found",
            "Sign-in through an identity provider is not configured here ([web.oidc]).",
        ));
    };
    let state = random_token().map_err(no_randomness)?;
    let login = PendingLogin {
        nonce: random_token().map_err(no_randomness)?,
        verifier: random_token().map_err(no_randomness)?,
        next: safe_next(query.next.as_deref()),
        expires: Instant::now() + LOGIN_TTL,
    };
    let url = oidc
        .authorization_url(&state, &login.nonce, &login.verifier)
        .await
        .map_err(|e| PageError::new(StatusCode::BAD_GATEWAY, "Cannot sign in", e.to_string()))?;
    app.sessions.begin_login(&state, login);
    Ok((
        AppendHeaders([(
            SET_COOKIE,
            set_cookie(LOGIN_COOKIE, &state, "/auth", LOGIN_TTL, app.secure),
        )]),
        Redirect::to(&url),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    /// RFC 9207: the provider names itself in the redirect, against mix-up attacks.
    iss: Option<String>,
}

/// The principal a verified sign-in is: by `sub` (`identities.oidc`), else by verified email for
/// humans without an `oidc` identity. Provider groups only gate who may sign in; what a reviewer
/// may approve comes from Countersign's configuration alone.
pub fn principal_for(
    principals: &[Arc<Principal>],
    identity: &Identity,
    settings: &OidcSettings,
) -> Result<Arc<Principal>, String> {
    if !settings.allowed_groups.is_empty()
        && !identity
            .groups
            .iter()
            .any(|g| settings.allowed_groups.contains(g))
    {
        return Err(format!(
            "your account at the provider is not in any of the groups allowed to sign in ({}).",
            settings.allowed_groups.join(", ")
        ));
    }
    let by_subject = principals
        .iter()
        .find(|p| p.identity(OIDC) == Some(identity.subject.as_str()));
    let by_email = || {
        let email = identity.verified_email.as_deref()?;
        principals.iter().find(|p| {
            p.identity(OIDC).is_none()
                && p.email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
    };
    match by_subject.or_else(by_email) {
        Some(p) if p.kind == PrincipalKind::Human => Ok(Arc::clone(p)),
        Some(p) => Err(format!(
            "{} is an agent; agents cannot sign in, only humans review requests.",
            p.id
        )),
        None => Err(format!(
            "no reviewer in Countersign's configuration matches your account (subject '{}'{}). \
             An administrator can add identities = {{ oidc = \"…\" }} or email to your principal.",
            identity.subject,
            identity
                .verified_email
                .as_deref()
                .map(|e| format!(", verified email '{e}'"))
                .unwrap_or_else(|| ", no verified email".into())
        )),
    }
}

pub async fn callback(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, PageError> {
    let Some(oidc) = &app.oidc else {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "Not found",
            "Sign-in through an identity provider is not configured here.",
        ));
    };
    let mismatch = || {
        PageError::new(
            StatusCode::BAD_REQUEST,
            "Cannot sign in",
            "This sign-in was not started in this browser, took too long, or was already used. Start again from the sign-in page.",
        )
    };
    let state = query.state.as_deref().unwrap_or_default();
    let started = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if !same_secret(&started, state) {
        return Err(mismatch());
    }
    let login = app.sessions.finish_login(state).ok_or_else(mismatch)?;
    if let Some(iss) = &query.iss
        && iss.trim_end_matches('/') != oidc.settings.issuer
    {
        return Ok(back_to_sign_in(
            &login.next,
            &format!("the answer came from '{iss}', not from the configured provider"),
        ));
    }
    if let Some(error) = &query.error {
        let description = query.error_description.as_deref().unwrap_or_default();
        return Ok(back_to_sign_in(
            &login.next,
            &format!("the provider did not sign you in ({error}) {description}"),
        ));
    }
    let code = query.code.as_deref().ok_or_else(mismatch)?;
    let now = countersign_broker::now().unix_millis() / 1000;
    let identity = match oidc
        .identify(code, &login.verifier, &login.nonce, now)
        .await
    {
        Ok(identity) => identity,
        Err(error) => {
            tracing::warn!(%error, "an OpenID Connect sign-in was refused");
            return Ok(back_to_sign_in(&login.next, &error.to_string()));
        }
    };
    match principal_for(app.broker.principals(), &identity, &oidc.settings) {
        Ok(principal) => {
            let strength = if identity.mfa {
                Authentication::OidcMfa
            } else {
                Authentication::Oidc
            };
            signed_in(
                &app,
                &principal,
                strength,
                &login.next,
                LOGIN_COOKIE,
                "/auth",
            )
        }
        Err(reason) => Ok(back_to_sign_in(&login.next, &reason)),
    }
}

#[derive(Debug, Deserialize)]
pub struct SignOutForm {
    csrf: Option<String>,
}

pub async fn sign_out(
    State(app): State<Arc<App>>,
    reviewer: Reviewer,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Result<Response, PageError> {
    reviewer.check_form(&app, &headers, form.csrf.as_deref())?;
    app.sessions.remove(&reviewer.session_id);
    Ok((
        AppendHeaders([(SET_COOKIE, clear_cookie(SESSION_COOKIE, "/", app.secure))]),
        Redirect::to("/sign-in?signed_out=1"),
    )
        .into_response())
}
