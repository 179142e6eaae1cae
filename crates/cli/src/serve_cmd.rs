//! `countersign serve --config FILE [--init]`: reads the configuration, the policy and the signing
//! key (generating the key on first start, mode 0600), checks that the database is the history it
//! left (`history.rs`), opens the store, and serves the API. SIGHUP reloads the policy; SIGINT and
//! SIGTERM stop the server gracefully.

mod history;

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use countersign_broker::{Broker, Config};
use countersign_model::SecretKey;
use countersign_policy::Policy;
use countersign_store::SqliteStore;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

/// Reads and checks the configuration file; paths in it are resolved against its directory.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
    let mut config = Config::parse(&text).map_err(|e| {
        let lines: Vec<String> =
            e.0.iter()
                .map(|line| format!("{}: {line}", path.display()))
                .collect();
        anyhow::anyhow!("the configuration is not valid:\n{}", lines.join("\n"))
    })?;
    crate::channels::check_tables(&config)
        .map_err(|e| anyhow::anyhow!("the configuration is not valid:\n{}: {e}", path.display()))?;
    for deprecation in &config.deprecations {
        eprintln!("countersign: {}: {deprecation}", path.display());
    }
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let resolve = |p: &PathBuf| {
        if p.is_absolute() {
            p.clone()
        } else {
            base.join(p)
        }
    };
    config.data_dir = resolve(&config.data_dir);
    config.policy = resolve(&config.policy);
    config.signing_key = resolve(&config.signing_key);
    Ok(config)
}

/// Loads the signing key, or creates it (readable by its owner only) if it does not exist yet.
pub fn signing_key(path: &Path) -> anyhow::Result<SecretKey> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let mode = fs::metadata(path)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                bail!(
                    "the signing key {} can be read by others (mode {mode:o}); run chmod 600 on it",
                    path.display()
                );
            }
            text.parse().with_context(|| {
                format!(
                    "the signing key {} is not a Countersign key",
                    path.display()
                )
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed)
                .map_err(|e| anyhow::anyhow!("the system's random source failed: {e}"))?;
            let key = SecretKey::from_seed(seed);
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot create the signing key {}", path.display()))?;
            writeln!(file, "{}", key.to_text())?;
            file.sync_all()?;
            eprintln!(
                "countersign: created the signing key {} (public key {})",
                path.display(),
                key.public_key()
            );
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read the signing key {}", path.display())),
    }
}

fn read_policy(path: &Path) -> anyhow::Result<Policy> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read the policy file {}", path.display()))?;
    let policy = Policy::parse(&text).map_err(|errors| {
        anyhow::anyhow!(
            "the policy is not valid:\n{}",
            errors.render(&path.display().to_string())
        )
    })?;
    unannounceable(path, &policy)
        .map_err(|problems| anyhow::anyhow!("the policy is not valid:\n{problems}"))?;
    Ok(policy)
}

/// The policy's `notify` targets that no channel can announce to, each line naming the file and
/// the rule; checked at start-up and at every reload.
fn unannounceable(path: &Path, policy: &Policy) -> Result<(), String> {
    let problems = crate::channels::check_targets(policy);
    if problems.is_empty() {
        return Ok(());
    }
    Err(problems
        .iter()
        .map(|p| format!("{}: {p}", path.display()))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Serves the broker. `init` accepts the database as it is (a new, empty one if it is missing)
/// where the history recorded in the data directory says one is missing or lost.
pub async fn serve(config: Config, init: bool) -> anyhow::Result<ExitCode> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_dir)
        .with_context(|| {
            format!(
                "cannot create the data directory {}",
                config.data_dir.display()
            )
        })?;
    let found = history::before_open(&config.data_dir, &config.signing_key, init)?;
    history::check_key_is_not_lost(&found, &config.signing_key).await?;
    let key = signing_key(&config.signing_key)?;
    let policy = read_policy(&config.policy)?;
    let database = &found.database;
    let store = SqliteStore::open(database, Some(key.clone()))
        .await
        .with_context(|| format!("cannot open the database {}", database.display()))?;
    history::after_open(&found, &store, init).await?;
    let store: Arc<dyn countersign_store::Store> = Arc::new(store);
    let marker = history::keep_marker(&found, Arc::clone(&store));
    let policy_path = config.policy.clone();
    // A reloaded policy meets the channels' checks too; the broker's own checks follow.
    let loader = Arc::new(move || {
        let text = fs::read_to_string(&policy_path)
            .map_err(|e| format!("cannot read {}: {e}", policy_path.display()))?;
        if let Ok(policy) = Policy::parse_untested(&text) {
            unannounceable(&policy_path, &policy).map_err(|problems| {
                format!("the new policy was refused, the old one stays in force:\n{problems}")
            })?;
        }
        Ok(text)
    });
    let broker = Broker::start(&config, policy, loader, Arc::clone(&store), key).await?;
    for unannounced in crate::channels::unannounced(&config, &broker.policy()) {
        eprintln!("countersign: {unannounced}");
    }
    let router = broker
        .router()
        .merge(crate::channels::start(&broker, &config)?);
    let listener = TcpListener::bind(config.listen).await.with_context(|| {
        format!(
            "cannot listen on {} (is another Countersign running there?)",
            config.listen
        )
    })?;
    eprintln!(
        "countersign: serving on http://{} with policy {} ({}), data in {}",
        listener.local_addr()?,
        config.policy.display(),
        broker.policy_hash(),
        config.data_dir.display()
    );

    let mut hangup = signal(SignalKind::hangup())?;
    let reloader = broker.clone();
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            match reloader.reload_policy("countersign (SIGHUP)").await {
                Ok(hash) => eprintln!("countersign: policy reloaded ({hash})"),
                Err(errors) => eprintln!("countersign: {errors}"),
            }
        }
    });
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let limits = within_descriptor_limit(config.listener);
    countersign_broker::listener::serve(listener, router, limits, async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        eprintln!("countersign: stopping");
    })
    .await?;
    marker.abort();
    history::record_head(&found, store.as_ref()).await;
    Ok(ExitCode::SUCCESS)
}

/// File descriptors kept for the store, the key, the policy and outgoing calls (Slack, the
/// identity provider), whatever the connections hold.
const RESERVED_DESCRIPTORS: usize = 128;

/// Lowers `max_connections` below the process's limit of open files (Linux's
/// `/proc/self/limits`), so a flood of connections can never leave the store without one.
fn within_descriptor_limit(
    mut limits: countersign_broker::ListenerLimits,
) -> countersign_broker::ListenerLimits {
    let soft = fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("Max open files"))
                .and_then(|line| line.split_whitespace().nth(3)?.parse::<usize>().ok())
        });
    if let Some(soft) = soft {
        let room = soft.saturating_sub(RESERVED_DESCRIPTORS).max(1);
        if limits.max_connections > room {
            eprintln!(
                "countersign: serving at most {room} connections (listener.max_connections is {}, \
                 but the limit of open files is {soft}; raise it with ulimit -n)",
                limits.max_connections
            );
            limits.max_connections = room;
        }
    }
    limits
}
