#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.
//! The audit spool: events survive the broker being down and the proxy stopping, and each is
//! shipped once, in order.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use countersign_client::{ReportedEvent, ReportedEventType};
use countersign_enforce::spool::{Shipped, Shipper, Sink, SinkError, Spool};
use serde_json::json;
use serde_json::value::RawValue;

/// A broker stand-in that can be down, and remembers what it took.
#[derive(Clone, Default)]
struct Broker {
    down: Arc<AtomicBool>,
    taken: Arc<Mutex<Vec<ReportedEvent>>>,
    /// The size of each batch taken, in bytes of events.
    batches: Arc<Mutex<Vec<usize>>>,
}

impl Sink for Broker {
    async fn send(&self, events: &[&RawValue]) -> Result<(), SinkError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(SinkError::Retry("connection refused".into()));
        }
        // The broker decodes what the spool sends on undecoded, and refuses what it cannot take.
        let mut decoded = Vec::new();
        for event in events {
            match serde_json::from_str::<ReportedEvent>(event.get()) {
                Ok(event) if event.explanation != "malformed" => decoded.push(event),
                _ => return Err(SinkError::Reject("bad event".into())),
            }
        }
        self.taken.lock().unwrap().extend(decoded);
        let bytes = events.iter().map(|e| e.get().len()).sum();
        self.batches.lock().unwrap().push(bytes);
        Ok(())
    }
}

impl Broker {
    fn explanations(&self) -> Vec<String> {
        self.taken
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.explanation.clone())
            .collect()
    }
}

fn event(n: &str) -> ReportedEvent {
    ReportedEvent {
        kind: ReportedEventType::ActionAllowed,
        request_id: None,
        data: json!({"n": n}),
        explanation: n.to_owned(),
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("countersign-spool-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn segments(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "jsonl")
        })
        .count()
}

#[tokio::test]
async fn while_the_broker_is_down_events_wait_and_then_go_once_in_order() {
    let dir = temp_dir("down-up");
    let spool = Arc::new(Spool::open(&dir).unwrap());
    let broker = Broker::default();
    let mut shipper = Shipper::new(Arc::clone(&spool), broker.clone());
    broker.down.store(true, Ordering::SeqCst);
    for n in ["a", "b", "c"] {
        spool.append(event(n)).unwrap();
    }
    assert!(matches!(
        shipper.ship_once().await,
        Err(SinkError::Retry(_))
    ));
    assert!(broker.explanations().is_empty());

    broker.down.store(false, Ordering::SeqCst);
    spool.append(event("d")).unwrap();
    assert_eq!(
        shipper.ship_once().await.unwrap(),
        Shipped {
            events: 4,
            rejected: 0
        }
    );
    assert_eq!(broker.explanations(), ["a", "b", "c", "d"]);
    assert_eq!(
        shipper.ship_once().await.unwrap(),
        Shipped::default(),
        "nothing twice"
    );

    let ids: Vec<String> = broker
        .taken
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.data["event_id"].as_str().unwrap().to_owned())
        .collect();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 4, "every event has its own id: {ids:?}");
    shipper.finish().await.unwrap();
    assert_eq!(
        segments(&dir),
        0,
        "a clean exit with everything shipped leaves nothing behind"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_stopped_proxys_events_are_shipped_by_the_next_one() {
    let dir = temp_dir("restart");
    let broker = Broker::default();
    {
        // The first proxy ships one event, spools two more, and dies before shipping them.
        let spool = Arc::new(Spool::open(&dir).unwrap());
        let mut shipper = Shipper::new(Arc::clone(&spool), broker.clone());
        spool.append(event("1")).unwrap();
        shipper.ship_own().await.unwrap();
        broker.down.store(true, Ordering::SeqCst);
        spool.append(event("2")).unwrap();
        spool.append(event("3")).unwrap();
        assert!(shipper.ship_own().await.is_err());
    }
    // A half-written last line (a crash mid-write) is left out, not shipped garbled.
    let segment = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap()
        .write_all(b"{\"type\":\"action.all")
        .unwrap();

    broker.down.store(false, Ordering::SeqCst);
    let spool = Arc::new(Spool::open(&dir).unwrap());
    let mut shipper = Shipper::new(Arc::clone(&spool), broker.clone());
    spool.append(event("4")).unwrap();
    assert_eq!(shipper.ship_once().await.unwrap().events, 3);
    assert_eq!(broker.explanations(), ["1", "4", "2", "3"]);
    assert!(
        !segment.exists(),
        "the adopted segment is deleted once shipped"
    );
    assert_eq!(shipper.ship_once().await.unwrap(), Shipped::default());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_running_proxys_segment_is_not_adopted() {
    let dir = temp_dir("live");
    let broker = Broker::default();
    let first = Arc::new(Spool::open(&dir).unwrap());
    first.append(event("mine")).unwrap();
    let second = Arc::new(Spool::open(&dir).unwrap());
    let mut shipper = Shipper::new(second, broker.clone());
    assert_eq!(shipper.ship_once().await.unwrap(), Shipped::default());
    assert!(broker.explanations().is_empty());
    drop(first);
    assert_eq!(shipper.ship_once().await.unwrap().events, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_event_the_broker_refuses_is_kept_aside_and_the_rest_go_on() {
    let dir = temp_dir("reject");
    let spool = Arc::new(Spool::open(&dir).unwrap());
    let broker = Broker::default();
    let mut shipper = Shipper::new(Arc::clone(&spool), broker.clone());
    for n in ["ok-1", "malformed", "ok-2"] {
        spool.append(event(n)).unwrap();
    }
    assert_eq!(
        shipper.ship_once().await.unwrap(),
        Shipped {
            events: 2,
            rejected: 1
        }
    );
    assert_eq!(broker.explanations(), ["ok-1", "ok-2"]);
    let rejected = std::fs::read_to_string(dir.join("rejected.jsonl")).unwrap();
    assert!(
        rejected.contains("\"explanation\":\"malformed\""),
        "{rejected}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_line_holding_more_than_one_event_is_kept_aside_not_split() {
    let dir = temp_dir("two-in-one");
    std::fs::create_dir_all(&dir).unwrap();
    // A segment left by a stopped proxy, with a line someone edited into two events.
    let line = |n: &str| serde_json::to_string(&event(n)).unwrap();
    let text = format!(
        "{}\n{},{}\n{}\n",
        line("before"),
        line("smuggled-1"),
        line("smuggled-2"),
        line("after")
    );
    std::fs::write(dir.join("events-0-1-stopped-0.jsonl"), text).unwrap();
    let broker = Broker::default();
    let mut shipper = Shipper::new(Arc::new(Spool::open(&dir).unwrap()), broker.clone());
    assert_eq!(
        shipper.ship_once().await.unwrap(),
        Shipped {
            events: 2,
            rejected: 1
        }
    );
    assert_eq!(broker.explanations(), ["before", "after"]);
    let rejected = std::fs::read_to_string(dir.join("rejected.jsonl")).unwrap();
    assert!(rejected.contains("smuggled-2"), "{rejected}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A broker that is slow enough for a call to be spooled while a batch is on its way.
struct Busy {
    broker: Broker,
    spool: Arc<Spool>,
    during: Mutex<Option<&'static str>>,
}

impl Sink for Busy {
    async fn send(&self, events: &[&RawValue]) -> Result<(), SinkError> {
        if let Some(n) = self.during.lock().unwrap().take() {
            self.spool.append(event(n)).unwrap();
        }
        self.broker.send(events).await
    }
}

#[tokio::test]
async fn events_spooled_while_a_batch_travels_go_in_the_next_round() {
    let dir = temp_dir("travel");
    let spool = Arc::new(Spool::open(&dir).unwrap());
    let broker = Broker::default();
    let busy = Busy {
        broker: broker.clone(),
        spool: Arc::clone(&spool),
        during: Mutex::new(Some("late")),
    };
    let mut shipper = Shipper::new(Arc::clone(&spool), busy);
    spool.append(event("early")).unwrap();
    assert_eq!(shipper.ship_own().await.unwrap().events, 1);
    assert_eq!(broker.explanations(), ["early"]);
    assert_eq!(shipper.ship_own().await.unwrap().events, 1);
    assert_eq!(broker.explanations(), ["early", "late"]);
    assert_eq!(shipper.ship_own().await.unwrap(), Shipped::default());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn batches_fit_in_what_the_broker_takes_and_all_go_in_one_round() {
    let dir = temp_dir("big");
    let spool = Arc::new(Spool::open(&dir).unwrap());
    let broker = Broker::default();
    let mut shipper = Shipper::new(Arc::clone(&spool), broker.clone());
    // Ten events of 60 KiB: the broker takes request bodies of at most 256 KiB.
    for n in 0..10 {
        let mut big = event(&n.to_string());
        big.data = json!({"arguments": "x".repeat(60 * 1024)});
        spool.append(big).unwrap();
    }
    assert_eq!(shipper.ship_own().await.unwrap().events, 10);
    let batches = broker.batches.lock().unwrap().clone();
    assert!(batches.len() > 1, "{batches:?}");
    assert!(
        batches.iter().all(|&bytes| bytes < 256 * 1024),
        "{batches:?}"
    );
    assert_eq!(broker.explanations().len(), 10);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Desktop MCP clients start all their servers at once, on the default spool: every start
/// succeeds while the others sweep the directory for stopped proxies' segments, no sweep trips
/// over a segment another one just finished, and every event is shipped exactly once.
#[test]
fn proxies_starting_at_once_on_one_spool_all_start() {
    const PROXIES: usize = 16;
    const ROUNDS: usize = 40;
    let dir = temp_dir("stampede");
    std::fs::create_dir_all(&dir).unwrap();
    let broker = Broker::default();
    let barrier = Arc::new(std::sync::Barrier::new(PROXIES));
    let threads: Vec<_> = (0..PROXIES)
        .map(|proxy| {
            let (dir, broker, barrier) = (dir.clone(), broker.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let mut failures = Vec::new();
                for round in 0..ROUNDS {
                    barrier.wait();
                    // A proxy's life: open its segment, spool a call, look for orphans (as its
                    // shipper does first), stop cleanly.
                    let spool = match Spool::open(&dir) {
                        Ok(spool) => Arc::new(spool),
                        Err(e) => {
                            failures.push(format!("start: {e}"));
                            continue;
                        }
                    };
                    spool.append(event(&format!("{proxy}-{round}"))).unwrap();
                    let mut shipper = Shipper::new(Arc::clone(&spool), broker.clone());
                    if let Err(e) = runtime.block_on(shipper.adopt_orphans()) {
                        failures.push(format!("sweep: {e:?}"));
                    }
                    if let Err(e) = runtime.block_on(shipper.finish()) {
                        failures.push(format!("stop: {e:?}"));
                    }
                }
                failures
            })
        })
        .collect();
    let failures: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} starts went wrong: {failures:#?}",
        failures.len(),
        PROXIES * ROUNDS
    );
    let mut shipped = broker.explanations();
    shipped.sort();
    let mut expected: Vec<String> = (0..PROXIES)
        .flat_map(|p| (0..ROUNDS).map(move |r| format!("{p}-{r}")))
        .collect();
    expected.sort();
    assert_eq!(shipped, expected, "every event shipped exactly once");
    assert_eq!(segments(&dir), 0, "every stopped proxy cleaned up");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_segment_left_half_created_is_removed_once_old_and_a_fresh_one_is_left_alone() {
    let dir = temp_dir("creating");
    std::fs::create_dir_all(&dir).unwrap();
    // A proxy stopped between creating its segment and naming it; another is doing it now.
    let stopped = dir.join(".events-0-1-stopped-0.creating");
    let starting = dir.join(".events-0-2-starting-0.creating");
    for path in [&stopped, &starting] {
        std::fs::write(path, "").unwrap();
    }
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&stopped)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    let mut shipper = Shipper::new(Arc::new(Spool::open(&dir).unwrap()), Broker::default());
    assert_eq!(shipper.ship_once().await.unwrap(), Shipped::default());
    assert!(!stopped.exists(), "an abandoned one is removed");
    assert!(starting.exists(), "one being created is not touched");
    let _ = std::fs::remove_dir_all(&dir);
}
