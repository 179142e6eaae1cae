//! The broker's configuration file (TOML), parsed and checked. Reading the file is the binary's
//! job; this module turns its text into settings, or into errors that name the key and the fix.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use countersign_model::PrincipalKind;
use countersign_model::action::is_valid_principal_id;
use countersign_model::digest::hex_decode;
use countersign_policy::glob::Glob;
use serde::Deserialize;

use crate::trust;

/// Where the broker listens when the configuration does not say.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8750";

/// The broker's own top-level keys; every other top-level table belongs to a channel.
const KEYS: [&str; 7] = [
    "listen",
    "public_url",
    "data_dir",
    "policy",
    "signing_key",
    "principals",
    "listener",
];

/// The broker's part of the file. Top-level keys it does not name are checked apart (see
/// [`KEYS`]): tables go to the channels, anything else is refused.
#[derive(Debug, Clone, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    listen: Option<String>,
    /// The URL reviewers use to reach this broker, for links in messages.
    #[serde(default)]
    public_url: Option<String>,
    data_dir: String,
    policy: String,
    #[serde(default)]
    signing_key: Option<String>,
    #[serde(default)]
    principals: Vec<PrincipalEntry>,
    #[serde(default)]
    listener: Option<ListenerEntry>,
}

/// `[listener]`: how long a connection may take and how many one peer may hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerEntry {
    #[serde(default)]
    header_timeout: Option<String>,
    #[serde(default)]
    body_timeout: Option<String>,
    #[serde(default)]
    max_connections: Option<usize>,
    #[serde(default)]
    max_connections_per_peer: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalEntry {
    id: String,
    kind: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    email: Option<String>,
    token_sha256: String,
    #[serde(default)]
    acts_for: Vec<String>,
    #[serde(default)]
    started_by: Option<String>,
    #[serde(default)]
    admin: bool,
    /// Who this human is in each channel: `{ slack = "U…", teams = "…", oidc = "…" }`.
    #[serde(default)]
    identities: BTreeMap<String, String>,
    /// Deprecated: `identities.slack`.
    #[serde(default)]
    slack_user: Option<String>,
    /// Deprecated: `identities.oidc`.
    #[serde(default)]
    oidc_subject: Option<String>,
    /// Labels every action of this principal carries (`{ env = "production" }`).
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// Resource patterns this principal's actions must match (`["host:build-*"]`).
    #[serde(default)]
    resources: Vec<String>,
    /// What a service may vouch for: `{ resources = [...], labels = [...] }`.
    #[serde(default)]
    vouches_for: Option<VouchesForEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct VouchesForEntry {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    labels: Vec<String>,
}

/// A principal of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub id: String,
    pub kind: PrincipalKind,
    pub groups: BTreeSet<String>,
    pub email: Option<String>,
    /// The humans an agent acts for: part of the chain of every request it makes.
    pub acts_for: Vec<String>,
    /// The principal that starts this agent (a pipeline, a scheduler, a person): part of the chain
    /// of every request it makes, so it never reviews them. Only the configuration says so; an
    /// agent cannot name who started it.
    pub started_by: Option<String>,
    /// May reload the policy (humans only).
    pub admin: bool,
    /// Who this human is in each channel, by channel (`slack`: the Slack user id whose clicks
    /// are this human's reviews; `oidc`: the `sub` claim of their ID token; `teams`: …). Each
    /// channel checks and reads its own; without one, a channel may match people by email.
    pub identities: BTreeMap<String, String>,
    /// Labels every action of this principal carries: facts Countersign vouches for, from the
    /// configuration, never from the agent.
    pub labels: BTreeMap<String, String>,
    /// The resource patterns this principal is bound to; empty: any resource.
    pub resources: Vec<Glob>,
    /// What a service principal may vouch for; `None` for agents and humans.
    pub vouches_for: Option<VouchesFor>,
}

/// What a service principal (an enforcement point) may vouch for when it submits on behalf of
/// an agent: the resources its actions may name, and the label keys it may set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VouchesFor {
    pub resources: Vec<Glob>,
    pub labels: BTreeSet<String>,
}

impl Principal {
    /// Who this principal is in `channel`, if the configuration says.
    pub fn identity(&self, channel: &str) -> Option<&str> {
        self.identities.get(channel).map(String::as_str)
    }
}

/// What the listener allows a connection (`[listener]`; docs/api.md, "Connections").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// A request's headers must be complete within this, counted from the connection's opening
    /// or from the end of its previous answer; so a kept-alive connection idle for this long
    /// is closed too.
    pub header_timeout: Duration,
    /// A request body that sends nothing for this long is cut off.
    pub body_timeout: Duration,
    /// Connections held at once; kept below the process's file descriptor limit by the binary.
    pub max_connections: usize,
    /// Connections one peer (an IPv4 address, an IPv6 /64) may hold at once.
    pub max_connections_per_peer: usize,
}

impl Default for ListenerLimits {
    fn default() -> ListenerLimits {
        ListenerLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_connections_per_peer: 256,
        }
    }
}

/// The configuration, checked. Paths are as written; the binary resolves them against the
/// configuration file's directory.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: String,
    pub data_dir: PathBuf,
    pub policy: PathBuf,
    /// Where the signing key lives; `signing.key` in the data directory unless set.
    pub signing_key: PathBuf,
    pub principals: Vec<Principal>,
    /// SHA-256 of each principal's API token → its index in `principals`.
    pub tokens: HashMap<[u8; 32], usize>,
    /// Every other top-level table (`[slack]`, `[web]`, …) as written, by name: each belongs to
    /// a channel, which checks it; the binary refuses a table no channel claims.
    pub channels: BTreeMap<String, toml::Table>,
    pub listener: ListenerLimits,
    /// Keys that still work but have a new name, each with the name to write instead; the
    /// binary shows them when it starts.
    pub deprecations: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let refused = |e: toml::de::Error| {
            let line = e
                .span()
                .map(|s| {
                    format!(
                        "line {}: ",
                        text[..s.start.min(text.len())].lines().count().max(1)
                    )
                })
                .unwrap_or_default();
            ConfigError(vec![format!("{line}{}", e.message().trim_end())])
        };
        let file: ConfigFile = toml::from_str(text).map_err(refused)?;
        let mut errors = Vec::new();
        let mut deprecations = Vec::new();
        let mut channels = BTreeMap::new();
        for (key, value) in toml::from_str::<toml::Table>(text).map_err(refused)? {
            if KEYS.contains(&key.as_str()) {
                continue;
            }
            match value {
                toml::Value::Table(table) => {
                    channels.insert(key, table);
                }
                _ => errors.push(format!(
                    "{}unknown field `{key}`, expected one of {}, or a channel's table",
                    line_of(text, &key),
                    KEYS.map(|k| format!("`{k}`")).join(", ")
                )),
            }
        }
        let listen_text = file
            .listen
            .clone()
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
            errors.push(format!(
                "listen: '{listen_text}' is not an address and port (write e.g. listen = \"127.0.0.1:8750\")"
            ));
            SocketAddr::from(([127, 0, 0, 1], 8750))
        });
        let public_url = file
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{listen}"));
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            errors.push(format!(
                "public_url: '{public_url}' must start with http:// or https://"
            ));
        }
        if file.data_dir.trim().is_empty() {
            errors.push("data_dir is empty: name the directory where Countersign keeps its database and key".into());
        }
        let mut principals = Vec::new();
        let mut tokens = HashMap::new();
        let mut ids = BTreeSet::new();
        for (i, entry) in file.principals.iter().enumerate() {
            let at = format!("principals[{i}] ('{}')", entry.id);
            if !is_valid_principal_id(&entry.id) {
                errors.push(format!(
                    "{at}: id must be 1 to 128 letters, digits or . _ @ + : -"
                ));
            }
            if !ids.insert(entry.id.clone()) {
                errors.push(format!(
                    "{at}: the id '{}' is used twice; principal ids must be unique",
                    entry.id
                ));
            }
            let kind = match entry.kind.as_str() {
                "agent" => PrincipalKind::Agent,
                "human" => PrincipalKind::Human,
                "service" => PrincipalKind::Service,
                other => {
                    errors.push(format!(
                        "{at}: kind '{other}' is not agent, human or service"
                    ));
                    PrincipalKind::Agent
                }
            };
            match hex_decode(&entry.token_sha256).and_then(|b| <[u8; 32]>::try_from(b).ok()) {
                Some(hash) => {
                    if tokens.insert(hash, principals.len()).is_some() {
                        errors.push(format!("{at}: token_sha256 is the same as another principal's; give each its own token"));
                    }
                }
                None => errors.push(format!(
                    "{at}: token_sha256 must be the 64 hex digits of the SHA-256 of the token \
                     (e.g. printf %s TOKEN | sha256sum); never put the token itself in the file"
                )),
            }
            if kind == PrincipalKind::Human && !entry.acts_for.is_empty() {
                errors.push(format!(
                    "{at}: acts_for is only for agents; a human acts for themselves"
                ));
            }
            if kind == PrincipalKind::Human && entry.started_by.is_some() {
                errors.push(format!(
                    "{at}: started_by is only for agents; a human starts themselves"
                ));
            }
            let program = if kind == PrincipalKind::Service {
                "services"
            } else {
                "agents"
            };
            if kind != PrincipalKind::Human
                && (entry.slack_user.is_some() || entry.oidc_subject.is_some())
            {
                errors.push(format!(
                    "{at}: slack_user and oidc_subject are only for humans; {program} never review"
                ));
            }
            if kind != PrincipalKind::Human && !entry.identities.is_empty() {
                errors.push(format!(
                    "{at}: identities are only for humans; {program} never review"
                ));
            }
            let identities = identities(entry, &at, &mut errors, &mut deprecations);
            if kind != PrincipalKind::Human && entry.admin {
                errors.push(format!(
                    "{at}: admin = true is only for humans; {program} can never change the policy"
                ));
            }
            let bindings = trust::bindings(
                kind,
                &entry.labels,
                &entry.resources,
                entry
                    .vouches_for
                    .as_ref()
                    .map(|v| (v.resources.as_slice(), v.labels.as_slice())),
                &at,
                &mut errors,
            );
            if kind == PrincipalKind::Service
                && (!entry.acts_for.is_empty() || entry.started_by.is_some())
            {
                errors.push(format!(
                    "{at}: acts_for and started_by are only for agents; a service submits on \
                     behalf of the agent that authenticated to it, and that agent's chain applies"
                ));
            }
            for name in entry.groups.iter().chain(&entry.acts_for) {
                if !is_valid_principal_id(name) {
                    errors.push(format!(
                        "{at}: '{name}' is not a valid group or principal name"
                    ));
                }
            }
            principals.push(Principal {
                id: entry.id.clone(),
                kind,
                groups: entry.groups.iter().cloned().collect(),
                email: entry.email.clone(),
                acts_for: entry.acts_for.clone(),
                started_by: entry.started_by.clone(),
                admin: entry.admin,
                identities,
                labels: bindings.labels,
                resources: bindings.resources,
                vouches_for: bindings.vouches_for,
            });
        }
        for p in &principals {
            for human in &p.acts_for {
                match principals.iter().find(|q| &q.id == human) {
                    Some(q) if q.kind == PrincipalKind::Human => {}
                    Some(_) => errors.push(format!(
                        "principal '{}': acts_for names '{human}', which is not a human",
                        p.id
                    )),
                    None => errors.push(format!(
                        "principal '{}': acts_for names '{human}', who is not in principals",
                        p.id
                    )),
                }
            }
        }
        for p in &principals {
            let Some(starter) = &p.started_by else {
                continue;
            };
            if starter == &p.id {
                errors.push(format!(
                    "principal '{}': started_by names itself; name the principal that starts it, or remove started_by",
                    p.id
                ));
            } else {
                match principals.iter().find(|q| &q.id == starter) {
                    None => errors.push(format!(
                        "principal '{}': started_by names '{starter}', who is not in principals; add it there first",
                        p.id
                    )),
                    Some(q) if q.kind == PrincipalKind::Service => errors.push(format!(
                        "principal '{}': started_by names '{starter}', a service; a service is \
                         never part of a chain (it submits on behalf of agents)",
                        p.id
                    )),
                    Some(_) => {}
                }
            }
        }
        let listener = listener_limits(file.listener.as_ref(), &mut errors);
        if !errors.is_empty() {
            return Err(ConfigError(errors));
        }
        let data_dir = PathBuf::from(&file.data_dir);
        Ok(Config {
            listen,
            public_url: public_url.trim_end_matches('/').to_owned(),
            signing_key: file
                .signing_key
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("signing.key")),
            data_dir,
            policy: PathBuf::from(file.policy),
            principals,
            tokens,
            channels,
            listener,
            deprecations,
        })
    }
}

/// A principal's identities: `identities`, and the deprecated keys that name one (each noted in
/// `deprecations` with the key to write instead). A channel name is a lowercase word, an
/// identity has no hidden characters; what an identity looks like is its channel's business.
fn identities(
    entry: &PrincipalEntry,
    at: &str,
    errors: &mut Vec<String>,
    deprecations: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let mut identities = entry.identities.clone();
    for (key, channel, value) in [
        ("slack_user", "slack", &entry.slack_user),
        ("oidc_subject", "oidc", &entry.oidc_subject),
    ] {
        let Some(value) = value else { continue };
        deprecations.push(format!(
            "{at}: {key} is deprecated; write identities = {{ {channel} = \"{value}\" }} instead"
        ));
        match identities.get(channel) {
            Some(other) if other != value => errors.push(format!(
                "{at}: {key} '{value}' and identities.{channel} '{other}' disagree; keep identities.{channel} only"
            )),
            _ => {
                identities.insert(channel.to_owned(), value.clone());
            }
        }
    }
    for (channel, identity) in &identities {
        if channel.is_empty() || !channel.chars().all(|c| c.is_ascii_lowercase()) {
            errors.push(format!(
                "{at}: identities: '{}' is not a channel name (a lowercase word, like slack)",
                countersign_model::text::clean(channel)
            ));
        }
        if identity.trim().is_empty() || identity.chars().any(countersign_model::text::is_hidden) {
            errors.push(format!(
                "{at}: identities.{channel} '{}' is empty or has hidden characters; write the identity as the channel shows it",
                countersign_model::text::clean(identity)
            ));
        }
    }
    identities
}

/// `line N: ` for the line a top-level key is written on, if it can be found.
fn line_of(text: &str, key: &str) -> String {
    text.lines()
        .position(|line| {
            line.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|n| format!("line {}: ", n + 1))
        .unwrap_or_default()
}

fn listener_limits(entry: Option<&ListenerEntry>, errors: &mut Vec<String>) -> ListenerLimits {
    let mut limits = ListenerLimits::default();
    let Some(entry) = entry else {
        return limits;
    };
    let mut duration = |key: &str, text: &Option<String>, into: &mut Duration| {
        let Some(text) = text else { return };
        match countersign_model::parse_duration(text) {
            Ok(d) if !d.is_zero() => *into = d,
            _ => errors.push(format!(
                "listener.{key}: '{text}' is not a duration of at least 1s (write e.g. \"10s\" or \"1m\")"
            )),
        }
    };
    duration(
        "header_timeout",
        &entry.header_timeout,
        &mut limits.header_timeout,
    );
    duration(
        "body_timeout",
        &entry.body_timeout,
        &mut limits.body_timeout,
    );
    for (key, value, into) in [
        (
            "max_connections",
            entry.max_connections,
            &mut limits.max_connections,
        ),
        (
            "max_connections_per_peer",
            entry.max_connections_per_peer,
            &mut limits.max_connections_per_peer,
        ),
    ] {
        match value {
            Some(0) => errors.push(format!(
                "listener.{key} must be at least 1; leave it out for the default"
            )),
            Some(n) => *into = n,
            None => {}
        }
    }
    limits
}
