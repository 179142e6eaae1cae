//! What `countersign serve` checks before it serves: that the database is the history it left.
//!
//! A database that is missing, or behind the head of the audit log recorded when the broker last
//! ran (`countersign.head` in the data directory), while the signing key or that record says there
//! was history, is refused unless the operator starts with `--init`: otherwise a deleted database
//! would silently become a new, empty history whose log verifies, and pending requests and their
//! grants would be gone. A missing signing key beside a database with history is always refused:
//! a new key would not verify that history.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use countersign_audit::ChainHead;
use countersign_store::{SqliteStore, Store};
use serde_json::json;

/// The file, beside the database, that holds the head of the log as last seen committed.
const MARKER: &str = "countersign.head";

/// How often the running broker brings the record of the head up to date.
const MARKER_EVERY: Duration = Duration::from_secs(2);

/// What start-up found in the data directory.
#[derive(Debug)]
pub struct Found {
    pub database: PathBuf,
    marker: PathBuf,
    head: Option<(u64, String)>,
    database_exists: bool,
}

/// Looks at the data directory before anything is created in it: refuses a missing database
/// where there was history, unless `init`.
pub fn before_open(data_dir: &Path, key: &Path, init: bool) -> anyhow::Result<Found> {
    let database = data_dir.join("countersign.db");
    let marker = data_dir.join(MARKER);
    let head = read_marker(&marker)?;
    let database_exists = database.exists();
    if !database_exists && !init {
        let evidence = match (&head, key.exists()) {
            (Some((seq, _)), _) if *seq > 0 => Some(format!(
                "{} records {seq} audit events from when Countersign last ran here",
                marker.display()
            )),
            (_, true) => Some(format!("the signing key {} exists", key.display())),
            (_, false) => None,
        };
        if let Some(evidence) = evidence {
            bail!(
                "the database {db} is missing, but {evidence}: Countersign's history here \
                 (pending requests, their grants, the audit log) was moved or deleted. Restore \
                 {db} (with {db}-wal, if there was one) and start again. To begin a new, empty \
                 history on purpose, start with `countersign serve --init`.",
                db = database.display()
            );
        }
    }
    Ok(Found {
        database,
        marker,
        head,
        database_exists,
    })
}

/// Refuses to create a signing key beside a database that holds history signed by another.
pub async fn check_key_is_not_lost(found: &Found, key: &Path) -> anyhow::Result<()> {
    if key.exists() || !found.database_exists {
        return Ok(());
    }
    let store = SqliteStore::open(&found.database, None)
        .await
        .with_context(|| format!("cannot open the database {}", found.database.display()))?;
    let events = store.audit_head().await?.map_or(0, |head| head.seq);
    let requests = store.list_requests(&Default::default()).await?.len();
    if events > 0 || requests > 0 {
        bail!(
            "the signing key {key} is missing, but the database {db} holds Countersign's history \
             ({events} audit events) signed with it: a new key could not verify that history or \
             the grants already issued. Restore {key} (readable by its owner only) from your \
             backup; Countersign does not create a new key beside an existing history.",
            key = key.display(),
            db = found.database.display()
        );
    }
    Ok(())
}

/// Refuses a database behind the head recorded when the broker last ran, unless `init`; then
/// records the head it starts from.
pub async fn after_open(found: &Found, store: &SqliteStore, init: bool) -> anyhow::Result<()> {
    let head = store.audit_head().await?;
    if let Some((seq, hash)) = &found.head
        && *seq > 0
        && !init
    {
        let there = store.audit_after(seq - 1, 1).await?;
        let same = there
            .first()
            .is_some_and(|event| event.seq == *seq && event.hash.to_string() == *hash);
        if !same {
            bail!(
                "the database {db} holds {now} audit events, but it held {seq} when Countersign \
                 last ran here (recorded in {marker}): part of its history was lost (a deleted \
                 -wal file, an older copy put back). Restore the database as it was and start \
                 again. To go on from the database as it is now, accepting that what it lost is \
                 gone, start with `countersign serve --init`.",
                db = found.database.display(),
                now = head.map_or(0, |h| h.seq),
                marker = found.marker.display()
            );
        }
    }
    write_marker(&found.marker, head)
}

/// Keeps the record of the head up to date while the broker runs; the head only moves once a
/// write is committed to the database at its path, so the record is never ahead of the file.
pub fn keep_marker(found: &Found, store: Arc<dyn Store>) -> tokio::task::JoinHandle<()> {
    let marker = found.marker.clone();
    tokio::spawn(async move {
        let mut written = None;
        loop {
            if let Ok(head) = store.audit_head().await
                && head != written
            {
                match write_marker(&marker, head) {
                    Ok(()) => written = head,
                    Err(error) => tracing::warn!(%error, "cannot record the head of the audit log"),
                }
            }
            tokio::time::sleep(MARKER_EVERY).await;
        }
    })
}

/// Records the head once more as the broker stops.
pub async fn record_head(found: &Found, store: &dyn Store) {
    if let Ok(head) = store.audit_head().await
        && let Err(error) = write_marker(&found.marker, head)
    {
        tracing::warn!(%error, "cannot record the head of the audit log");
    }
}

/// Records `head` as the last one the broker saw committed: written beside, then renamed, so a
/// crash leaves the old record or the new one.
pub fn write_marker(path: &Path, head: Option<ChainHead>) -> anyhow::Result<()> {
    let body = match head {
        Some(head) => json!({ "seq": head.seq, "hash": head.hash.to_string() }),
        None => json!({ "seq": 0, "hash": null }),
    };
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = PathBuf::from(temporary);
    let mut file = fs::File::create(&temporary)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    writeln!(file, "{body}")?;
    file.sync_all()?;
    fs::rename(&temporary, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn read_marker(path: &Path) -> anyhow::Result<Option<(u64, String)>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let unreadable = || {
        anyhow::anyhow!(
            "{} is not Countersign's record of the audit log's head; restore it, or remove it \
             if the database beside it is the history you mean to keep",
            path.display()
        )
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|_| unreadable())?;
    let seq = value["seq"].as_u64().ok_or_else(unreadable)?;
    let hash = value["hash"].as_str().unwrap_or_default().to_owned();
    Ok(Some((seq, hash)))
}
