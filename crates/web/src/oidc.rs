//! Sign-in through an OpenID Connect provider: discovery, the authorization request (code flow
//! with PKCE S256, `state` and `nonce`), the code exchange, and the provider's keys (JWKS),
//! fetched again when a token names a key we do not have (the provider rotated its keys).

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tokio::sync::Mutex;

use crate::id_token::{self, Expected, IdTokenError, Identity};
use crate::settings::OidcSettings;

/// How long discovery and keys are reused before being fetched again.
const CACHE_FOR: Duration = Duration::from_secs(3600);
/// Fetch the keys again at most this often when a token names an unknown key.
const REFRESH_KEYS_AFTER: Duration = Duration::from_secs(10);

/// The parts of the provider's `/.well-known/openid-configuration` we use.
#[derive(Debug, Clone, Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error(
        "cannot reach the sign-in provider ({0}); try again, or ask an administrator to check web.oidc.issuer"
    )]
    Unreachable(String),
    #[error("the sign-in provider's answer is not usable: {0}")]
    Provider(String),
    #[error("the sign-in provider refused the sign-in: {0}")]
    Refused(String),
    #[error("{0}")]
    Token(#[from] IdTokenError),
}

/// The provider, as configured, with what it published about itself.
#[derive(Debug)]
pub struct Provider {
    pub settings: OidcSettings,
    client_secret: Option<String>,
    redirect_uri: String,
    http: reqwest::Client,
    metadata: Mutex<Option<(Metadata, Instant)>>,
    keys: Mutex<Option<(JwkSet, Instant)>>,
}

/// A PKCE verifier and its S256 challenge (RFC 7636).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl Provider {
    pub fn new(
        settings: OidcSettings,
        client_secret: Option<String>,
        redirect_uri: String,
    ) -> Result<Provider, OidcError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| OidcError::Provider(e.to_string()))?;
        Ok(Provider {
            settings,
            client_secret,
            redirect_uri,
            http,
            metadata: Mutex::new(None),
            keys: Mutex::new(None),
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, OidcError> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| OidcError::Unreachable(format!("{url}: {e}")))?;
        if !response.status().is_success() {
            return Err(OidcError::Provider(format!(
                "{url} answered {}",
                response.status()
            )));
        }
        response
            .json()
            .await
            .map_err(|e| OidcError::Provider(format!("{url}: {e}")))
    }

    async fn metadata(&self) -> Result<Metadata, OidcError> {
        let mut cached = self.metadata.lock().await;
        if let Some((metadata, at)) = cached.as_ref()
            && at.elapsed() < CACHE_FOR
        {
            return Ok(metadata.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.settings.issuer);
        let metadata: Metadata = self.get_json(&url).await?;
        // OpenID Connect Discovery 4.3: the document must name the issuer we asked.
        if metadata.issuer.trim_end_matches('/') != self.settings.issuer {
            return Err(OidcError::Provider(format!(
                "its discovery document names the issuer '{}', not '{}' (check web.oidc.issuer)",
                metadata.issuer, self.settings.issuer
            )));
        }
        if let Some(methods) = &metadata.code_challenge_methods_supported
            && !methods.iter().any(|m| m == "S256")
        {
            return Err(OidcError::Provider(
                "it does not support PKCE with S256, which Countersign requires".into(),
            ));
        }
        *cached = Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    async fn keys(&self, jwks_uri: &str, refresh: bool) -> Result<JwkSet, OidcError> {
        let mut cached = self.keys.lock().await;
        if let Some((keys, at)) = cached.as_ref() {
            let fresh = at.elapsed() < CACHE_FOR;
            if (fresh && !refresh) || at.elapsed() < REFRESH_KEYS_AFTER {
                return Ok(keys.clone());
            }
        }
        let keys: JwkSet = self.get_json(jwks_uri).await?;
        *cached = Some((keys.clone(), Instant::now()));
        Ok(keys)
    }

    /// Where to send the browser to sign in.
    pub async fn authorization_url(
        &self,
        state: &str,
        nonce: &str,
        verifier: &str,
    ) -> Result<String, OidcError> {
        let metadata = self.metadata().await?;
        let mut url = reqwest::Url::parse(&metadata.authorization_endpoint).map_err(|e| {
            OidcError::Provider(format!(
                "authorization_endpoint '{}': {e}",
                metadata.authorization_endpoint
            ))
        })?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.settings.scopes.join(" "))
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", &pkce_challenge(verifier))
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    /// Exchanges the authorization code for tokens and checks the ID token.
    pub async fn identify(
        &self,
        code: &str,
        verifier: &str,
        nonce: &str,
        now: i64,
    ) -> Result<Identity, OidcError> {
        let metadata = self.metadata().await?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", verifier),
        ];
        let mut request = self.http.post(&metadata.token_endpoint);
        match &self.client_secret {
            Some(secret) => {
                request = request.basic_auth(
                    form_encode(&self.settings.client_id),
                    Some(form_encode(secret)),
                );
            }
            None => form.push(("client_id", self.settings.client_id.as_str())),
        }
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|e| OidcError::Unreachable(format!("{}: {e}", metadata.token_endpoint)))?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| OidcError::Provider(format!("{}: {e}", metadata.token_endpoint)))?;
        if !status.is_success() {
            let error = body["error"].as_str().unwrap_or("error");
            let description = body["error_description"].as_str().unwrap_or_default();
            return Err(OidcError::Refused(
                format!("{error} {description}").trim().to_owned(),
            ));
        }
        let token = body["id_token"]
            .as_str()
            .ok_or_else(|| OidcError::Provider("the token response has no id_token".into()))?;
        let expected = Expected {
            issuer: &self.settings.issuer,
            client_id: &self.settings.client_id,
            nonce,
            now,
            groups_claim: self.settings.groups_claim.as_deref(),
        };
        let keys = self.keys(&metadata.jwks_uri, false).await?;
        match id_token::verify(token, &keys, &expected) {
            Err(IdTokenError::UnknownKey(_)) => {
                let keys = self.keys(&metadata.jwks_uri, true).await?;
                Ok(id_token::verify(token, &keys, &expected)?)
            }
            other => Ok(other?),
        }
    }
}

/// RFC 6749 2.3.1: client credentials in HTTP Basic are form-encoded first.
fn form_encode(text: &str) -> String {
    reqwest::Url::parse_with_params("x:", [("v", text)])
        .ok()
        .and_then(|u| u.query().map(|q| q.trim_start_matches("v=").to_owned()))
        .unwrap_or_else(|| text.to_owned())
}
