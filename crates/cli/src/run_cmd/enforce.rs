//! The conversation with the broker for one command: evaluate, wait for a decision (riding out
//! outages, withdrawing the request on Ctrl-C, SIGTERM or `--wait`), use the grant, run, record.

use std::path::Path;
use std::time::{Duration, Instant};

use countersign_client::{
    ActionRequest, ApprovalRequired, Client, ClientError, EvaluateResponse, GrantView, MAX_WAIT,
    RequestState, RequestView,
};
use countersign_model::action::shell_join;
use countersign_model::{Digest, RequestId, format_duration};

use super::child;
use super::signals::{Signals, Stop};
use super::status::{StatusLine, review_line};
use super::{Outcome, Step, next_step};
use crate::describe::clean;

/// How long after a request's expiry to keep asking before concluding it expired: the broker's
/// sweeper marks it a moment after the deadline.
const EXPIRY_GRACE: Duration = Duration::from_secs(30);

/// How long an evaluation interrupted by Ctrl-C may still take to answer, so that a request it
/// opened can be withdrawn.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How often a pending request is looked at again: the broker's wait answers at once on a
/// decision but not on a review, and each review is shown as it arrives.
const REVIEW_POLL: Duration = Duration::from_secs(2);

/// One command's way through Countersign.
pub(super) struct Enforcer<'a> {
    pub client: &'a Client,
    pub action: &'a ActionRequest,
    /// The program resolved once, and named in the action: what runs.
    pub program: &'a Path,
    pub argv: &'a [String],
    /// `--wait`: how long to wait for approval at most.
    pub wait: Option<Duration>,
    pub signals: Signals,
    pub status: StatusLine,
}

impl Enforcer<'_> {
    /// The command as it will run, quoted for a shell reader: "`pg_dump customers`".
    fn command_line(&self) -> String {
        format!(
            "`{}`",
            clean(&shell_join(self.argv.iter().map(String::as_str)))
        )
    }

    pub async fn enforce(&mut self) -> Outcome {
        let digest = match self.action.digest() {
            Ok(digest) => digest,
            Err(e) => {
                return Outcome::FailClosed {
                    reason: e.to_string(),
                };
            }
        };
        let answer = match self.evaluate().await {
            Ok(answer) => answer,
            Err(outcome) => return outcome,
        };
        match answer {
            EvaluateResponse::Allow(allowed) if allowed.digest != digest => Outcome::FailClosed {
                reason: mismatch(allowed.digest, digest),
            },
            EvaluateResponse::Allow(_) => {
                Outcome::Ran(child::run(self.program, self.argv, &mut self.signals).await)
            }
            EvaluateResponse::Deny(denied) => Outcome::PolicyDenied {
                rules: denied.rules,
                explanation: denied.explanation,
            },
            EvaluateResponse::RequireApproval(gated) => self.seek_approval(gated, digest).await,
        }
    }

    async fn evaluate(&mut self) -> Result<EvaluateResponse, Outcome> {
        let client = self.client;
        let call = client.evaluate(self.action, None);
        tokio::pin!(call);
        let stop = tokio::select! {
            answer = &mut call => return answer.map_err(|e| Outcome::fail_closed(&e)),
            stop = self.signals.recv() => stop,
        };
        // The broker may open a request all the same: give it a moment to say so, and withdraw it.
        if let Ok(Ok(EvaluateResponse::RequireApproval(gated))) =
            tokio::time::timeout(CANCEL_GRACE, call).await
        {
            let _ = client.cancel(gated.request.id).await;
        }
        Err(Outcome::Cancelled {
            message: format!(
                "stopped by {stop} before the broker answered; the command did not run"
            ),
        })
    }

    async fn seek_approval(&mut self, gated: ApprovalRequired, digest: Digest) -> Outcome {
        let id = gated.request.id;
        if gated.digest != digest || gated.request.digest != digest {
            let note = self.withdraw(id).await;
            return Outcome::FailClosed {
                reason: format!("{}; {note}", mismatch(gated.request.digest, digest)),
            };
        }
        let rules = countersign_policy::deciding_rules(&gated.rules);
        self.status.note(&format!(
            "{} needs approval ({rules}); request {id}: {}",
            self.command_line(),
            self.client.request_link(id)
        ));
        let decided = match self.wait_for_decision(*gated.request).await {
            Ok(view) => view,
            Err(outcome) => return outcome,
        };
        match next_step(&decided) {
            Step::Run(grant) => self.run_approved(&decided, grant, digest).await,
            Step::Stop(outcome) => outcome,
            Step::Wait => Outcome::FailClosed {
                reason: format!("request {id} is still pending"),
            },
        }
    }

    /// Waits until the request is decided. Stops on Ctrl-C/SIGTERM (withdrawing the request),
    /// when `--wait` passes (withdrawing it too), or once it is past its expiry. Rides out the
    /// broker being briefly unreachable: the request is durable, and waiters resume.
    async fn wait_for_decision(&mut self, mut view: RequestView) -> Result<RequestView, Outcome> {
        let id = view.id;
        // Counted on this machine's monotonic clock from the request's own lifetime, so a clock
        // that disagrees with the broker's neither cuts the wait short nor stretches it.
        let expires = Instant::now() + view.created_at.until(view.expires_at);
        let left = || expires.saturating_duration_since(Instant::now());
        let give_up_at = self.wait.map(|wait| Instant::now() + wait);
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut backoff = Duration::from_secs(1);
        let mut outage: Option<ClientError> = None;
        let mut reviews_seen = 0;
        self.show_reviews(&view, &mut reviews_seen);
        self.status.show(&view, left());
        while view.state.is_pending() {
            let to_give_up = give_up_at.map(|at| at.saturating_duration_since(Instant::now()));
            let to_expiry = left();
            let past_expiry = Instant::now() >= expires + EXPIRY_GRACE;
            if to_give_up == Some(Duration::ZERO) || past_expiry {
                self.status.finish();
                if let Some(error) = outage {
                    return Err(Outcome::FailClosed {
                        reason: format!("lost contact with the broker while waiting: {error}"),
                    });
                }
                let why = if past_expiry {
                    format!(
                        "nobody approved in time: request {id} expired at {}",
                        view.expires_at
                    )
                } else {
                    let waited = format_duration(self.wait.unwrap_or_default());
                    format!("nobody approved within --wait {waited}")
                };
                let note = self.withdraw(id).await;
                return Err(Outcome::Expired {
                    message: format!("{why}; {note}; the command did not run"),
                });
            }
            let poll = (to_expiry + Duration::from_secs(1))
                .min(to_give_up.unwrap_or(MAX_WAIT))
                .clamp(Duration::from_secs(1), MAX_WAIT)
                .min(REVIEW_POLL);
            let client = self.client;
            let call = client.wait(id, poll);
            tokio::pin!(call);
            let answer = loop {
                tokio::select! {
                    answer = &mut call => break answer,
                    _ = ticker.tick() => self.status.tick(&view, left()),
                    stop = self.signals.recv() => return Err(self.stopped(id, stop).await),
                }
            };
            match answer {
                Ok(next) => {
                    if outage.take().is_some() {
                        self.status.note("the broker answers again; still waiting");
                    }
                    backoff = Duration::from_secs(1);
                    view = next;
                    if view.state.is_pending() {
                        self.show_reviews(&view, &mut reviews_seen);
                        self.status.show(&view, left());
                    }
                }
                Err(error) if error.is_unavailable() => {
                    if outage.is_none() {
                        self.status
                            .note(&format!("{error}; still waiting, trying again"));
                    }
                    outage = Some(error);
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        stop = self.signals.recv() => return Err(self.stopped(id, stop).await),
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(error) => {
                    self.status.finish();
                    return Err(Outcome::fail_closed(&error));
                }
            }
        }
        self.status.finish();
        Ok(view)
    }

    /// Prints each review not shown yet, on a line of its own. The decision's own review is left
    /// to the outcome's message ("approved by …", "denied by …").
    fn show_reviews(&mut self, view: &RequestView, seen: &mut usize) {
        for review in view.reviews.iter().skip(*seen) {
            self.status.note(&review_line(view, review));
        }
        *seen = (*seen).max(view.reviews.len());
    }

    async fn stopped(&mut self, id: RequestId, stop: Stop) -> Outcome {
        self.status.finish();
        let note = self.withdraw(id).await;
        Outcome::Cancelled {
            message: format!("stopped by {stop}; {note}; the command did not run"),
        }
    }

    /// Cancels the request; says how that went. A second Ctrl-C stops trying.
    async fn withdraw(&mut self, id: RequestId) -> String {
        let client = self.client;
        let cancel = client.cancel(id);
        tokio::pin!(cancel);
        tokio::select! {
            answer = &mut cancel => match answer {
                Ok(view) if view.state == RequestState::Cancelled => {
                    format!("request {id} was cancelled")
                }
                Ok(view) => format!("request {id} was already {}", view.state),
                Err(error) if error.code() == Some("expired") => format!("request {id} has expired"),
                Err(error) if error.code() == Some("already_decided") => {
                    format!("request {id} was already decided")
                }
                Err(error) => format!(
                    "request {id} could not be cancelled ({error}) and stays open until it expires"
                ),
            },
            stop = self.signals.recv() => format!(
                "stopped by {stop} again before request {id} could be cancelled; it stays open until it expires"
            ),
        }
    }

    /// Uses the grant, runs the command, records how it went.
    async fn run_approved(
        &mut self,
        view: &RequestView,
        grant: &GrantView,
        digest: Digest,
    ) -> Outcome {
        if view.digest != digest {
            return Outcome::GrantRefused {
                reason: mismatch(view.digest, digest),
            };
        }
        match self.client.consume_grant(&grant.token, digest).await {
            Ok(consumed) if consumed.consumed && consumed.request == view.id => {}
            Ok(consumed) => {
                return Outcome::GrantRefused {
                    reason: format!(
                        "the broker did not confirm that the grant of request {} was used (it names request {})",
                        view.id, consumed.request
                    ),
                };
            }
            Err(error @ ClientError::Api { .. }) if !error.is_unavailable() => {
                return Outcome::GrantRefused {
                    reason: error.to_string(),
                };
            }
            Err(error) => return Outcome::fail_closed(&error),
        }
        let what = self.command_line();
        let mut approvers: Vec<&str> = Vec::new();
        for approver in view.progress.iter().flat_map(|p| &p.approved_by) {
            if !approvers.contains(&approver.as_str()) {
                approvers.push(approver);
            }
        }
        self.status.note(&format!(
            "approved by {}; running {what}",
            clean(&approvers.join(", "))
        ));
        let ran = child::run(self.program, self.argv, &mut self.signals).await;
        let (status, exit_code, summary) = ran.report(&what);
        if let Err(error) = self
            .client
            .record_outcome(view.id, status, exit_code, Some(&summary))
            .await
        {
            eprintln!(
                "countersign: warning: the outcome of request {} was not recorded: {error}",
                view.id
            );
        }
        Outcome::Ran(ran)
    }
}

fn mismatch(theirs: Digest, ours: Digest) -> String {
    format!(
        "the broker's answer is about a different action (digest {theirs}) than this command \
         (digest {ours}); refusing to run it"
    )
}
