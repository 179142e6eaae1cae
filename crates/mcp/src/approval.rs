//! A call that needs approval, as MCP sees it: the shared hold (`countersign_enforce::hold`) opens
//! the request, waits and consumes the grant; this module tells the client how it stands
//! (progress notifications), lets `notifications/cancelled` withdraw the call, and words how it
//! ended. Whatever goes wrong on the way, the call is not forwarded (fail closed), and the model
//! is told why in words it can act on.

use std::future::Future;
use std::time::Duration;

use countersign_client::{
    ActionRequest, ApprovalRequired, ClientError, OutcomeStatus, RequestState, RequestView,
};
use countersign_enforce::hold::{self, Ending, Front, Pace, Step};
use countersign_enforce::outcome::{self, Report};
use countersign_model::RequestId;
use tokio::sync::oneshot;

use crate::gate::Gate;
use crate::held::HeldCalls;
use crate::message::Answer;

/// How long each wait for a decision lasts; a progress notification follows each.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// How a held call ends.
#[derive(Debug, PartialEq)]
pub enum Held {
    /// Forward it now. `request` is the approved request whose outcome to record (`None` when the
    /// broker allowed it outright).
    Forward { request: Option<RequestId> },
    /// Not forwarded: answer the model with this tool error.
    Refused(String),
    /// The client withdrew the call: say nothing, forward nothing.
    Withdrawn,
}

/// One held call's way through the broker.
#[derive(Debug)]
pub struct Hold<'a> {
    pub gate: &'a Gate,
    pub tool: &'a str,
    pub action: &'a ActionRequest,
    pub held: &'a HeldCalls,
    /// The call's key in `held`.
    pub key: &'a str,
}

/// What the shared hold tells an MCP client, and how the client stops it.
struct Caller<'a> {
    /// Fires when the client withdraws the call; `None` once it did.
    withdrawn: Option<oneshot::Receiver<()>>,
    progress: &'a mut (dyn FnMut(&str) + Send),
    held: &'a HeldCalls,
    key: &'a str,
    tool: &'a str,
}

impl Front for Caller<'_> {
    type Stop = ();

    fn stopped(&mut self) -> impl Future<Output = ()> + Send {
        let withdrawn = &mut self.withdrawn;
        async move {
            match withdrawn {
                // A dropped sender withdraws the call too (the connection went away).
                Some(rx) => {
                    let _ = rx.await;
                    *withdrawn = None;
                }
                None => std::future::pending().await,
            }
        }
    }

    fn opened(&mut self, gated: &ApprovalRequired, link: &str, _left: Duration) {
        tracing::info!(
            "`{}` needs approval; request {}: {link}",
            self.tool,
            gated.request.id
        );
        (self.progress)(&format!(
            "Countersign is holding this call until it is approved: {} ({link})",
            gated.request.summary
        ));
    }

    fn pending(&mut self, view: &RequestView, _left: Duration) {
        (self.progress)(&format!(
            "Countersign is still holding this call: {}",
            view.summary
        ));
    }

    fn unreachable(&mut self, error: &ClientError, _first: bool) {
        (self.progress)(&format!(
            "Countersign cannot reach its broker ({error}); still holding this call"
        ));
    }

    fn proceed(&mut self) -> bool {
        self.held.start_forwarding(self.key)
    }
}

impl Hold<'_> {
    /// Runs the call's approval to its end. `progress` is told, in a sentence, how the request
    /// stands: when it opens, on every heartbeat, and when it is approved.
    pub async fn run(
        &self,
        withdrawn: oneshot::Receiver<()>,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Held {
        let mut caller = Caller {
            withdrawn: Some(withdrawn),
            progress,
            held: self.held,
            key: self.key,
            tool: self.tool,
        };
        let hold = hold::Hold {
            client: self.gate.client(),
            action: self.action,
            pace: Pace {
                poll: HEARTBEAT,
                first_backoff: Duration::from_millis(500),
                give_up: None,
            },
        };
        let ending = hold.run(&mut caller).await;
        self.answer(ending)
    }

    /// What the model is told of how the hold ended.
    fn answer(&self, ending: Ending<()>) -> Held {
        match ending {
            Ending::Allowed => {
                // The broker's policy allows what the local copy gated: it changed.
                self.gate.policy_may_have_changed();
                Held::Forward { request: None }
            }
            Ending::Approved(view) => Held::Forward {
                request: Some(view.id),
            },
            Ending::Denied(denied) => {
                self.gate.policy_may_have_changed();
                Held::Refused(format!(
                    "Countersign denied this call to `{}`; it was not run. Denied by the policy: {} \
                     Do not retry it unchanged.",
                    self.tool, denied.explanation
                ))
            }
            Ending::Decided(view) => self.decided(&view),
            Ending::Invalid(e) => self.refused(&format!("it cannot be checked: {e}")),
            Ending::Failed { step, error, .. } => match step {
                Step::Evaluate => {
                    self.fail_closed("the broker could not be asked for approval", &error)
                }
                Step::Wait => self.fail_closed("the broker failed while the call waited", &error),
                Step::Consume(id) => self.refused(&format!(
                    "the approval of request {id} could not be used: {error}"
                )),
            },
            Ending::Mismatch { theirs, ours, .. } => {
                self.refused(&hold::mismatch(theirs, ours, "this call"))
            }
            Ending::TimedOut { view, outage, .. } => self.refused(&match outage {
                Some(e) => format!("the broker could not be reached while waiting ({e})"),
                None => format!("nobody approved it in time (request {} expired)", view.id),
            }),
            Ending::GrantUnconfirmed { request, named } => self.refused(&format!(
                "the broker did not confirm that the approval of request {request} was used (it \
                 names request {named})"
            )),
            Ending::Stopped { .. } | Ending::BackedOut => Held::Withdrawn,
        }
    }

    /// A request decided without a grant to use.
    fn decided(&self, view: &RequestView) -> Held {
        let id = view.id;
        match view.state {
            RequestState::Approved => {
                // The summary says why (an approval that expired, a policy that now denies).
                self.refused(&format!(
                    "request {id} was approved, but the broker sent no grant with it (only the \
                     requester receives one); the broker says: {}",
                    view.summary
                ))
            }
            RequestState::Denied => {
                let by = match (view.decided_by.as_deref(), view.denial()) {
                    (Some(by), Some(review)) => match review.comment.as_deref() {
                        Some(comment) => format!("{by}: {comment}"),
                        None => format!("{by} (no comment)"),
                    },
                    (Some(by), None) => by.to_owned(),
                    (None, _) => view.summary.clone(),
                };
                Held::Refused(format!(
                    "Countersign: a reviewer refused this call to `{}`, so it was not run: denied \
                     by {by} (request {id}). Do not retry it unchanged.",
                    self.tool
                ))
            }
            RequestState::Expired => Held::Refused(format!(
                "Countersign: nobody approved this call to `{}` in time; request {id} expired \
                 at {} and the call was not run. Ask the person you work for before trying \
                 again.",
                self.tool, view.expires_at
            )),
            RequestState::Cancelled => {
                let by = view
                    .decided_by
                    .as_deref()
                    .map(|by| format!(" by {by}"))
                    .unwrap_or_default();
                Held::Refused(format!(
                    "Countersign: request {id} for this call to `{}` was cancelled{by}; the call \
                     was not run.",
                    self.tool
                ))
            }
            RequestState::Pending => self.refused(&format!("request {id} is still pending")),
        }
    }

    fn fail_closed(&self, what: &str, error: &ClientError) -> Held {
        self.refused(&format!("{what}: {error}"))
    }

    fn refused(&self, why: &str) -> Held {
        Held::Refused(format!(
            "Countersign did not run this call to `{}`: {why}. It fails closed: nothing runs \
             without a decision it can trust.",
            self.tool
        ))
    }
}

/// Records how an approved call went: on the request, or in the spool if the broker cannot
/// take it now.
pub async fn record_outcome(gate: &Gate, request: RequestId, tool: &str, answer: &Answer) {
    let (status, summary) = match answer {
        Answer::Result => (OutcomeStatus::Ran, format!("`{tool}` returned a result")),
        Answer::ToolError(text) => (
            OutcomeStatus::Failed,
            format!(
                "`{tool}` reported an error: {}",
                short(text.as_deref().unwrap_or("(no text)"))
            ),
        ),
        Answer::Error { code, message } => (
            OutcomeStatus::Failed,
            format!("the server answered error {code}: {}", short(message)),
        ),
    };
    let report = Report {
        request,
        status,
        exit_code: None,
        summary: &summary,
    };
    if let Err(e) = outcome::record(gate.client(), Some(gate.spool()), report).await {
        tracing::error!("the outcome of request {request} was not recorded: {e}");
    }
}

fn short(text: &str) -> String {
    const MAX: usize = 300;
    let mut cut: String = text.chars().take(MAX).collect();
    if text.chars().count() > MAX {
        cut.push('…');
    }
    cut
}
