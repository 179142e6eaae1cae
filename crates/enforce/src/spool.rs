//! The audit spool: every event an enforcement point decides locally (an allowed or denied
//! action, an outcome the broker could not take) is appended to a file before the action goes on,
//! and shipped to the broker in batches from there. While the broker is unreachable the events
//! wait in the file; they are shipped, in order, when it answers again, by this process or by the
//! next one to start on the same spool directory.
//!
//! The guarantee:
//! - *Nothing is lost when the process crashes*: an event is written to the spool file (one
//!   `write`, in the operating system's cache) before its action goes on, and the file is
//!   fsync'd before each batch is shipped (every 200 ms) and whenever the broker is unreachable. A
//!   power loss can lose only events written since the last fsync (a fraction of a second, while
//!   the broker answers).
//! - *Shipped once*: after the broker acknowledges a batch, the offset shipped up to is appended
//!   to the segment's cursor file and fsync'd. Only a crash between the acknowledgement and that
//!   fsync ships one batch again, and every event carries an `event_id` in its data, which the
//!   broker remembers: the events of a batch sent again are not appended twice.
//!
//! Layout: each running process appends to its own segment `events-<time>-<pid>-<random>.jsonl`,
//! locked (`flock`) while it runs (created as `.events-….creating` and renamed once locked, so
//! that no segment is ever seen unlocked by a process starting at the same moment);
//! `<segment>.cursor` lists the offsets shipped. A segment nobody holds a lock on belongs to a
//! process that stopped: the next one adopts it, ships the rest, and deletes it. Events the broker
//! refuses as malformed go to `rejected.jsonl`, never dropped.

use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use countersign_client::{Client, ClientError, ReportedEvent};
use serde_json::json;
use serde_json::value::RawValue;
use tokio::sync::Notify;

/// Events per call to the broker (it takes at most 1,000)…
const BATCH: usize = 500;
/// …and bytes: a batch stays a short call (a larger event goes alone; the broker takes up to
/// 16 MiB per call of reported events).
const BATCH_BYTES: usize = 192 * 1024;
/// How often the spool is shipped: one call to the broker (and one fsync) per interval rather
/// than per event keeps both off the tool calls' way. A full batch is shipped at once.
const SHIP_INTERVAL: Duration = Duration::from_millis(200);
/// A segment this large is replaced by a new one once everything in it is shipped.
const ROLL_BYTES: u64 = 4 * 1024 * 1024;
const REJECTED: &str = "rejected.jsonl";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("cannot use the audit spool directory {dir}: {source}")]
    Dir { dir: PathBuf, source: io::Error },
    #[error("cannot write to the audit spool {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// Where the broker's answer leaves a batch.
#[derive(Debug)]
pub enum SinkError {
    /// Not taken (unreachable, unavailable, the token refused): keep it and try again later.
    Retry(String),
    /// Refused as malformed: trying again will not help.
    Reject(String),
}

/// Where spooled events go: the broker, or a stand-in in tests. Each event is one JSON text as
/// the spool holds it (a `ReportedEvent`), sent on without being decoded.
pub trait Sink: Send + Sync {
    fn send(&self, events: &[&RawValue]) -> impl Future<Output = Result<(), SinkError>> + Send;
}

impl Sink for Client {
    async fn send(&self, events: &[&RawValue]) -> Result<(), SinkError> {
        match self.append_audit(events).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_unavailable() || matches!(e.status(), Some(401 | 403 | 429)) => {
                Err(SinkError::Retry(e.to_string()))
            }
            Err(e @ ClientError::Api { .. }) => Err(SinkError::Reject(e.to_string())),
            Err(e) => Err(SinkError::Retry(e.to_string())),
        }
    }
}

#[derive(Debug)]
struct Segment {
    file: File,
    path: PathBuf,
    written: u64,
}

/// The spool of one proxy process.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    /// Unique to this process; with `seq`, names each event (`event_id`).
    id: String,
    seq: AtomicU64,
    appended: AtomicU64,
    segment: Mutex<Segment>,
    wake: Notify,
}

impl Spool {
    /// Opens (creating) the spool directory and starts this process's own segment.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        let dir_error = |source| SpoolError::Dir {
            dir: dir.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(dir_error)?;
        let mut random = [0u8; 4];
        getrandom::fill(&mut random).map_err(|e| dir_error(io::Error::other(e.to_string())))?;
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let id = format!(
            "{millis}-{}-{}",
            std::process::id(),
            countersign_model::digest::hex_encode(&random)
        );
        let segment = new_segment(dir, &id).map_err(dir_error)?;
        Ok(Spool {
            dir: dir.to_owned(),
            id,
            seq: AtomicU64::new(0),
            appended: AtomicU64::new(0),
            segment: Mutex::new(segment),
            wake: Notify::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new event's `event_id`, unique to this process and event.
    pub fn event_id(&self) -> String {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        format!("{}-{seq}", self.id)
    }

    /// Appends an event, adding `event_id` to its data. When this returns, a crash of the proxy
    /// no longer loses the event.
    pub fn append(&self, mut event: ReportedEvent) -> Result<(), SpoolError> {
        if let Some(data) = event.data.as_object_mut() {
            data.insert("event_id".into(), json!(self.event_id()));
        }
        self.append_serialized(&event)
    }

    /// Appends an event serialized as a `ReportedEvent` whose data holds an `event_id` from
    /// [`Spool::event_id`]; the hot path's way, without building a JSON tree first.
    pub fn append_serialized<T: serde::Serialize>(&self, event: &T) -> Result<(), SpoolError> {
        let mut line = serde_json::to_vec(event).map_err(|e| SpoolError::Write {
            path: self.dir.clone(),
            source: io::Error::other(e),
        })?;
        line.push(b'\n');
        let mut segment = self.lock();
        let result = segment.file.write_all(&line);
        match result {
            Ok(()) => {
                segment.written += line.len() as u64;
                drop(segment);
                // A full batch goes at once, when calls come faster than the interval drains them.
                if self.appended.fetch_add(1, Ordering::Relaxed) % BATCH as u64 == BATCH as u64 - 1
                {
                    self.wake.notify_one();
                }
                Ok(())
            }
            Err(source) => Err(SpoolError::Write {
                path: segment.path.clone(),
                source,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Segment> {
        // A panic while holding the lock cannot leave a half-written line behind that matters:
        // readers only take complete lines.
        self.segment.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn own(&self) -> (PathBuf, u64) {
        let segment = self.lock();
        (segment.path.clone(), segment.written)
    }

    /// Starts a new segment if the current one is large and everything in it has been shipped;
    /// the old one is deleted.
    fn roll_if_shipped(&self, shipped: u64) {
        let mut segment = self.lock();
        if segment.written < ROLL_BYTES || segment.written != shipped {
            return;
        }
        let Ok(next) = new_segment(&self.dir, &self.id) else {
            return;
        };
        let old = std::mem::replace(&mut *segment, next);
        drop(segment);
        remove_segment(&old.path);
    }
}

fn new_segment(dir: &Path, id: &str) -> io::Result<Segment> {
    // A new name each time: several segments of one process may exist until shipped.
    let mut n = 0u32;
    loop {
        let path = dir.join(format!("events-{id}-{n}.jsonl"));
        if path.symlink_metadata().is_ok() {
            n += 1;
            continue;
        }
        // Created and locked under a name the orphan sweep never looks at, then renamed: a
        // segment is never visible unlocked, so another proxy starting at the same moment cannot
        // take it for a stopped proxy's (and lock it, or delete it) before its owner locks it.
        let creating = dir.join(format!(".events-{id}-{n}.creating"));
        let file = match OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&creating)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                n += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        let locked = file
            .try_lock()
            .map_err(io::Error::from)
            .and_then(|()| fs::rename(&creating, &path));
        if let Err(e) = locked {
            let _ = fs::remove_file(&creating);
            return Err(e);
        }
        sync_dir(dir);
        return Ok(Segment {
            file,
            path,
            written: 0,
        });
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
}

fn cursor_path(segment: &Path) -> PathBuf {
    let mut name = segment.as_os_str().to_owned();
    name.push(".cursor");
    PathBuf::from(name)
}

/// The offset shipped up to: the last complete line of the cursor file.
fn read_cursor(segment: &Path) -> u64 {
    let text = fs::read_to_string(cursor_path(segment)).unwrap_or_default();
    let complete = text.rsplit_once('\n').map_or("", |(complete, _)| complete);
    complete
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .next_back()
        .unwrap_or(0)
}

fn write_cursor(segment: &Path, offset: u64) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(cursor_path(segment))?;
    file.write_all(format!("{offset}\n").as_bytes())?;
    file.sync_data()
}

/// Deletes a shipped segment, then its cursor: a cursor without its segment is harmless, a
/// segment without its cursor would be shipped again.
fn remove_segment(path: &Path) {
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(cursor_path(path));
    if let Some(dir) = path.parent() {
        sync_dir(dir);
    }
}

/// Complete lines of `path` from `from`, at most `BATCH` of them and `BATCH_BYTES` (or one line),
/// with the offset after the last one.
/// The file is fsync'd first, so what is about to be shipped is also durable here.
fn read_batch(path: &Path, from: u64) -> io::Result<(Vec<Vec<u8>>, u64)> {
    let mut file = File::open(path)?;
    file.sync_data()?;
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::new();
    file.take(8 * 1024 * 1024).read_to_end(&mut bytes)?;
    let mut lines = Vec::new();
    let mut end = 0usize;
    for (i, _) in bytes.iter().enumerate().filter(|&(_, &b)| b == b'\n') {
        if !lines.is_empty() && i >= BATCH_BYTES {
            break;
        }
        lines.push(bytes[end..i].to_vec());
        end = i + 1;
        if lines.len() == BATCH {
            break;
        }
    }
    Ok((lines, from + end as u64))
}

/// Ships spooled events to a sink: this process's segment, and the segments of proxies that
/// stopped before shipping theirs.
#[derive(Debug)]
pub struct Shipper<S> {
    spool: Arc<Spool>,
    sink: S,
    /// Offset of this process's current segment shipped so far.
    shipped: u64,
    shipped_path: PathBuf,
}

/// What a round of shipping did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shipped {
    pub events: usize,
    pub rejected: usize,
}

impl<S: Sink> Shipper<S> {
    pub fn new(spool: Arc<Spool>, sink: S) -> Self {
        let shipped_path = spool.own().0;
        Shipper {
            spool,
            sink,
            shipped: 0,
            shipped_path,
        }
    }

    /// Ships everything this process spooled before the call. `Err` (the broker did not take a
    /// batch) leaves the rest in the spool for the next try.
    ///
    /// Events spooled while a batch is on its way wait for the next round: chasing them batch
    /// after batch would cost a broker transaction and two fsyncs per handful of calls.
    pub async fn ship_own(&mut self) -> Result<Shipped, SinkError> {
        let (path, written) = self.spool.own();
        if path != self.shipped_path {
            self.shipped_path = path.clone();
            self.shipped = 0;
        } else if written == self.shipped {
            return Ok(Shipped::default());
        }
        let mut total = Shipped::default();
        loop {
            let (sent, offset) =
                ship_batch(&self.sink, &self.spool.dir, &path, self.shipped).await?;
            self.shipped = offset;
            total.events += sent.events;
            total.rejected += sent.rejected;
            if sent.events + sent.rejected == 0 || offset >= written {
                self.spool.roll_if_shipped(self.shipped);
                return Ok(total);
            }
        }
    }

    /// Adopts and ships the segments of proxies that are no longer running, then deletes them.
    pub async fn adopt_orphans(&mut self) -> Result<Shipped, SinkError> {
        let own = self.spool.own().0;
        let mut names: Vec<PathBuf> = fs::read_dir(&self.spool.dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.path())
                    .filter(|path| {
                        path.extension().is_some_and(|ext| ext == "jsonl")
                            && path.file_name().is_some_and(|n| n != REJECTED)
                            && *path != own
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        let mut total = Shipped::default();
        for path in names {
            let Ok(file) = File::open(&path) else {
                continue;
            };
            if file.try_lock().is_err() {
                continue; // a running proxy's, or this process's own older segment
            }
            if !still_named(&file, &path) {
                continue; // adopted and deleted by another proxy between listing and locking
            }
            let mut offset = read_cursor(&path);
            loop {
                let (sent, next) = ship_batch(&self.sink, &self.spool.dir, &path, offset).await?;
                offset = next;
                total.events += sent.events;
                total.rejected += sent.rejected;
                if sent.events + sent.rejected == 0 {
                    break;
                }
            }
            let length = fs::metadata(&path).map_or(0, |m| m.len());
            if length > offset {
                tracing::warn!(
                    "the spooled segment {} ends with {} bytes of an unfinished event (written when \
                     a proxy stopped mid-write); they are dropped with the segment",
                    path.display(),
                    length - offset
                );
            }
            remove_segment(&path);
            drop(file);
        }
        remove_stray_cursors(&self.spool.dir);
        Ok(total)
    }

    /// One round: this process's events, then any orphans.
    pub async fn ship_once(&mut self) -> Result<Shipped, SinkError> {
        let own = self.ship_own().await?;
        let orphans = self.adopt_orphans().await?;
        Ok(Shipped {
            events: own.events + orphans.events,
            rejected: own.rejected + orphans.rejected,
        })
    }

    /// Ships until `stop` fires: every `SHIP_INTERVAL`, at once when a batch is full, and after
    /// a growing pause while the broker is unreachable. Orphans are looked for every minute.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) -> Self {
        let mut backoff = Duration::from_millis(250);
        let mut outage = false;
        let mut next_adoption = tokio::time::Instant::now();
        loop {
            let round = if tokio::time::Instant::now() >= next_adoption {
                next_adoption += Duration::from_secs(60);
                self.ship_once().await
            } else {
                self.ship_own().await
            };
            let pause = match round {
                Ok(_) => {
                    if outage {
                        tracing::info!("the broker takes audit events again; the spool is shipped");
                    }
                    outage = false;
                    backoff = Duration::from_millis(250);
                    SHIP_INTERVAL
                }
                Err(SinkError::Retry(reason) | SinkError::Reject(reason)) => {
                    if !outage {
                        tracing::warn!(
                            "audit events cannot be sent to the broker ({reason}); they are kept in \
                             {} and sent when it answers",
                            self.spool.dir.display()
                        );
                    }
                    outage = true;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    backoff
                }
            };
            tokio::select! {
                () = self.spool.wake.notified(), if !outage => {}
                () = tokio::time::sleep(pause) => {}
                _ = stop.changed() => return self,
            }
        }
    }

    /// At a clean exit: ships what is left and, when everything went, deletes this process's
    /// segment. What could not be shipped stays for the next proxy to adopt.
    pub async fn finish(mut self) -> Result<(), SinkError> {
        self.ship_own().await?;
        let segment = self.spool.lock();
        if segment.written == self.shipped && segment.path == self.shipped_path {
            remove_segment(&segment.path);
        }
        Ok(())
    }
}

/// Ships one batch of `path` from `from`; returns what was sent and the next offset (advanced in
/// the cursor file). A batch refused as malformed is sent event by event, and the events refused
/// alone are kept in `rejected.jsonl`.
async fn ship_batch<S: Sink>(
    sink: &S,
    dir: &Path,
    path: &Path,
    from: u64,
) -> Result<(Shipped, u64), SinkError> {
    let owned = path.to_owned();
    let (lines, to) = off_thread(move || read_batch(&owned, from))
        .await
        .map_err(|e| SinkError::Retry(format!("cannot read {}: {e}", path.display())))?;
    if lines.is_empty() {
        return Ok((Shipped::default(), from));
    }
    let mut shipped = Shipped::default();
    let mut events = Vec::with_capacity(lines.len());
    let mut unreadable = Vec::new();
    // Checked to be one JSON text each (so that no line can add events of its own to the
    // batch), not decoded: the broker checks each event's fields.
    for line in &lines {
        match serde_json::from_slice::<&RawValue>(line) {
            Ok(event) => events.push(event),
            Err(_) => unreadable.push(line.clone()),
        }
    }
    match sink.send(&events).await {
        Ok(()) => shipped.events += events.len(),
        Err(SinkError::Retry(reason)) => return Err(SinkError::Retry(reason)),
        Err(SinkError::Reject(_)) => {
            for event in &events {
                match sink.send(std::slice::from_ref(event)).await {
                    Ok(()) => shipped.events += 1,
                    Err(SinkError::Retry(reason)) => return Err(SinkError::Retry(reason)),
                    Err(SinkError::Reject(reason)) => {
                        tracing::error!("the broker refuses a spooled audit event: {reason}");
                        unreadable.push(event.get().as_bytes().to_vec());
                    }
                }
            }
        }
    }
    if !unreadable.is_empty() {
        shipped.rejected += unreadable.len();
        let dir = dir.to_owned();
        off_thread(move || keep_rejected(&dir, &unreadable))
            .await
            .map_err(|e| SinkError::Retry(e.to_string()))?;
    }
    let owned = path.to_owned();
    off_thread(move || write_cursor(&owned, to))
        .await
        .map_err(|e| {
            SinkError::Retry(format!(
                "cannot record what was shipped of {}: {e}",
                path.display()
            ))
        })?;
    Ok((shipped, to))
}

/// Runs file work that waits on the disk (fsync) on tokio's blocking threads: on the proxy's one
/// runtime thread it would hold up every call being relayed.
async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)))
}

/// Whether `path` still names the open `file`: a segment another proxy adopted and deleted
/// while this one waited to lock it is gone, or the name is another file's.
fn still_named(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

/// Cursor files whose segment is gone (deleted by a proxy that stopped before the cursor), and
/// segments that a proxy stopped while creating (before they had a segment's name, so empty).
fn remove_stray_cursors(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for path in entries.filter_map(Result::ok).map(|entry| entry.path()) {
        let stray = match path.extension() {
            Some(ext) if ext == "cursor" => !path.with_extension("").exists(),
            Some(ext) if ext == "creating" => abandoned(&path),
            _ => false,
        };
        if stray {
            let _ = fs::remove_file(path);
        }
    }
}

/// A segment being created is renamed microseconds after it appears, locked all along: one that
/// is unlocked and a minute old was left by a proxy that stopped in between.
fn abandoned(creating: &Path) -> bool {
    let old = fs::metadata(creating)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|modified| modified.elapsed().ok())
        .is_some_and(|age| age > Duration::from_secs(60));
    old && File::open(creating).is_ok_and(|file| file.try_lock().is_ok())
}

fn keep_rejected(dir: &Path, lines: &[Vec<u8>]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.join(REJECTED))?;
    for line in lines {
        file.write_all(line)?;
        file.write_all(b"\n")?;
    }
    file.sync_data()
}
