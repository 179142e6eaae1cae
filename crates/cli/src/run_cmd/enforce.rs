//! One command's way through Countersign, as `countersign run` shows it: the shared hold
//! (`countersign_enforce::hold`) evaluates, waits for a decision (riding out outages,
//! withdrawing the request on Ctrl-C, SIGTERM or `--wait`) and uses the grant; this module shows
//! each step on stderr, words how it ended, runs the command and records how it went.

use std::future::Future;
use std::time::Duration;

use countersign_client::{
    ActionRequest, ApprovalRequired, Client, ClientError, OutcomeStatus, RequestView,
};
use countersign_enforce::hold::{self, Ending, Front, Hold, Pace, Step, Withdrawal};
use countersign_enforce::outcome::{self, Report};
use countersign_model::action::shell_join;
use countersign_model::{RequestId, format_duration};

use super::child;
use super::exact::Exact;
use super::signals::{Signals, Stop};
use super::status::{StatusLine, review_line};
use super::{Outcome, Step as Next, next_step};
use crate::describe::clean;

/// How often a pending request is looked at again: the broker's wait answers at once on a
/// decision but not on a review, and each review is shown as it arrives.
const REVIEW_POLL: Duration = Duration::from_secs(2);

/// One command's way through Countersign.
pub(super) struct Enforcer<'a> {
    pub client: &'a Client,
    pub action: &'a ActionRequest,
    /// The program resolved once, its hash, script and environment, as the action names them:
    /// what runs.
    pub exact: &'a Exact,
    pub argv: &'a [String],
    /// `--wait`: how long to wait for approval at most.
    pub wait: Option<Duration>,
    pub signals: Signals,
    pub status: StatusLine,
}

/// What the shared hold shows on stderr, and how Ctrl-C and SIGTERM stop it.
struct Terminal<'a> {
    signals: &'a mut Signals,
    status: &'a mut StatusLine,
    /// The command as it will run, quoted for a shell reader.
    command_line: String,
    /// Reviews shown so far.
    reviews_seen: usize,
    exact: &'a Exact,
    /// Why the command was backed out of at the last moment.
    changed: Option<String>,
}

impl Terminal<'_> {
    /// Prints each review not shown yet, on a line of its own. The decision's own review is left
    /// to the outcome's message ("approved by …", "denied by …").
    fn show_reviews(&mut self, view: &RequestView) {
        for review in view.reviews.iter().skip(self.reviews_seen) {
            self.status.note(&review_line(view, review));
        }
        self.reviews_seen = self.reviews_seen.max(view.reviews.len());
    }
}

impl Front for Terminal<'_> {
    type Stop = Stop;

    fn stopped(&mut self) -> impl Future<Output = Stop> + Send {
        self.signals.recv()
    }

    fn opened(&mut self, gated: &ApprovalRequired, link: &str, left: Duration) {
        let rules = countersign_policy::deciding_rules(&gated.rules);
        self.status.note(&format!(
            "{} needs approval ({rules}); request {}: {link}",
            self.command_line, gated.request.id
        ));
        self.show_reviews(&gated.request);
        self.status.show(&gated.request, left);
    }

    fn pending(&mut self, view: &RequestView, left: Duration) {
        self.show_reviews(view);
        self.status.show(view, left);
    }

    fn tick(&mut self, view: &RequestView, left: Duration) {
        self.status.tick(view, left);
    }

    fn unreachable(&mut self, error: &ClientError, first: bool) {
        if first {
            self.status
                .note(&format!("{error}; still waiting, trying again"));
        }
    }

    fn reachable_again(&mut self) {
        self.status.note("the broker answers again; still waiting");
    }

    fn settled(&mut self) {
        self.status.finish();
    }

    /// Before an approval's grant is consumed (or an allowed command let go): a program or script
    /// changed since it was asked about does not use up the approval, and does not run.
    fn proceed(&mut self) -> bool {
        match self.exact.check() {
            Ok(()) => true,
            Err(reason) => {
                self.changed = Some(reason);
                false
            }
        }
    }
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
        let hold = Hold {
            client: self.client,
            action: self.action,
            pace: Pace {
                poll: REVIEW_POLL,
                first_backoff: Duration::from_secs(1),
                give_up: self.wait,
            },
        };
        let mut terminal = Terminal {
            command_line: self.command_line(),
            signals: &mut self.signals,
            status: &mut self.status,
            reviews_seen: 0,
            exact: self.exact,
            changed: None,
        };
        let ending = hold.run(&mut terminal).await;
        let changed = terminal.changed.take();
        match ending {
            Ending::Allowed => match self.exact.check() {
                Ok(()) => Outcome::Ran(self.spawn().await),
                Err(reason) => Outcome::Changed { reason },
            },
            Ending::Approved(view) => self.run_approved(&view).await,
            Ending::Denied(denied) => Outcome::PolicyDenied {
                rules: denied.rules,
                explanation: denied.explanation,
            },
            Ending::Decided(view) => match next_step(&view) {
                Next::Stop(outcome) => outcome,
                Next::Wait | Next::Run(_) => Outcome::FailClosed {
                    reason: format!("request {} is still pending", view.id),
                },
            },
            Ending::Invalid(e) => Outcome::FailClosed {
                reason: e.to_string(),
            },
            Ending::Failed {
                step: Step::Consume(_),
                error: error @ ClientError::Api { .. },
                ..
            } if !error.is_unavailable() => Outcome::GrantRefused {
                reason: error.to_string(),
            },
            Ending::Failed { error, .. } => Outcome::fail_closed(&error),
            Ending::Mismatch {
                theirs,
                ours,
                approved,
                withdrawal,
            } => {
                let mut reason = format!(
                    "{}; refusing to run it",
                    hold::mismatch(theirs, ours, "this command")
                );
                if approved {
                    return Outcome::GrantRefused { reason };
                }
                if let Some((id, withdrawal)) = withdrawal {
                    reason.push_str(&format!("; {}", withdrawn(id, withdrawal)));
                }
                Outcome::FailClosed { reason }
            }
            Ending::TimedOut {
                outage: Some(error),
                ..
            } => Outcome::FailClosed {
                reason: format!("lost contact with the broker while waiting: {error}"),
            },
            Ending::TimedOut {
                view,
                gave_up,
                withdrawal,
                ..
            } => {
                let why = if gave_up {
                    let waited = format_duration(self.wait.unwrap_or_default());
                    format!("nobody approved within --wait {waited}")
                } else {
                    format!(
                        "nobody approved in time: request {} expired at {}",
                        view.id, view.expires_at
                    )
                };
                let note = withdrawal.map_or_else(String::new, |w| withdrawn(view.id, w));
                Outcome::Expired {
                    message: format!("{why}; {note}; the command did not run"),
                }
            }
            Ending::Stopped {
                stop,
                withdrawal: None,
            } => Outcome::Cancelled {
                message: format!(
                    "stopped by {stop} before the broker answered; the command did not run"
                ),
            },
            Ending::Stopped {
                stop,
                withdrawal: Some((id, withdrawal)),
            } => Outcome::Cancelled {
                message: format!(
                    "stopped by {stop}; {}; the command did not run",
                    withdrawn(id, withdrawal)
                ),
            },
            Ending::GrantUnconfirmed { request, named } => Outcome::GrantRefused {
                reason: format!(
                    "the broker did not confirm that the grant of request {request} was used (it \
                     names request {named})"
                ),
            },
            // This front end backs out only when the program or script changed.
            Ending::BackedOut => match changed {
                Some(reason) => Outcome::Changed { reason },
                None => Outcome::Cancelled {
                    message: "the command was withdrawn before it ran".to_owned(),
                },
            },
        }
    }

    /// Runs the approved command, its grant consumed, and records how it went.
    async fn run_approved(&mut self, view: &RequestView) -> Outcome {
        let what = self.command_line();
        // Checked again after the grant's round trip, immediately before it starts.
        if let Err(reason) = self.exact.check() {
            let summary = format!("{what} did not run: {reason}");
            self.record(view.id, (OutcomeStatus::Failed, None, summary))
                .await;
            return Outcome::Changed { reason };
        }
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
        let ran = self.spawn().await;
        self.record(view.id, ran.report(&what)).await;
        Outcome::Ran(ran)
    }

    /// Records how the approved command went on its request; a failure is only a warning (the
    /// command has run, or has been refused, either way).
    async fn record(
        &self,
        request: RequestId,
        (status, exit_code, summary): (OutcomeStatus, Option<i32>, String),
    ) {
        let report = Report {
            request,
            status,
            exit_code,
            summary: &summary,
        };
        if let Err(error) = outcome::record(self.client, None, report).await {
            eprintln!(
                "countersign: warning: the outcome of request {request} was not recorded: {error}"
            );
        }
    }

    /// Starts the command: the file resolved once, with the environment captured once.
    async fn spawn(&mut self) -> child::Ran {
        child::run(
            self.exact.program(),
            self.argv,
            self.exact.environment(),
            &mut self.signals,
        )
        .await
    }
}

/// How withdrawing request `id` went, in words.
fn withdrawn(id: RequestId, withdrawal: Withdrawal<Stop>) -> String {
    match withdrawal {
        Withdrawal::Cancelled => format!("request {id} was cancelled"),
        Withdrawal::Already(state) => format!("request {id} was already {state}"),
        Withdrawal::Expired => format!("request {id} has expired"),
        Withdrawal::AlreadyDecided => format!("request {id} was already decided"),
        Withdrawal::Failed(error) => {
            format!("request {id} could not be cancelled ({error}) and stays open until it expires")
        }
        Withdrawal::StoppedAgain(stop) => format!(
            "stopped by {stop} again before request {id} could be cancelled; it stays open until it \
             expires"
        ),
    }
}
