//! Prometheus metrics, kept in atomics and written in the text exposition format by hand: six
//! families do not justify a metrics framework.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use countersign_policy::Outcome;

/// Upper bounds, in seconds, of the time-to-decision histogram.
const BUCKETS: [f64; 10] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0,
];

#[derive(Debug, Default)]
pub struct Metrics {
    decisions: [AtomicU64; 3],
    /// The part of `decisions` an enforcement point made itself and reported.
    reported: [AtomicU64; 3],
    pending: AtomicI64,
    decided_buckets: [AtomicU64; BUCKETS.len()],
    decided_count: AtomicU64,
    decided_sum_millis: AtomicU64,
    unavailable: AtomicU64,
    report_mismatches: AtomicU64,
}

fn index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Allow => 0,
        Outcome::RequireApproval => 1,
        Outcome::Deny => 2,
    }
}

impl Metrics {
    pub fn decision(&self, outcome: Outcome) {
        self.decisions[index(outcome)].fetch_add(1, Ordering::Relaxed);
    }

    /// A decision an enforcement point (`countersign mcp`) made locally, counted once its audit
    /// event is recorded: the broker never saw the action, only the event.
    pub fn reported_decision(&self, outcome: Outcome) {
        self.decisions[index(outcome)].fetch_add(1, Ordering::Relaxed);
        self.reported[index(outcome)].fetch_add(1, Ordering::Relaxed);
    }

    /// Alerts recorded because a reported decision does not match the policy it names.
    pub fn report_mismatches(&self, n: u64) {
        self.report_mismatches.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set_pending(&self, n: i64) {
        self.pending.store(n, Ordering::Relaxed);
    }

    pub fn request_opened(&self) {
        self.pending.fetch_add(1, Ordering::Relaxed);
    }

    /// A pending request reached a final state after `waited`.
    pub fn request_closed(&self, waited: Duration) {
        self.pending.fetch_sub(1, Ordering::Relaxed);
        let secs = waited.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.decided_buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.decided_count.fetch_add(1, Ordering::Relaxed);
        self.decided_sum_millis.fetch_add(
            u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// A call was answered 503: nothing could be recorded, so nothing was done.
    pub fn unavailable(&self) {
        self.unavailable.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP countersign_decisions_total Policy decisions, by outcome: the broker's, and those enforcement points made locally and reported."
        );
        let _ = writeln!(out, "# TYPE countersign_decisions_total counter");
        for outcome in [Outcome::Allow, Outcome::RequireApproval, Outcome::Deny] {
            let n = self.decisions[index(outcome)].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "countersign_decisions_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP countersign_reported_decisions_total The decisions enforcement points made locally (countersign mcp), counted when their audit events are recorded."
        );
        let _ = writeln!(out, "# TYPE countersign_reported_decisions_total counter");
        for outcome in [Outcome::Allow, Outcome::Deny] {
            let n = self.reported[index(outcome)].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "countersign_reported_decisions_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP countersign_report_mismatches_total Reported decisions the broker decided otherwise (or could not check): each one an action.report_mismatch alert in the audit log."
        );
        let _ = writeln!(out, "# TYPE countersign_report_mismatches_total counter");
        let _ = writeln!(
            out,
            "countersign_report_mismatches_total {}",
            self.report_mismatches.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP countersign_requests_pending Requests waiting for a decision."
        );
        let _ = writeln!(out, "# TYPE countersign_requests_pending gauge");
        let _ = writeln!(
            out,
            "countersign_requests_pending {}",
            self.pending.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP countersign_time_to_decision_seconds From a request's creation to its final state."
        );
        let _ = writeln!(out, "# TYPE countersign_time_to_decision_seconds histogram");
        for (bound, bucket) in BUCKETS.iter().zip(&self.decided_buckets) {
            let _ = writeln!(
                out,
                "countersign_time_to_decision_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.decided_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "countersign_time_to_decision_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.decided_sum_millis.load(Ordering::Relaxed) as f64 / 1000.0;
        let _ = writeln!(out, "countersign_time_to_decision_seconds_sum {sum}");
        let _ = writeln!(out, "countersign_time_to_decision_seconds_count {count}");
        let _ = writeln!(
            out,
            "# HELP countersign_unavailable_total Calls answered 503: the store could not commit, so nothing was done."
        );
        let _ = writeln!(out, "# TYPE countersign_unavailable_total counter");
        let _ = writeln!(
            out,
            "countersign_unavailable_total {}",
            self.unavailable.load(Ordering::Relaxed)
        );
        out
    }
}
