//! The `[web]` table of the configuration, checked: how reviewers sign in and how long they stay
//! signed in. Every error names the key and the fix.

use std::time::Duration;

use serde::Deserialize;

/// How long a sign-in lasts unless `session_ttl` says otherwise.
const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebTable {
    #[serde(default)]
    token_sign_in: bool,
    #[serde(default)]
    session_ttl: Option<String>,
    #[serde(default)]
    oidc: Option<OidcTable>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OidcTable {
    issuer: String,
    client_id: String,
    #[serde(default)]
    client_secret_env: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    groups_claim: Option<String>,
    #[serde(default)]
    allowed_groups: Vec<String>,
}

/// The web inbox's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Reviewers may sign in by pasting their API token (for the demo and for trying it out).
    pub token_sign_in: bool,
    pub session_ttl: Duration,
    pub oidc: Option<OidcSettings>,
}

/// Sign-in through an OpenID Connect provider.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The provider's issuer URL, exactly as its ID tokens' `iss` claim says it.
    pub issuer: String,
    pub client_id: String,
    /// The environment variable holding the client secret (the binary reads it); without one,
    /// Countersign is a public client and relies on PKCE alone.
    pub client_secret_env: Option<String>,
    /// Scopes asked for; always includes `openid`.
    pub scopes: Vec<String>,
    /// The ID token claim listing the person's groups at the provider.
    pub groups_claim: Option<String>,
    /// If not empty, only people in one of these provider groups may sign in.
    pub allowed_groups: Vec<String>,
}

/// What is wrong with the `[web]` table, one line per problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct SettingsError(pub Vec<String>);

/// Whether `url` points at this machine, where plain http cannot be intercepted on the way.
pub(crate) fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

impl Settings {
    /// Checks the `[web]` table as written in the configuration.
    pub fn parse(table: &toml::Table) -> Result<Settings, SettingsError> {
        let web: WebTable =
            toml::Value::Table(table.clone())
                .try_into()
                .map_err(|e: toml::de::Error| {
                    SettingsError(vec![format!("[web]: {}", e.message().trim_end())])
                })?;
        let mut errors = Vec::new();
        let session_ttl = match &web.session_ttl {
            None => DEFAULT_SESSION_TTL,
            Some(text) => match countersign_model::parse_duration(text) {
                Ok(d) if d >= Duration::from_secs(60) && d <= Duration::from_secs(30 * 86_400) => d,
                Ok(_) => {
                    errors.push(format!(
                        "web.session_ttl: '{text}' must be between 1m and 30d (write e.g. session_ttl = \"8h\")"
                    ));
                    DEFAULT_SESSION_TTL
                }
                Err(e) => {
                    errors.push(format!(
                        "web.session_ttl: {e} (write e.g. session_ttl = \"8h\")"
                    ));
                    DEFAULT_SESSION_TTL
                }
            },
        };
        let oidc = web.oidc.map(|o| check_oidc(o, &mut errors));
        if oidc.is_none() && !web.token_sign_in {
            errors.push(
                "[web]: the web inbox needs a way to sign in: add a [web.oidc] table (issuer, client_id) \
                 or set token_sign_in = true"
                    .into(),
            );
        }
        if errors.is_empty() {
            Ok(Settings {
                token_sign_in: web.token_sign_in,
                session_ttl,
                oidc,
            })
        } else {
            Err(SettingsError(errors))
        }
    }
}

fn check_oidc(o: OidcTable, errors: &mut Vec<String>) -> OidcSettings {
    let issuer = o.issuer.trim_end_matches('/').to_owned();
    if !(issuer.starts_with("https://") || is_loopback_http(&issuer)) {
        errors.push(format!(
            "web.oidc.issuer: '{}' must be an https:// URL (plain http only for a provider on this machine, e.g. http://127.0.0.1:9000)",
            o.issuer
        ));
    }
    if o.client_id.trim().is_empty() {
        errors.push(
            "web.oidc.client_id is empty: write the client id your provider gave Countersign"
                .into(),
        );
    }
    if let Some(name) = &o.client_secret_env
        && (name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        errors.push(format!(
            "web.oidc.client_secret_env: '{name}' is not an environment variable name; name the \
             variable that holds the secret (e.g. client_secret_env = \"COUNTERSIGN_OIDC_SECRET\"), never the secret itself"
        ));
    }
    if !o.allowed_groups.is_empty() && o.groups_claim.is_none() {
        errors.push(
            "web.oidc.allowed_groups needs web.oidc.groups_claim: name the ID token claim that lists \
             a person's groups (often \"groups\")"
                .into(),
        );
    }
    let mut scopes = vec!["openid".to_owned()];
    for scope in o
        .scopes
        .unwrap_or_else(|| vec!["email".into(), "profile".into()])
    {
        if scope.is_empty() || scope.chars().any(|c| c.is_whitespace() || c.is_control()) {
            errors.push(format!(
                "web.oidc.scopes: '{scope}' is not a scope (one word per entry)"
            ));
        } else if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    OidcSettings {
        issuer,
        client_id: o.client_id,
        client_secret_env: o.client_secret_env,
        scopes,
        groups_claim: o.groups_claim,
        allowed_groups: o.allowed_groups,
    }
}
