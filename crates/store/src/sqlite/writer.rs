//! The SQLite store's one writer connection, and what keeps a failed write from being taken for
//! a committed one.
//!
//! After an error inside a write, SQLite may already have rolled the transaction back on its own
//! (a full disk does that), while the driver still counts it as open: every later `BEGIN` would
//! then become a savepoint inside a transaction nobody commits, and writes would be acknowledged
//! and lost. So after any failure the connection is thrown away, and the next write opens a new
//! one and re-reads the head of the audit chain from the file. A write is acknowledged only after
//! its commit returned and the files it went to are still the ones at the database's path: a
//! database (or its `-wal`) moved or deleted while the broker runs turns the store unavailable
//! until an operator restores it and restarts, instead of acknowledging writes into unlinked files.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use countersign_audit::ChainHead;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _, SqliteConnection};

use crate::StoreError;

/// Where a file is: device and inode, which a move, a delete or a replacement changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

fn identify(path: &Path) -> std::io::Result<FileId> {
    let meta = std::fs::metadata(path)?;
    Ok(FileId {
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

/// How long the outcome of the last commit (or probe) stands for the store's health before a
/// probe asks the database again.
const HEALTH_FRESH: Duration = Duration::from_secs(1);

pub(super) struct Writer {
    conn: Option<SqliteConnection>,
    /// The head of the audit log as committed; re-read whenever the connection is opened again.
    pub(super) head: Option<ChainHead>,
    options: SqliteConnectOptions,
    path: PathBuf,
    wal_path: PathBuf,
    /// The database file opened at start-up: every later connection must find the same file.
    database: FileId,
    /// The `-wal` file of the open connection, once a commit has made sure it exists.
    wal: Option<FileId>,
    /// Set, for good, once the files were found moved or removed.
    lost: Option<String>,
    /// The outcome of the last commit or probe, and when.
    last: Option<(Instant, Result<(), String>)>,
    /// SQLite's `max_page_count` for every writer connection (a test's full disk).
    max_pages: Option<u32>,
    /// Set while a write runs on the connection. Still set when the next one comes, the write
    /// before was dropped midway (its caller went away): its transaction may be open, or
    /// committed after the head was read, so neither the connection nor the head is trusted.
    busy: bool,
}

impl Writer {
    pub(super) async fn open(
        path: &Path,
        options: SqliteConnectOptions,
        mut conn: SqliteConnection,
    ) -> Result<Writer, StoreError> {
        let database = identify(path).map_err(|e| {
            StoreError::Unavailable(format!("cannot find the database {}: {e}", path.display()))
        })?;
        let head = super::read_head(&mut conn).await?;
        let mut wal_path = path.as_os_str().to_owned();
        wal_path.push("-wal");
        let wal_path = PathBuf::from(wal_path);
        Ok(Writer {
            conn: Some(conn),
            head,
            // Later connections must find the database, never create an empty one in its place.
            options: options.create_if_missing(false),
            path: path.to_owned(),
            wal: identify(&wal_path).ok(),
            wal_path,
            database,
            lost: None,
            last: None,
            max_pages: None,
            busy: false,
        })
    }

    /// The connection to write on: the open one, or a new one after a failure or a write that
    /// never finished. Refused once the files were lost. The caller says `finished` once its
    /// write has run to its end, whatever the outcome.
    pub(super) async fn connection(
        &mut self,
    ) -> Result<(&mut SqliteConnection, Option<ChainHead>), StoreError> {
        if let Some(lost) = &self.lost {
            return Err(StoreError::Unavailable(lost.clone()));
        }
        if std::mem::replace(&mut self.busy, true) {
            // Closed, not just dropped: SQLite's worker runs what the abandoned write handed it
            // (its commit, or the rollback of its transaction) before it closes, so the new
            // connection reads the head after all of it.
            if let Some(conn) = self.conn.take() {
                let _ = conn.close().await;
            }
            self.wal = None;
        }
        if self.conn.is_none() {
            self.check_files()?;
            let mut conn = self
                .options
                .clone()
                .connect()
                .await
                .map_err(|e| self.failed(format!("cannot open the database again: {e}")))?;
            if let Some(pages) = self.max_pages {
                set_max_pages(&mut conn, pages).await?;
            }
            self.head = super::read_head(&mut conn).await?;
            self.conn = Some(conn);
        }
        match self.conn.as_mut() {
            Some(conn) => Ok((conn, self.head)),
            None => Err(StoreError::Unavailable("the database is not open".into())),
        }
    }

    /// The write that took the connection ran to its end (committed, rolled back or failed).
    pub(super) fn finished(&mut self) {
        self.busy = false;
    }

    /// Records a failed write: the connection is dropped (its transaction state cannot be
    /// trusted) and the next write opens a new one.
    pub(super) fn discard(&mut self, error: &StoreError) {
        // A failure may come from files that were removed: say so rather than reopen.
        let _ = self.check_files();
        self.conn = None;
        // SQLite removes the `-wal` when its last connection closes; the next one makes another.
        self.wal = None;
        self.last = Some((Instant::now(), Err(error.to_string())));
    }

    fn failed(&mut self, message: String) -> StoreError {
        self.last = Some((Instant::now(), Err(message.clone())));
        StoreError::Unavailable(message)
    }

    /// After a commit returned: the write counts only if it went to the files at the path.
    pub(super) fn committed(&mut self, head: Option<ChainHead>) -> Result<(), StoreError> {
        self.check_files()?;
        if self.wal.is_none() {
            self.wal = identify(&self.wal_path).ok();
        }
        self.head = head;
        self.last = Some((Instant::now(), Ok(())));
        Ok(())
    }

    /// Whether the database and its `-wal` are still the files this store opened. Cheap: two
    /// `stat` calls.
    pub(super) fn check_files(&mut self) -> Result<(), StoreError> {
        if let Some(lost) = &self.lost {
            return Err(StoreError::Unavailable(lost.clone()));
        }
        let moved = |what: &str, path: &Path, now: std::io::Result<FileId>| match now {
            Err(e) => Some(format!("{what} {} is gone ({e})", path.display())),
            Ok(_) => Some(format!(
                "{what} {} was replaced by another file",
                path.display()
            )),
        };
        let problem = match identify(&self.path) {
            Ok(id) if id == self.database => match (self.wal, identify(&self.wal_path)) {
                (Some(known), Ok(id)) if id == known => None,
                (None, _) => None,
                (Some(_), now) => moved("its write-ahead log", &self.wal_path, now),
            },
            now => moved("the database", &self.path, now),
        };
        match problem {
            None => Ok(()),
            Some(problem) => {
                let lost = format!(
                    "{problem} while Countersign was running, so nothing more can be recorded: \
                     restore the database {} (with its -wal file) and restart the broker",
                    self.path.display()
                );
                self.lost = Some(lost.clone());
                self.conn = None;
                self.last = Some((Instant::now(), Err(lost.clone())));
                Err(StoreError::Unavailable(lost))
            }
        }
    }

    /// The outcome of the last commit or probe, if it is recent enough to stand for the health of
    /// the store.
    pub(super) fn recent(&self) -> Option<Result<(), StoreError>> {
        match &self.last {
            Some((at, outcome)) if at.elapsed() < HEALTH_FRESH => {
                Some(outcome.clone().map_err(StoreError::Unavailable))
            }
            _ => None,
        }
    }

    pub(super) fn probed(&mut self, outcome: &Result<(), StoreError>) {
        self.last = Some((
            Instant::now(),
            outcome.as_ref().map(|_| ()).map_err(|e| e.to_string()),
        ));
    }

    pub(super) async fn limit_pages(&mut self, pages: Option<u32>) -> Result<(), StoreError> {
        self.max_pages = pages;
        if let Some(conn) = self.conn.as_mut() {
            set_max_pages(conn, pages.unwrap_or(u32::MAX)).await?;
        }
        Ok(())
    }
}

async fn set_max_pages(conn: &mut SqliteConnection, pages: u32) -> Result<(), StoreError> {
    // SQLite clamps the limit to the database's current size.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "PRAGMA max_page_count = {pages}"
    )))
    .execute(&mut *conn)
    .await?;
    Ok(())
}
