//! The SQLite backend: one file, WAL journal, `synchronous = FULL` so a commit is on disk before it
//! is acknowledged. One writer connection behind a lock serialises every write (SQLite allows one
//! writer at a time anyway) and owns the head of the audit chain; reads use a pool of readers,
//! which WAL lets run beside the writer. How a failed write is kept from being acknowledged, and
//! how a moved or deleted database is noticed: `writer.rs`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use countersign_approval::{GrantClaims, Request};
use countersign_audit::{AuditEvent, ChainHead, Checkpoint, EventDraft, seal};
use countersign_model::ids::GrantId;
use countersign_model::{Digest, RequestId, SecretKey, Timestamp};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, QueryBuilder, Sqlite, SqliteConnection};
use tokio::sync::Mutex;

mod writer;
use writer::Writer;

use crate::{
    Consumed, Delivery, GrantStatus, Reported, RequestFilter, Store, StoreError, Transition,
    Update, Updated,
};

pub struct SqliteStore {
    writer: Mutex<Writer>,
    readers: SqlitePool,
    /// Signs a checkpoint over the head of the log in every transaction that appends to it.
    checkpoint_key: Option<SecretKey>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

type Tx<'c> = sqlx::Transaction<'c, sqlx::Sqlite>;

/// The query for a list of requests, newest first, with a condition for each filter that is set
/// and none for those that are not: `(? IS NULL OR state = ?)` would keep SQLite from using the
/// index of the filter that is set, and read the whole history for every list.
fn list_query(prefix: &str, filter: &RequestFilter) -> QueryBuilder<Sqlite> {
    let mut query = QueryBuilder::new(format!("{prefix}SELECT body FROM requests"));
    let mut glue = " WHERE ";
    let mut condition = |query: &mut QueryBuilder<Sqlite>, sql: &str| {
        query.push(glue).push(sql);
        glue = " AND ";
    };
    if let Some(state) = filter.state.as_deref() {
        condition(&mut query, "state = ");
        query.push_bind(state.to_owned());
    }
    if let Some(requester) = filter.requester.as_deref() {
        condition(&mut query, "requester = ");
        query.push_bind(requester.to_owned());
    }
    if let Some(from) = filter.created_from {
        condition(&mut query, "created_at >= ");
        query.push_bind(millis(from));
    }
    if let Some(before) = filter.created_before {
        condition(&mut query, "created_at < ");
        query.push_bind(millis(before));
    }
    if let Some(rule) = filter.rule.as_deref() {
        condition(
            &mut query,
            "EXISTS (SELECT 1 FROM json_each(body, '$.decision.rules') WHERE value = ",
        );
        query.push_bind(rule.to_owned()).push(")");
    }
    query
        .push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(i64::from(filter.limit.max(1)));
    query
}

impl SqliteStore {
    /// How SQLite reads a list of requests (`EXPLAIN QUERY PLAN`, one line a step): what the tests
    /// check to keep lists off the history they do not show, and what an operator can look at.
    pub async fn list_plan(&self, filter: &RequestFilter) -> Result<Vec<String>, StoreError> {
        use sqlx::Row as _;
        let rows = list_query("EXPLAIN QUERY PLAN ", filter)
            .build()
            .fetch_all(&self.readers)
            .await?;
        rows.iter()
            .map(|row| row.try_get::<String, _>("detail").map_err(StoreError::from))
            .collect()
    }

    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub async fn open(
        path: &Path,
        checkpoint_key: Option<SecretKey>,
    ) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let mut conn = options.clone().connect().await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut conn)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot update the database schema: {e}"))
            })?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone())
            .await?;
        let writer = Writer::open(path, options, conn).await?;
        Ok(SqliteStore {
            writer: Mutex::new(writer),
            readers,
            checkpoint_key,
        })
    }

    /// Limits how large the database may grow, in pages (SQLite's `max_page_count`), on the
    /// writer and on every writer connection opened after it; `None` lifts the limit. A write
    /// that needs more room fails as on a full disk: tests use it to fill the disk without root.
    pub async fn limit_size(&self, pages: Option<u32>) -> Result<(), StoreError> {
        self.writer.lock().await.limit_pages(pages).await
    }

    /// Runs `work` in one write transaction. When it says commit, its audit drafts are sealed
    /// after the head of the log and appended with a checkpoint, the transaction commits, and only
    /// then — once the files are known to be the database's — does the in-memory head move; when
    /// it says abort, nothing is written. After a failure the writer connection is replaced.
    async fn write<T, F>(&self, work: F) -> Result<(T, Vec<AuditEvent>), StoreError>
    where
        F: for<'t, 'c> FnOnce(&'t mut Tx<'c>) -> BoxedWork<'t, T>,
    {
        let mut writer = self.writer.lock().await;
        let (conn, head) = writer.connection().await?;
        let ran = run(conn, head, self.checkpoint_key.as_ref(), work).await;
        writer.finished();
        match ran {
            Ok(Ran::Committed(value, events, head)) => {
                writer.committed(head)?;
                Ok((value, events))
            }
            Ok(Ran::RolledBack(value)) => Ok((value, Vec::new())),
            Err(Failure { error, sound }) => {
                if !sound {
                    writer.discard(&error);
                }
                Err(error)
            }
        }
    }

    /// Commits one row, to learn whether the store can commit at all.
    async fn probe(writer: &mut Writer) -> Result<(), StoreError> {
        let (conn, head) = writer.connection().await?;
        let mut tx = conn.begin().await?;
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&mut *tx)
            .await?;
        let max: i64 = sqlx::query_scalar("PRAGMA max_page_count")
            .fetch_one(&mut *tx)
            .await?;
        let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
            .fetch_one(&mut *tx)
            .await?;
        if pages >= max && free == 0 {
            return Err(StoreError::Unavailable(format!(
                "the database is full ({pages} pages, as large as it may grow)"
            )));
        }
        sqlx::query(
            "INSERT INTO store_probe (id, at) VALUES (1, unixepoch('subsec') * 1000) \
             ON CONFLICT (id) DO UPDATE SET at = excluded.at",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        writer.committed(head)
    }
}

/// How a write transaction ended, when it did not fail.
enum Ran<T> {
    Committed(T, Vec<AuditEvent>, Option<ChainHead>),
    RolledBack(T),
}

/// A failed write; `sound` when the connection was rolled back cleanly and may be used again.
struct Failure {
    error: StoreError,
    sound: bool,
}

impl<E: Into<StoreError>> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure {
            error: error.into(),
            sound: false,
        }
    }
}

async fn run<T, F>(
    conn: &mut SqliteConnection,
    head: Option<ChainHead>,
    key: Option<&SecretKey>,
    work: F,
) -> Result<Ran<T>, Failure>
where
    F: for<'t, 'c> FnOnce(&'t mut Tx<'c>) -> BoxedWork<'t, T>,
{
    let mut tx = conn.begin().await?;
    match work(&mut tx).await {
        Ok(Work::Commit(value, drafts)) => {
            let (events, head) = append_in(&mut tx, head, drafts, key).await?;
            tx.commit().await?;
            Ok(Ran::Committed(value, events, head))
        }
        Ok(Work::Abort(value)) => {
            tx.rollback().await?;
            Ok(Ran::RolledBack(value))
        }
        // An answer about the data (no such request, a duplicate): SQLite itself did not fail,
        // so a clean rollback leaves the connection as good as new.
        Err(error) => {
            let sound = !matches!(error, StoreError::Unavailable(_)) && tx.rollback().await.is_ok();
            Err(Failure { error, sound })
        }
    }
}

/// What the body of a write decides.
enum Work<T> {
    Commit(T, Vec<EventDraft>),
    Abort(T),
}

/// The body of a write: a future borrowing the transaction.
type BoxedWork<'t, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Work<T>, StoreError>> + Send + 't>>;

async fn read_head(conn: &mut SqliteConnection) -> Result<Option<ChainHead>, StoreError> {
    let body: Option<String> =
        sqlx::query_scalar("SELECT body FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    Ok(match body {
        Some(body) => Some(serde_json::from_str::<AuditEvent>(&body)?.head()),
        None => None,
    })
}

/// Who reported an event: its principal (the broker stamps the caller there).
fn reporter(draft: &EventDraft) -> String {
    draft.principal.clone().unwrap_or_default()
}

/// Audit events per `INSERT` (three parameters each; SQLite takes 32,766 per statement).
const ROWS_PER_INSERT: usize = 500;

async fn append_in(
    tx: &mut Tx<'_>,
    mut head: Option<ChainHead>,
    drafts: Vec<EventDraft>,
    key: Option<&SecretKey>,
) -> Result<(Vec<AuditEvent>, Option<ChainHead>), StoreError> {
    let mut events = Vec::with_capacity(drafts.len());
    for draft in drafts {
        let event = seal(draft, head)?;
        head = Some(event.head());
        events.push(event);
    }
    // Many rows per statement: each statement is a round trip to SQLite's thread, which costs
    // more than the row (a batch of reported events holds hundreds).
    for chunk in events.chunks(ROWS_PER_INSERT) {
        let mut rows = Vec::with_capacity(chunk.len());
        for event in chunk {
            let seq = i64::try_from(event.seq)
                .map_err(|_| StoreError::Corrupt("audit sequence overflow".into()))?;
            let request = event.request_id.map(|id| id.to_string());
            rows.push((seq, request, serde_json::to_string(event)?));
        }
        sqlx::QueryBuilder::new("INSERT INTO audit_events (seq, request_id, body) ")
            .push_values(rows, |mut row, (seq, request, body)| {
                row.push_bind(seq).push_bind(request).push_bind(body);
            })
            .build()
            .execute(&mut **tx)
            .await?;
    }
    if let (Some(key), Some(last)) = (key, events.last()) {
        let checkpoint = Checkpoint::sign(last.seq, last.hash, last.time, key)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query("INSERT INTO audit_checkpoints (seq, body) VALUES (?, ?)")
            .bind(last.seq as i64)
            .bind(serde_json::to_string(&checkpoint)?)
            .execute(&mut **tx)
            .await?;
    }
    Ok((events, head))
}

/// Reads back rows Countersign wrote as JSON.
fn decode_all<T: serde::de::DeserializeOwned>(bodies: &[String]) -> Result<Vec<T>, StoreError> {
    bodies
        .iter()
        .map(|b| serde_json::from_str(b).map_err(StoreError::from))
        .collect()
}

fn millis(t: Timestamp) -> i64 {
    t.unix_millis()
}

async fn load_request(tx: &mut Tx<'_>, id: RequestId) -> Result<Request, StoreError> {
    let body: Option<String> = sqlx::query_scalar("SELECT body FROM requests WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    let body = body.ok_or(StoreError::UnknownRequest(id))?;
    Ok(serde_json::from_str(&body)?)
}

async fn insert_grant_row(tx: &mut Tx<'_>, claims: &GrantClaims) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO grants (id, request_id, digest, expires_at, claims) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(claims.grant.to_string())
    .bind(claims.request.to_string())
    .bind(claims.digest.to_string())
    .bind(millis(claims.expires_at))
    .bind(serde_json::to_string(claims)?)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn save_new_reviews(
    tx: &mut Tx<'_>,
    before: &Request,
    after: &Request,
) -> Result<(), StoreError> {
    for review in &after.reviews[before.reviews.len().min(after.reviews.len())..] {
        sqlx::query("INSERT INTO reviews (request_id, reviewer, verdict, channel, at, body) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(after.id.to_string())
            .bind(&review.reviewer.id)
            .bind(review.verdict.to_string())
            .bind(review.channel.as_str())
            .bind(millis(review.at))
            .bind(serde_json::to_string(review)?)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn append_audit(&self, drafts: Vec<EventDraft>) -> Result<Vec<AuditEvent>, StoreError> {
        let ((), events) = self
            .write(|_| Box::pin(async { Ok(Work::Commit((), drafts)) }))
            .await?;
        Ok(events)
    }

    async fn append_reported(
        &self,
        reported: Vec<Reported>,
    ) -> Result<(Vec<AuditEvent>, usize), StoreError> {
        // An id is the reporter's own: the same id from two principals names two events.
        let ids: Vec<(String, String)> = reported
            .iter()
            .filter_map(|r| Some((reporter(&r.event), r.event_id.clone()?)))
            .collect();
        self.write(move |tx| {
            Box::pin(async move {
                let mut seen = HashSet::new();
                let mut by_reporter: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
                for (who, id) in &ids {
                    by_reporter.entry(who).or_default().push(id);
                }
                for (who, ids) in by_reporter {
                    for chunk in ids.chunks(ROWS_PER_INSERT) {
                        let mut query = sqlx::QueryBuilder::new(
                            "SELECT event_id FROM reported_event_ids WHERE reporter = ",
                        );
                        query.push_bind(who).push(" AND event_id IN (");
                        let mut list = query.separated(", ");
                        for id in chunk {
                            list.push_bind(*id);
                        }
                        query.push(")");
                        let known: Vec<String> =
                            query.build_query_scalar().fetch_all(&mut **tx).await?;
                        seen.extend(known.into_iter().map(|id| (who.to_owned(), id)));
                    }
                }
                let mut drafts = Vec::with_capacity(reported.len());
                let mut new_ids = Vec::new();
                for r in reported {
                    if let Some(id) = r.event_id {
                        let key = (reporter(&r.event), id);
                        if !seen.insert(key.clone()) {
                            continue;
                        }
                        new_ids.push(key);
                    }
                    drafts.push(r.event);
                    drafts.extend(r.follow_ups);
                }
                for chunk in new_ids.chunks(ROWS_PER_INSERT) {
                    sqlx::QueryBuilder::new("INSERT INTO reported_event_ids (reporter, event_id) ")
                        .push_values(chunk, |mut row, (who, id)| {
                            row.push_bind(who).push_bind(id);
                        })
                        .build()
                        .execute(&mut **tx)
                        .await?;
                }
                let left_out = ids.len() - new_ids.len();
                Ok(Work::Commit(left_out, drafts))
            })
        })
        .await
        .map(|(left_out, events)| (events, left_out))
    }

    async fn create_request(
        &self,
        request: &Request,
        audit: Vec<EventDraft>,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let body = serde_json::to_string(request)?;
        let request = request.clone();
        let ((), events) = self
            .write(move |tx| {
                Box::pin(async move {
                    let inserted = sqlx::query(
                        "INSERT INTO requests (id, state, requester, created_at, expires_at, body) \
                         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(request.id.to_string())
                    .bind(request.state.name())
                    .bind(&request.action.principal.id)
                    .bind(millis(request.created_at))
                    .bind(millis(request.expires_at))
                    .bind(body)
                    .execute(&mut **tx)
                    .await?;
                    if inserted.rows_affected() == 0 {
                        return Err(StoreError::DuplicateRequest(request.id));
                    }
                    Ok(Work::Commit((), audit))
                })
            })
            .await?;
        Ok(events)
    }

    async fn update_request(
        &self,
        id: RequestId,
        transition: Transition,
    ) -> Result<Updated, StoreError> {
        let (outcome, events) = self
            .write(move |tx| {
                Box::pin(async move {
                    let current = load_request(tx, id).await?;
                    let Update {
                        request,
                        audit,
                        grant,
                    } = match transition(&current) {
                        Ok(update) => update,
                        Err(refusal) => return Ok(Work::Abort(Err((current, refusal)))),
                    };
                    save_new_reviews(tx, &current, &request).await?;
                    sqlx::query("UPDATE requests SET state = ?, body = ? WHERE id = ?")
                        .bind(request.state.name())
                        .bind(serde_json::to_string(&request)?)
                        .bind(id.to_string())
                        .execute(&mut **tx)
                        .await?;
                    if let Some(claims) = &grant {
                        insert_grant_row(tx, claims).await?;
                    }
                    Ok(Work::Commit(Ok(request), audit))
                })
            })
            .await?;
        Ok(match outcome {
            Ok(request) => Updated::Applied { request, events },
            Err((request, refusal)) => Updated::Refused { request, refusal },
        })
    }

    async fn get_request(&self, id: RequestId) -> Result<Option<Request>, StoreError> {
        let body: Option<String> = sqlx::query_scalar("SELECT body FROM requests WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.readers)
            .await?;
        Ok(match body {
            Some(body) => Some(serde_json::from_str(&body)?),
            None => None,
        })
    }

    async fn list_requests(&self, filter: &RequestFilter) -> Result<Vec<Request>, StoreError> {
        let bodies: Vec<String> = list_query("", filter)
            .build_query_scalar()
            .fetch_all(&self.readers)
            .await?;
        decode_all(&bodies)
    }

    async fn count_requests(&self, state: &str) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM requests WHERE state = ?")
            .bind(state)
            .fetch_one(&self.readers)
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn next_deadline(&self) -> Result<Option<Timestamp>, StoreError> {
        let deadline: Option<i64> =
            sqlx::query_scalar("SELECT MIN(expires_at) FROM requests WHERE state = 'pending'")
                .fetch_one(&self.readers)
                .await?;
        Ok(deadline.map(Timestamp::from_unix_millis))
    }

    async fn due_requests(&self, now: Timestamp) -> Result<Vec<RequestId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM requests WHERE state = 'pending' AND expires_at <= ? ORDER BY expires_at",
        )
        .bind(millis(now))
        .fetch_all(&self.readers)
        .await?;
        ids.iter()
            .map(|id| RequestId::from_str(id).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }

    async fn insert_grant(
        &self,
        claims: &GrantClaims,
        audit: Vec<EventDraft>,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let claims = claims.clone();
        let ((), events) = self
            .write(move |tx| {
                Box::pin(async move {
                    insert_grant_row(tx, &claims).await?;
                    Ok(Work::Commit((), audit))
                })
            })
            .await?;
        Ok(events)
    }

    async fn grant_status(
        &self,
        request: RequestId,
        now: Timestamp,
    ) -> Result<GrantStatus, StoreError> {
        let rows: Vec<(Option<String>, i64, Option<i64>)> = sqlx::query_as(
            "SELECT claims, expires_at, consumed_at FROM grants WHERE request_id = ? ORDER BY expires_at DESC",
        )
        .bind(request.to_string())
        .fetch_all(&self.readers)
        .await?;
        if rows.iter().any(|(_, _, consumed)| consumed.is_some()) {
            return Ok(GrantStatus::Consumed);
        }
        match rows
            .into_iter()
            .find(|(claims, expires, _)| claims.is_some() && *expires > millis(now))
        {
            Some((Some(claims), _, _)) => Ok(GrantStatus::Active(serde_json::from_str(&claims)?)),
            _ => Ok(GrantStatus::None),
        }
    }

    async fn consume_grant(
        &self,
        grant: GrantId,
        request: RequestId,
        digest: Digest,
        now: Timestamp,
        audit: Vec<EventDraft>,
    ) -> Result<(Consumed, Vec<AuditEvent>), StoreError> {
        self.write(move |tx| {
            Box::pin(async move {
                let row: Option<(String, String, i64)> =
                    sqlx::query_as("SELECT request_id, digest, expires_at FROM grants WHERE id = ?")
                        .bind(grant.to_string())
                        .fetch_optional(&mut **tx)
                        .await?;
                // Any earlier consumption of any grant of this request: an approval runs once.
                let earlier: Option<i64> = sqlx::query_scalar(
                    "SELECT MIN(consumed_at) FROM grants WHERE request_id = ? AND consumed_at IS NOT NULL",
                )
                .bind(request.to_string())
                .fetch_one(&mut **tx)
                .await?;
                let verdict = match (row, earlier) {
                    (None, _) => Consumed::Unknown,
                    (Some((granted, _, _)), _) if granted != request.to_string() => Consumed::Unknown,
                    (Some((_, granted, _)), _) if granted != digest.to_string() => Consumed::WrongDigest,
                    (Some(_), Some(at)) => Consumed::AlreadyUsed { at: Timestamp::from_unix_millis(at) },
                    (Some((_, _, expires_at)), None) if millis(now) >= expires_at => Consumed::Expired {
                        at: Timestamp::from_unix_millis(expires_at),
                    },
                    (Some(_), None) => Consumed::Ok,
                };
                if verdict != Consumed::Ok {
                    return Ok(Work::Abort(verdict));
                }
                sqlx::query("UPDATE grants SET consumed_at = ? WHERE id = ?")
                    .bind(millis(now))
                    .bind(grant.to_string())
                    .execute(&mut **tx)
                    .await?;
                Ok(Work::Commit(Consumed::Ok, audit))
            })
        })
        .await
    }

    async fn audit_after(&self, after: u64, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        let bodies: Vec<String> =
            sqlx::query_scalar("SELECT body FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?")
                .bind(i64::try_from(after).unwrap_or(i64::MAX))
                .bind(i64::from(limit))
                .fetch_all(&self.readers)
                .await?;
        decode_all(&bodies)
    }

    async fn audit_for_request(&self, id: RequestId) -> Result<Vec<AuditEvent>, StoreError> {
        let bodies: Vec<String> =
            sqlx::query_scalar("SELECT body FROM audit_events WHERE request_id = ? ORDER BY seq")
                .bind(id.to_string())
                .fetch_all(&self.readers)
                .await?;
        decode_all(&bodies)
    }

    async fn checkpoints(&self, after: u64, through: u64) -> Result<Vec<Checkpoint>, StoreError> {
        let bodies: Vec<String> = sqlx::query_scalar(
            "SELECT body FROM audit_checkpoints WHERE seq > ? AND seq <= ? ORDER BY seq",
        )
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .bind(i64::try_from(through).unwrap_or(i64::MAX))
        .fetch_all(&self.readers)
        .await?;
        decode_all(&bodies)
    }

    async fn audit_head(&self) -> Result<Option<ChainHead>, StoreError> {
        Ok(self.writer.lock().await.head)
    }

    async fn health(&self) -> Result<(), StoreError> {
        let mut writer = self.writer.lock().await;
        writer.check_files()?;
        if let Some(recent) = writer.recent() {
            return recent;
        }
        let outcome = SqliteStore::probe(&mut writer).await;
        writer.finished();
        match &outcome {
            Ok(()) => {}
            Err(error) => writer.discard(error),
        }
        writer.probed(&outcome);
        outcome
    }

    async fn save_delivery(
        &self,
        delivery: &Delivery,
        audit: Vec<EventDraft>,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let delivery = delivery.clone();
        let (_, events) = self
            .write(move |tx| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO deliveries (request_id, channel, address, reference, settled) \
                         VALUES (?, ?, ?, ?, ?) \
                         ON CONFLICT (request_id, channel, address) DO UPDATE SET \
                         reference = excluded.reference, settled = excluded.settled",
                    )
                    .bind(delivery.request.to_string())
                    .bind(&delivery.channel)
                    .bind(&delivery.address)
                    .bind(&delivery.reference)
                    .bind(delivery.settled)
                    .execute(&mut **tx)
                    .await?;
                    Ok(Work::Commit((), audit))
                })
            })
            .await?;
        Ok(events)
    }

    async fn deliveries(&self, request: RequestId) -> Result<Vec<Delivery>, StoreError> {
        let rows: Vec<(String, String, String, bool)> = sqlx::query_as(
            "SELECT channel, address, reference, settled FROM deliveries WHERE request_id = ? \
             ORDER BY channel, address",
        )
        .bind(request.to_string())
        .fetch_all(&self.readers)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(channel, address, reference, settled)| Delivery {
                request,
                channel,
                address,
                reference,
                settled,
            })
            .collect())
    }

    async fn unsettled_deliveries(&self, channel: &str) -> Result<Vec<RequestId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT request_id FROM deliveries WHERE channel = ? AND settled = 0",
        )
        .bind(channel)
        .fetch_all(&self.readers)
        .await?;
        ids.iter()
            .map(|id| {
                id.parse()
                    .map_err(|e| StoreError::Corrupt(format!("delivery of request '{id}': {e}")))
            })
            .collect()
    }
}
