//! A call that needs approval: open the request with the broker, hold the call while reviewers
//! decide (telling the client how it stands), and let it go ahead only with the request's grant
//! consumed. Whatever goes wrong on the way, the call is not forwarded (fail closed), and the
//! model is told why in words it can act on.

use std::time::Duration;

use countersign_client::{
    ActionRequest, ClientError, EvaluateResponse, OutcomeStatus, ReportedEvent, ReportedEventType,
    RequestState, RequestView,
};
use countersign_model::{Digest, RequestId};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::gate::Gate;
use crate::held::HeldCalls;
use crate::message::Answer;

/// How long each wait for a decision lasts; a progress notification follows each.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long after expiry to keep asking before concluding the request expired.
const EXPIRY_GRACE: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

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

impl Hold<'_> {
    /// Runs the call's approval to its end. `progress` is told, in a sentence, how the request
    /// stands: when it opens, on every heartbeat, and when it is approved.
    pub async fn run(
        &self,
        mut withdrawn: oneshot::Receiver<()>,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Held {
        let digest = match self.action.digest() {
            Ok(digest) => digest,
            Err(e) => return self.refused(&format!("it cannot be checked: {e}")),
        };
        let client = self.gate.client();
        let call = client.evaluate(self.action, None);
        tokio::pin!(call);
        let answer = tokio::select! {
            answer = &mut call => answer,
            _ = &mut withdrawn => {
                // The broker may open a request all the same: withdraw it once it says so.
                if let Ok(Ok(EvaluateResponse::RequireApproval(gated))) =
                    tokio::time::timeout(Duration::from_secs(5), call).await
                {
                    let _ = client.cancel(gated.request.id).await;
                }
                return Held::Withdrawn;
            }
        };
        let gated = match answer {
            Err(e) => return self.fail_closed("the broker could not be asked for approval", &e),
            Ok(answer) if answer.digest() != digest => {
                return self.refused(&mismatch(answer.digest(), digest));
            }
            Ok(EvaluateResponse::Allow(_)) => {
                // The broker's policy allows what the local copy gated: it changed.
                self.gate.policy_may_have_changed();
                return self.forward(None);
            }
            Ok(EvaluateResponse::Deny(denied)) => {
                self.gate.policy_may_have_changed();
                return Held::Refused(format!(
                    "Countersign denied this call to `{}`; it was not run. Denied by the policy: {} \
                     Do not retry it unchanged.",
                    self.tool, denied.explanation
                ));
            }
            Ok(EvaluateResponse::RequireApproval(gated)) => gated,
        };
        let view = *gated.request;
        let id = view.id;
        tracing::info!(
            "`{}` needs approval; request {id}: {}",
            self.tool,
            client.request_link(id)
        );
        progress(&format!(
            "Countersign is holding this call until it is approved: {} ({})",
            view.summary,
            client.request_link(id)
        ));
        let decided = match self.wait(view, &mut withdrawn, progress).await {
            Ok(view) => view,
            Err(held) => return held,
        };
        self.use_approval(&decided, digest).await
    }

    /// Waits until the request is decided, riding out a broker that is briefly unreachable.
    async fn wait(
        &self,
        mut view: RequestView,
        withdrawn: &mut oneshot::Receiver<()>,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<RequestView, Held> {
        let client = self.gate.client();
        let id = view.id;
        let expires = Instant::now() + view.created_at.until(view.expires_at);
        let mut backoff = Duration::from_millis(500);
        let mut outage: Option<ClientError> = None;
        while view.state.is_pending() {
            if Instant::now() >= expires + EXPIRY_GRACE {
                let why = match &outage {
                    Some(e) => format!("the broker could not be reached while waiting ({e})"),
                    None => format!("nobody approved it in time (request {id} expired)"),
                };
                return Err(self.withdraw_and_refuse(id, &why).await);
            }
            let answer = tokio::select! {
                answer = client.wait(id, HEARTBEAT) => answer,
                _ = &mut *withdrawn => {
                    let _ = client.cancel(id).await;
                    return Err(Held::Withdrawn);
                }
            };
            match answer {
                Ok(next) => {
                    outage = None;
                    backoff = Duration::from_millis(500);
                    view = next;
                    if view.state.is_pending() {
                        progress(&format!(
                            "Countersign is still holding this call: {}",
                            view.summary
                        ));
                    }
                }
                Err(e) if e.is_unavailable() => {
                    progress(&format!(
                        "Countersign cannot reach its broker ({e}); still holding this call"
                    ));
                    outage = Some(e);
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = &mut *withdrawn => {
                            let _ = client.cancel(id).await;
                            return Err(Held::Withdrawn);
                        }
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => {
                    let _ = client.cancel(id).await;
                    return Err(self.fail_closed("the broker failed while the call waited", &e));
                }
            }
        }
        Ok(view)
    }

    /// Consumes the grant of an approved request: the last step before forwarding.
    async fn use_approval(&self, view: &RequestView, digest: Digest) -> Held {
        let id = view.id;
        let grant = match view.state {
            RequestState::Approved => match &view.grant {
                Some(grant) => grant,
                None => {
                    // The summary says why (an approval that expired, a policy that now denies).
                    return self.refused(&format!(
                        "request {id} was approved, but the broker sent no grant with it (only the \
                         requester receives one); the broker says: {}",
                        view.summary
                    ));
                }
            },
            RequestState::Denied => {
                let by = match (view.decided_by.as_deref(), view.denial()) {
                    (Some(by), Some(review)) => match review.comment.as_deref() {
                        Some(comment) => format!("{by}: {comment}"),
                        None => format!("{by} (no comment)"),
                    },
                    (Some(by), None) => by.to_owned(),
                    (None, _) => view.summary.clone(),
                };
                return Held::Refused(format!(
                    "Countersign: a reviewer refused this call to `{}`, so it was not run: denied \
                     by {by} (request {id}). Do not retry it unchanged.",
                    self.tool
                ));
            }
            RequestState::Expired => {
                return Held::Refused(format!(
                    "Countersign: nobody approved this call to `{}` in time; request {id} expired \
                     at {} and the call was not run. Ask the person you work for before trying \
                     again.",
                    self.tool, view.expires_at
                ));
            }
            RequestState::Cancelled => {
                let by = view
                    .decided_by
                    .as_deref()
                    .map(|by| format!(" by {by}"))
                    .unwrap_or_default();
                return Held::Refused(format!(
                    "Countersign: request {id} for this call to `{}` was cancelled{by}; the call \
                     was not run.",
                    self.tool
                ));
            }
            RequestState::Pending => {
                return self.refused(&format!("request {id} is still pending"));
            }
        };
        if view.digest != digest {
            return self.refused(&mismatch(view.digest, digest));
        }
        if !self.held.start_forwarding(self.key) {
            return Held::Withdrawn;
        }
        match self.gate.client().consume_grant(&grant.token, digest).await {
            Ok(consumed) if consumed.consumed && consumed.request == id => {
                Held::Forward { request: Some(id) }
            }
            Ok(consumed) => self.refused(&format!(
                "the broker did not confirm that the approval of request {id} was used (it names \
                 request {})",
                consumed.request
            )),
            Err(e) => self.refused(&format!(
                "the approval of request {id} could not be used: {e}"
            )),
        }
    }

    fn forward(&self, request: Option<RequestId>) -> Held {
        if self.held.start_forwarding(self.key) {
            Held::Forward { request }
        } else {
            Held::Withdrawn
        }
    }

    async fn withdraw_and_refuse(&self, id: RequestId, why: &str) -> Held {
        let _ = self.gate.client().cancel(id).await;
        self.refused(why)
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

fn mismatch(theirs: Digest, ours: Digest) -> String {
    format!(
        "the broker's answer is about a different action (digest {theirs}) than this call \
         (digest {ours})"
    )
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
    let Err(e) = gate
        .client()
        .record_outcome(request, status, None, Some(&summary))
        .await
    else {
        return;
    };
    tracing::warn!("the outcome of request {request} goes to the spool: {e}");
    let event = ReportedEvent {
        kind: ReportedEventType::ActionOutcome,
        request_id: Some(request),
        data: json!({"status": status, "summary": summary}),
        explanation: format!("The action of request {request} {status}."),
    };
    if let Err(e) = gate.spool().append(event) {
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
