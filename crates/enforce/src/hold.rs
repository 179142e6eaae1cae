//! The hold: one action's way through the broker. Evaluate it; while it needs approval, wait for
//! a decision (riding out outages with a growing pause, withdrawing the request when the front end
//! is stopped, gives up, or the request is past its expiry); check that every answer is about the
//! digest of what is about to run; consume the grant. What the front end shows on the way (each
//! review, waiting messages) and what stops it (Ctrl-C, a client's cancellation) come through
//! [`Front`]; how it ended comes back as an [`Ending`] for the front end to put in its own words.
//! Whatever goes wrong, the ending is never one that lets the action run (fail closed).

use std::future::Future;
use std::time::Duration;

use countersign_client::{
    ActionRequest, ApprovalRequired, Client, ClientError, Denied, ErrorCode, EvaluateResponse,
    MAX_WAIT, RequestState, RequestView,
};
use countersign_model::{ActionError, Digest, RequestId};
use tokio::time::Instant;

/// How long after a request's expiry to keep asking before concluding it expired: the broker's
/// sweeper marks it a moment after the deadline.
pub const EXPIRY_GRACE: Duration = Duration::from_secs(30);

/// The longest pause between tries while the broker cannot be reached.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How long an evaluation interrupted by the front end may still take to answer, so that a
/// request it opened can be withdrawn.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// What the front end is told, and asked, while an action is held. Every method but `stopped`
/// has a default that does nothing.
pub trait Front: Send {
    /// Why the front end stopped: a signal, a client's cancellation.
    type Stop: Send;

    /// Resolves when the user or the client withdraws the action. Cancel-safe, and may be
    /// awaited again after it resolved (a second Ctrl-C stops the withdrawal; a front end with
    /// nothing more to say never resolves again).
    fn stopped(&mut self) -> impl Future<Output = Self::Stop> + Send;

    /// The broker opened request `gated.request` (`link` shows it to a reviewer); `left` is the
    /// time until it expires.
    fn opened(&mut self, _gated: &ApprovalRequired, _link: &str, _left: Duration) {}

    /// An answer came and the request is still pending (a review may have arrived).
    fn pending(&mut self, _view: &RequestView, _left: Duration) {}

    /// Every second while waiting, for a countdown.
    fn tick(&mut self, _view: &RequestView, _left: Duration) {}

    /// The broker cannot be reached; `first` after it last answered.
    fn unreachable(&mut self, _error: &ClientError, _first: bool) {}

    /// The broker answers again after being unreachable.
    fn reachable_again(&mut self) {}

    /// The wait is over, whichever way.
    fn settled(&mut self) {}

    /// The last moment to back out, just before the action is let go (before an approval's grant
    /// is consumed): false and it is not.
    fn proceed(&mut self) -> bool {
        true
    }
}

/// How a front end paces its wait.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// The longest single wait on the broker: its wait answers at once on a decision but not on
    /// a review, so this is how often a review can show.
    pub poll: Duration,
    /// The first pause after the broker could not be reached; it doubles up to [`MAX_BACKOFF`].
    pub first_backoff: Duration,
    /// Give up waiting (and withdraw the request) after this long (`countersign run --wait`).
    pub give_up: Option<Duration>,
}

/// Where the broker failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Evaluate,
    Wait,
    /// Consuming the grant of this approved request.
    Consume(RequestId),
}

/// What became of withdrawing a request.
#[derive(Debug)]
pub enum Withdrawal<S> {
    Cancelled,
    /// The request was no longer pending: it was in this state.
    Already(RequestState),
    Expired,
    AlreadyDecided,
    /// It stays open until it expires.
    Failed(ClientError),
    /// Stopped again while withdrawing: it stays open until it expires.
    StoppedAgain(S),
}

/// How a held action ended. Only [`Ending::Allowed`] and [`Ending::Approved`] let it run.
#[derive(Debug)]
pub enum Ending<S> {
    /// The broker allows it outright: run it now.
    Allowed,
    /// Approved, its digest checked and its grant consumed: run it now, and record its outcome
    /// on this request.
    Approved(RequestView),
    /// The policy denies it.
    Denied(Denied),
    /// Decided without a grant to use: denied by a reviewer, expired, cancelled, or approved
    /// without a grant for this requester (the summary says why).
    Decided(RequestView),
    /// The action cannot be checked: its digest cannot be computed.
    Invalid(ActionError),
    /// The broker could not be asked, or refused, at `step`.
    Failed {
        step: Step,
        error: ClientError,
        withdrawal: Option<Withdrawal<S>>,
    },
    /// An answer is about another action than the one about to run (`theirs` is its digest); in
    /// an approved request's view when `approved`. `withdrawal` of the request it opened, if any.
    Mismatch {
        theirs: Digest,
        ours: Digest,
        approved: bool,
        withdrawal: Option<(RequestId, Withdrawal<S>)>,
    },
    /// Still pending when the wait ended: past its expiry, or `gave_up` (the front end's own
    /// limit). `outage` when the broker could not be reached at the last try (then nothing was
    /// withdrawn).
    TimedOut {
        view: RequestView,
        gave_up: bool,
        outage: Option<ClientError>,
        withdrawal: Option<Withdrawal<S>>,
    },
    /// The front end stopped it; `withdrawal` of the request, if one was open by then.
    Stopped {
        stop: S,
        withdrawal: Option<(RequestId, Withdrawal<S>)>,
    },
    /// The broker's answer to consuming the grant names another request.
    GrantUnconfirmed {
        request: RequestId,
        named: RequestId,
    },
    /// The front end backed out at the last moment ([`Front::proceed`]).
    BackedOut,
}

/// "the broker's answer is about a different action (digest …) than this command (digest …)":
/// `what` names the action as the front end calls it.
pub fn mismatch(theirs: Digest, ours: Digest, what: &str) -> String {
    format!(
        "the broker's answer is about a different action (digest {theirs}) than {what} \
         (digest {ours})"
    )
}

/// One action's way through the broker.
#[derive(Debug)]
pub struct Hold<'a> {
    pub client: &'a Client,
    pub action: &'a ActionRequest,
    pub pace: Pace,
}

impl Hold<'_> {
    /// Runs the protocol to its end.
    pub async fn run<F: Front>(&self, front: &mut F) -> Ending<F::Stop> {
        if let Err(e) = self.action.digest() {
            return Ending::Invalid(e);
        }
        let answer = match self.evaluate(front).await {
            Ok(answer) => answer,
            Err(ending) => return ending,
        };
        // The broker adds the labels it vouches for (the principal's configured ones): the
        // digest covers them, and what runs (kind, resource, details) must still be ours.
        let labels = match &answer {
            EvaluateResponse::Allow(allowed) => &allowed.labels,
            EvaluateResponse::RequireApproval(gated) => &gated.request.action.labels,
            EvaluateResponse::Deny(_) => &self.action.labels,
        };
        let digest = match self.digest_with(labels) {
            Ok(digest) => digest,
            Err(e) => return Ending::Invalid(e),
        };
        let gated = match answer {
            // A denial lets nothing run, whichever action it is about.
            EvaluateResponse::Deny(denied) => return Ending::Denied(denied),
            EvaluateResponse::Allow(allowed) if allowed.digest != digest => {
                return Ending::Mismatch {
                    theirs: allowed.digest,
                    ours: digest,
                    approved: false,
                    withdrawal: None,
                };
            }
            EvaluateResponse::Allow(_) if !front.proceed() => return Ending::BackedOut,
            EvaluateResponse::Allow(_) => return Ending::Allowed,
            EvaluateResponse::RequireApproval(gated) => gated,
        };
        if gated.digest != digest || gated.request.digest != digest {
            let theirs = if gated.request.digest != digest {
                gated.request.digest
            } else {
                gated.digest
            };
            let id = gated.request.id;
            let withdrawal = self.withdraw(id, front).await;
            return Ending::Mismatch {
                theirs,
                ours: digest,
                approved: false,
                withdrawal: Some((id, withdrawal)),
            };
        }
        let decided = match self.wait(gated, front).await {
            Ok(view) => view,
            Err(ending) => return ending,
        };
        self.use_approval(decided, digest, front).await
    }

    /// The digest of our action with `labels`, those the broker decided it with.
    fn digest_with(
        &self,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<Digest, countersign_model::ActionError> {
        let mut action = self.action.clone();
        action.labels = labels.clone();
        action.digest()
    }

    async fn evaluate<F: Front>(&self, front: &mut F) -> Result<EvaluateResponse, Ending<F::Stop>> {
        let client = self.client;
        let call = client.evaluate(self.action, None);
        tokio::pin!(call);
        let stop = tokio::select! {
            answer = &mut call => {
                return answer.map_err(|error| Ending::Failed {
                    step: Step::Evaluate,
                    error,
                    withdrawal: None,
                });
            }
            stop = front.stopped() => stop,
        };
        // The broker may open a request all the same: give it a moment to say so, and withdraw it.
        if let Ok(Ok(EvaluateResponse::RequireApproval(gated))) =
            tokio::time::timeout(CANCEL_GRACE, call).await
        {
            let _ = client.cancel(gated.request.id).await;
        }
        Err(Ending::Stopped {
            stop,
            withdrawal: None,
        })
    }

    /// Waits until the request is decided. Rides out the broker being briefly unreachable: the
    /// request is durable, and waiters resume.
    async fn wait<F: Front>(
        &self,
        gated: ApprovalRequired,
        front: &mut F,
    ) -> Result<RequestView, Ending<F::Stop>> {
        let client = self.client;
        let id = gated.request.id;
        // Counted on this machine's monotonic clock from the request's own lifetime, so a clock
        // that disagrees with the broker's neither cuts the wait short nor stretches it.
        let expires = Instant::now() + gated.request.created_at.until(gated.request.expires_at);
        let left = || expires.saturating_duration_since(Instant::now());
        let give_up_at = self.pace.give_up.map(|wait| Instant::now() + wait);
        front.opened(&gated, &client.request_link(id), left());
        let mut view = *gated.request;
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut backoff = self.pace.first_backoff;
        let mut outage: Option<ClientError> = None;
        while view.state.is_pending() {
            let to_give_up = give_up_at.map(|at| at.saturating_duration_since(Instant::now()));
            let past_expiry = Instant::now() >= expires + EXPIRY_GRACE;
            if to_give_up == Some(Duration::ZERO) || past_expiry {
                front.settled();
                // An unreachable broker cannot take a withdrawal either.
                let withdrawal = match outage {
                    Some(_) => None,
                    None => Some(self.withdraw(id, front).await),
                };
                return Err(Ending::TimedOut {
                    view,
                    gave_up: !past_expiry,
                    outage,
                    withdrawal,
                });
            }
            let poll = (left() + Duration::from_secs(1))
                .min(to_give_up.unwrap_or(MAX_WAIT))
                .clamp(Duration::from_secs(1), MAX_WAIT)
                .min(self.pace.poll);
            let call = client.wait(id, poll);
            tokio::pin!(call);
            let answer = loop {
                tokio::select! {
                    answer = &mut call => break answer,
                    _ = ticker.tick() => front.tick(&view, left()),
                    stop = front.stopped() => return Err(self.stopped(id, stop, front).await),
                }
            };
            match answer {
                Ok(next) => {
                    if outage.take().is_some() {
                        front.reachable_again();
                    }
                    backoff = self.pace.first_backoff;
                    view = next;
                    if view.state.is_pending() {
                        front.pending(&view, left());
                    }
                }
                Err(error) if error.is_unavailable() => {
                    front.unreachable(&error, outage.is_none());
                    outage = Some(error);
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        stop = front.stopped() => return Err(self.stopped(id, stop, front).await),
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(error) => {
                    front.settled();
                    let withdrawal = self.withdraw(id, front).await;
                    return Err(Ending::Failed {
                        step: Step::Wait,
                        error,
                        withdrawal: Some(withdrawal),
                    });
                }
            }
        }
        front.settled();
        Ok(view)
    }

    async fn stopped<F: Front>(
        &self,
        id: RequestId,
        stop: F::Stop,
        front: &mut F,
    ) -> Ending<F::Stop> {
        front.settled();
        let withdrawal = self.withdraw(id, front).await;
        Ending::Stopped {
            stop,
            withdrawal: Some((id, withdrawal)),
        }
    }

    /// Cancels the request; says how that went. Stopping again stops trying.
    async fn withdraw<F: Front>(&self, id: RequestId, front: &mut F) -> Withdrawal<F::Stop> {
        let cancel = self.client.cancel(id);
        tokio::pin!(cancel);
        tokio::select! {
            answer = &mut cancel => match answer {
                Ok(view) if view.state == RequestState::Cancelled => Withdrawal::Cancelled,
                Ok(view) => Withdrawal::Already(view.state),
                Err(error) if error.is(ErrorCode::Expired) => Withdrawal::Expired,
                Err(error) if error.is(ErrorCode::AlreadyDecided) => Withdrawal::AlreadyDecided,
                Err(error) => Withdrawal::Failed(error),
            },
            stop = front.stopped() => Withdrawal::StoppedAgain(stop),
        }
    }

    /// Consumes the grant of an approved request: the last step before the action runs.
    async fn use_approval<F: Front>(
        &self,
        view: RequestView,
        digest: Digest,
        front: &mut F,
    ) -> Ending<F::Stop> {
        let token = match (view.state, &view.grant) {
            (RequestState::Approved, Some(grant)) => grant.token.clone(),
            _ => return Ending::Decided(view),
        };
        if view.digest != digest {
            return Ending::Mismatch {
                theirs: view.digest,
                ours: digest,
                approved: true,
                withdrawal: None,
            };
        }
        if !front.proceed() {
            return Ending::BackedOut;
        }
        let id = view.id;
        match self.client.consume_grant(&token, digest).await {
            Ok(consumed) if consumed.consumed && consumed.request == id => Ending::Approved(view),
            Ok(consumed) => Ending::GrantUnconfirmed {
                request: id,
                named: consumed.request,
            },
            Err(error) => Ending::Failed {
                step: Step::Consume(id),
                error,
                withdrawal: None,
            },
        }
    }
}
