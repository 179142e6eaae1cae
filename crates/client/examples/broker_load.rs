//! Load generator for `bench/broker.sh`: drives a running broker through `countersign-client`,
//! the way a real Rust enforcement point sees it, and prints one table.
//!
//! Two measurements, one after the other, against the same broker:
//!
//! - **allowed decisions**: for each concurrency C (default 1, 16, 64), C tasks share one client
//!   (one connection pool, HTTP/1.1 keep-alive) and loop `POST /v1/actions` with a `shell.exec`
//!   `echo bench-…` action the policy allows, each with its own argument (so every call has its
//!   own digest and its own audit event). After a warm-up, every call that completes inside the
//!   measured window counts: decisions/s = completed calls / window, and latency is per call, as
//!   the client sees it. The broker answers 200 only once the decision's audit event is durable.
//! - **wake-up**: N gated requests (`pg_dump bench-…`, one approval from group `dba`). For each:
//!   open it (`202`), start a waiter (`GET /v1/requests/{id}/wait?timeout=30s`), give it time to
//!   park, post the approving review, and measure from the moment the review's response arrives
//!   to the moment the waiter's response arrives (negative: the waiter won the race; clamped to 0
//!   and counted). Run twice: with the requester waiting (what `countersign run` does; the broker
//!   then also issues and stores a grant before answering) and with a human watcher waiting (the
//!   bare wake-up path, no grant). P requests are in flight at a time (default 8).
//!
//! Configuration: the environment gives the server and tokens (`BENCH_SERVER`,
//! `BENCH_AGENT_TOKEN`, `BENCH_REVIEWER_TOKEN`, `BENCH_WATCHER_TOKEN`); flags give the knobs
//! (`--clients 1,16,64 --warmup-secs 1 --secs 5 --wakeups 1000 --wake-parallel 8 --park-ms 20`).
//! Exits 1 if any call failed or answered something unexpected.

#![allow(clippy::print_stdout)] // Printing the table is the point.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use countersign_client::{ActionRequest, Client, EvaluateResponse, RequestState, Verdict};
use serde_json::json;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone)]
struct Settings {
    server: String,
    agent_token: String,
    reviewer_token: String,
    watcher_token: String,
    clients: Vec<usize>,
    warmup: Duration,
    window: Duration,
    wakeups: usize,
    wake_parallel: usize,
    park: Duration,
}

fn env(name: &str) -> Result<String, BoxError> {
    std::env::var(name).map_err(|_| format!("set {name} (bench/broker.sh does)").into())
}

fn settings() -> Result<Settings, BoxError> {
    let mut s = Settings {
        server: env("BENCH_SERVER")?,
        agent_token: env("BENCH_AGENT_TOKEN")?,
        reviewer_token: env("BENCH_REVIEWER_TOKEN")?,
        watcher_token: env("BENCH_WATCHER_TOKEN")?,
        clients: vec![1, 16, 64],
        warmup: Duration::from_secs(1),
        window: Duration::from_secs(5),
        wakeups: 1000,
        wake_parallel: 8,
        park: Duration::from_millis(20),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || -> Result<u64, BoxError> {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: '{value}' is not a whole number").into())
        };
        match flag.as_str() {
            "--clients" => {
                // An empty list skips the allowed-decisions phase.
                s.clients = value
                    .split(',')
                    .filter(|c| !c.trim().is_empty())
                    .map(|c| c.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| format!("--clients: '{value}' is not a list like 1,16,64"))?;
            }
            "--warmup-secs" => s.warmup = Duration::from_secs(number()?),
            "--secs" => s.window = Duration::from_secs(number()?.max(1)),
            "--wakeups" => s.wakeups = usize::try_from(number()?)?,
            "--wake-parallel" => s.wake_parallel = usize::try_from(number()?.max(1))?,
            "--park-ms" => s.park = Duration::from_millis(number()?),
            _ => {
                return Err(format!(
                    "unknown flag {flag}; known: --clients --warmup-secs --secs --wakeups \
                     --wake-parallel --park-ms"
                )
                .into());
            }
        }
    }
    Ok(s)
}

/// Latencies in nanoseconds, sorted, with nearest-rank percentiles.
#[derive(Debug, Default)]
struct Latencies(Vec<u64>);

impl Latencies {
    fn sorted(mut v: Vec<u64>) -> Latencies {
        v.sort_unstable();
        Latencies(v)
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1] as f64 / 1e6
    }

    fn max_ms(&self) -> f64 {
        self.0.last().map_or(f64::NAN, |&n| n as f64 / 1e6)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[derive(Debug)]
struct AllowedRow {
    clients: usize,
    per_second: f64,
    latencies: Latencies,
}

/// C tasks sharing one client loop allowed evaluations for warm-up + window.
async fn allowed(s: &Settings, clients: usize) -> Result<AllowedRow, BoxError> {
    let client = Client::new(&s.server, &s.agent_token)?;
    let start = Instant::now();
    let from = start + s.warmup;
    let until = from + s.window;
    let mut tasks = Vec::with_capacity(clients);
    for task in 0..clients {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(65_536);
            let mut i: u64 = 0;
            loop {
                let sent = Instant::now();
                if sent >= until {
                    return Ok::<_, BoxError>(samples);
                }
                let mut action = ActionRequest::new("shell.exec", "host:bench");
                action.details = json!({"argv": ["echo", format!("bench-{clients}-{task}-{i}")], "program": "/usr/bin/echo"});
                i += 1;
                let answer = client.evaluate(&action, None).await?;
                let done = Instant::now();
                if !matches!(answer, EvaluateResponse::Allow(_)) {
                    return Err(format!(
                        "expected allow for `echo`, got {:?}",
                        answer.explanation()
                    )
                    .into());
                }
                if done >= from && done <= until {
                    samples.push(nanos(done - sent));
                }
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(AllowedRow {
        clients,
        per_second: all.len() as f64 / s.window.as_secs_f64(),
        latencies: Latencies::sorted(all),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiter {
    /// The agent that asked, as `countersign run` waits; its answer carries a fresh grant.
    Requester,
    /// A human watching the request; no grant.
    Watcher,
}

#[derive(Debug)]
struct WakeRow {
    waiter: Waiter,
    latencies: Latencies,
    /// How often the waiter's response arrived before the review's (clamped to 0).
    waiter_first: usize,
    elapsed: Duration,
}

/// Opens, waits on and approves one gated request; returns review→waiter in signed nanoseconds.
async fn one_wakeup(
    agent: &Client,
    reviewer: &Client,
    waiting: &Client,
    waiter: Waiter,
    park: Duration,
    n: usize,
) -> Result<i128, BoxError> {
    let mut action = ActionRequest::new("shell.exec", "db:bench/customers");
    action.details = json!({"argv": ["pg_dump", format!("bench-{n}")]});
    let id = match agent.evaluate(&action, None).await? {
        EvaluateResponse::RequireApproval(gated) => gated.request.id,
        other => {
            return Err(format!(
                "expected require_approval for `pg_dump`, got {:?}",
                other.explanation()
            )
            .into());
        }
    };
    let waiting = waiting.clone();
    let wait = tokio::spawn(async move {
        let view = waiting.wait(id, Duration::from_secs(30)).await;
        (Instant::now(), view)
    });
    tokio::time::sleep(park).await;
    let reviewed = reviewer.review(id, Verdict::Approve, None).await?;
    let review_done = Instant::now();
    if reviewed.state != RequestState::Approved {
        return Err(format!("request {id} is {:?} after the approval", reviewed.state).into());
    }
    let (woke, view) = wait.await?;
    let view = view?;
    if view.state != RequestState::Approved {
        return Err(format!("the waiter on {id} returned {:?}", view.state).into());
    }
    if (waiter == Waiter::Requester) != view.grant.is_some() {
        return Err(format!("the {waiter:?} waiter on {id} got grant {:?}", view.grant).into());
    }
    Ok(if woke >= review_done {
        i128::from(nanos(woke - review_done))
    } else {
        -i128::from(nanos(review_done - woke))
    })
}

async fn wakeups(s: &Settings, waiter: Waiter) -> Result<WakeRow, BoxError> {
    let agent = Client::new(&s.server, &s.agent_token)?;
    let reviewer = Client::new(&s.server, &s.reviewer_token)?;
    let waiting = match waiter {
        Waiter::Requester => agent.clone(),
        Waiter::Watcher => Client::new(&s.server, &s.watcher_token)?,
    };
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..s.wake_parallel {
        let (agent, reviewer, waiting, next) = (
            agent.clone(),
            reviewer.clone(),
            waiting.clone(),
            Arc::clone(&next),
        );
        let (total, park) = (s.wakeups, s.park);
        workers.push(tokio::spawn(async move {
            let mut deltas = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return Ok::<_, BoxError>(deltas);
                }
                deltas.push(one_wakeup(&agent, &reviewer, &waiting, waiter, park, n).await?);
            }
        }));
    }
    let mut deltas = Vec::new();
    for worker in workers {
        deltas.extend(worker.await??);
    }
    let waiter_first = deltas.iter().filter(|&&d| d < 0).count();
    let clamped = deltas
        .iter()
        .map(|&d| u64::try_from(d.max(0)).unwrap_or(u64::MAX))
        .collect();
    Ok(WakeRow {
        waiter,
        latencies: Latencies::sorted(clamped),
        waiter_first,
        elapsed: start.elapsed(),
    })
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

async fn run() -> Result<(), BoxError> {
    let s = settings()?;
    Client::new(&s.server, &s.agent_token)?.healthz().await?;

    let mut rows = Vec::new();
    for &c in &s.clients {
        eprintln!(
            "broker_load: allowed decisions, {c} client(s), {:?} warm-up + {:?}…",
            s.warmup, s.window
        );
        rows.push(allowed(&s, c).await?);
    }
    let mut wakes = Vec::new();
    let waiters = if s.wakeups == 0 {
        Vec::new()
    } else {
        vec![Waiter::Requester, Waiter::Watcher]
    };
    for waiter in waiters {
        eprintln!(
            "broker_load: wake-up, {} requests, {waiter:?} waiting, {} in parallel…",
            s.wakeups, s.wake_parallel
        );
        wakes.push(wakeups(&s, waiter).await?);
    }

    if !rows.is_empty() {
        println!();
        println!(
            "Allowed decisions: POST /v1/actions, each answered once its audit event is durable \
             (group commit; SQLite WAL, synchronous=FULL)"
        );
        println!(
            "{:?} warm-up, then every call completing in a {:?} window; one connection pool per row",
            s.warmup, s.window
        );
        println!();
        println!(
            "{:>8}  {:>12}  {:>8}  {:>8}  {:>8}  {:>9}",
            "clients", "decisions/s", "p50 ms", "p99 ms", "max ms", "calls"
        );
        for r in &rows {
            println!(
                "{:>8}  {:>12.0}  {:>8.2}  {:>8.2}  {:>8.2}  {:>9}",
                r.clients,
                r.per_second,
                r.latencies.percentile_ms(50.0),
                r.latencies.percentile_ms(99.0),
                r.latencies.max_ms(),
                r.latencies.0.len()
            );
        }
    }
    if !wakes.is_empty() {
        println!();
        println!(
            "Wake-up: from the approving review's response to the waiter's response \
             ({} requests per row, {} in flight at a time, waiter parked {:?} before the review)",
            s.wakeups, s.wake_parallel, s.park
        );
        println!();
        println!(
            "{:<30}  {:>8}  {:>8}  {:>8}  {:>12}  {:>8}",
            "waiter", "p50 ms", "p99 ms", "max ms", "waiter first", "run s"
        );
        for w in &wakes {
            let name = match w.waiter {
                Waiter::Requester => "requester (answer has a grant)",
                Waiter::Watcher => "human watcher (no grant)",
            };
            println!(
                "{:<30}  {:>8.2}  {:>8.2}  {:>8.2}  {:>12}  {:>8.1}",
                name,
                w.latencies.percentile_ms(50.0),
                w.latencies.percentile_ms(99.0),
                w.latencies.max_ms(),
                w.waiter_first,
                w.elapsed.as_secs_f64()
            );
        }
    }
    println!();
    if let Some(r) = rows.iter().find(|r| r.clients == 16) {
        let p99 = r.latencies.percentile_ms(99.0);
        println!(
            "target: >= 10,000 durable allowed decisions/s at 16 clients, p99 < 5 ms: {} \
             ({:.0}/s, p99 {p99:.2} ms)",
            verdict(r.per_second >= 10_000.0 && p99 < 5.0),
            r.per_second
        );
    }
    if let Some(w) = wakes.iter().find(|w| w.waiter == Waiter::Requester) {
        let p99 = w.latencies.percentile_ms(99.0);
        println!(
            "target: wake-up p99 < 5 ms (requester waiting): {} (p99 {p99:.2} ms)",
            verdict(p99 < 5.0)
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("broker_load: {error}");
            ExitCode::FAILURE
        }
    }
}
