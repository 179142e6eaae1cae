//! Who is signed in: sessions kept in memory (a restart signs everyone out), the sign-ins under
//! way, their cookies, and the checks every state-changing form passes (a synchronizer token
//! compared in constant time, and the `Origin` when the browser sends one).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::http::header::{COOKIE, HOST, ORIGIN};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use countersign_approval::Authentication;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The session cookie.
pub const SESSION_COOKIE: &str = "countersign_session";
/// The cookie that ties an OpenID Connect sign-in to the browser that started it (its `state`).
pub const LOGIN_COOKIE: &str = "countersign_login";
/// The token of the sign-in form, before there is a session to tie it to.
pub const FORM_COOKIE: &str = "countersign_form";

/// How long a sign-in through the provider may take.
pub const LOGIN_TTL: Duration = Duration::from_secs(600);
/// At most this many sessions and sign-ins under way; the oldest go first beyond it.
const MAX_ENTRIES: usize = 10_000;

/// One signed-in reviewer.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: String,
    pub authentication: Authentication,
    /// The synchronizer token every form of this session carries.
    pub csrf: String,
    pub expires: Instant,
}

/// An OpenID Connect sign-in between the redirect to the provider and its callback.
#[derive(Debug, Clone)]
pub struct PendingLogin {
    pub nonce: String,
    pub verifier: String,
    /// Where to go once signed in (a path on this site).
    pub next: String,
    pub expires: Instant,
}

#[derive(Debug, Default)]
struct Entries {
    sessions: HashMap<[u8; 32], Session>,
    logins: HashMap<[u8; 32], PendingLogin>,
}

/// The server-side store of sessions and sign-ins. Keys are SHA-256 hashes of the cookie values,
/// so the table never holds a usable cookie.
#[derive(Debug, Default)]
pub struct Sessions {
    entries: Mutex<Entries>,
}

fn key(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// 32 random bytes from the operating system, base64url: a session id, state, nonce or token.
pub fn random_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn prune<T>(map: &mut HashMap<[u8; 32], T>, expires: impl Fn(&T) -> Instant) {
    let now = Instant::now();
    map.retain(|_, v| expires(v) > now);
    while map.len() >= MAX_ENTRIES {
        let Some(oldest) = map.iter().min_by_key(|(_, v)| expires(v)).map(|(k, _)| *k) else {
            break;
        };
        map.remove(&oldest);
    }
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a session; returns the cookie value.
    pub fn create(
        &self,
        principal: &str,
        authentication: Authentication,
        ttl: Duration,
    ) -> Result<(String, Session), getrandom::Error> {
        let id = random_token()?;
        let session = Session {
            principal: principal.to_owned(),
            authentication,
            csrf: random_token()?,
            expires: Instant::now() + ttl,
        };
        let mut entries = self.lock();
        prune(&mut entries.sessions, |s| s.expires);
        entries.sessions.insert(key(&id), session.clone());
        Ok((id, session))
    }

    /// The live session this cookie value names, if any.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut entries = self.lock();
        let k = key(id);
        match entries.sessions.get(&k) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                entries.sessions.remove(&k);
                None
            }
            None => None,
        }
    }

    pub fn remove(&self, id: &str) {
        self.lock().sessions.remove(&key(id));
    }

    /// Remembers a sign-in under way, under its `state`.
    pub fn begin_login(&self, state: &str, login: PendingLogin) {
        let mut entries = self.lock();
        prune(&mut entries.logins, |l| l.expires);
        entries.logins.insert(key(state), login);
    }

    /// Takes the sign-in under way with this `state` (each can be finished once).
    pub fn finish_login(&self, state: &str) -> Option<PendingLogin> {
        self.lock()
            .logins
            .remove(&key(state))
            .filter(|l| l.expires > Instant::now())
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` value: never readable by scripts, sent on top-level navigations from other
/// sites only for GET (SameSite=Lax, so links from Slack or email keep the sign-in), over https
/// only when Countersign is served over https.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Lax{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// A `Set-Cookie` value that removes the cookie.
pub fn clear_cookie(name: &str, path: &str, secure: bool) -> String {
    set_cookie(name, "", path, Duration::ZERO, secure)
}

/// Two secrets compared in constant time.
pub fn same_secret(a: &str, b: &str) -> bool {
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Why a state-changing request was refused before anything was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// The form's token is missing or is not this session's.
    Token,
    /// The browser says the form came from another site.
    Origin,
}

/// The checks every POST passes: the browser must not say the request came from another site,
/// and the form must carry the token of the session (or sign-in form) it was served with.
pub fn check_form(
    headers: &HeaderMap,
    public_origin: &str,
    expected_token: &str,
    sent_token: Option<&str>,
) -> Result<(), Forgery> {
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().unwrap_or("null");
        let scheme = public_origin.split("://").next().unwrap_or("http");
        let host_origin = headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .map(|host| format!("{scheme}://{host}"));
        if origin != public_origin && Some(origin) != host_origin.as_deref() {
            return Err(Forgery::Origin);
        }
    }
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return Err(Forgery::Origin);
    }
    match sent_token {
        Some(sent) if same_secret(expected_token, sent) => Ok(()),
        _ => Err(Forgery::Token),
    }
}

/// `https://countersign.example.com` from a public URL with a path.
pub fn origin_of(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            format!("{scheme}://{host}")
        }
        None => url.to_owned(),
    }
}
