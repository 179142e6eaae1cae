#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.
//! The hold against a scripted broker: what a front end is told on the way, what stops it, and
//! that nothing runs on an answer about another action or without its grant consumed.

// The scripted broker is the client crate's test double of the API; shared, not copied. Not
// every one of its helpers is used here.
#[allow(dead_code)]
use countersign_test_support::fake_broker;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use countersign_client::{ActionRequest, ApprovalRequired, Client, ClientError, RequestView};
use countersign_enforce::{Ending, Front, Hold, Pace, Withdrawal};
use countersign_model::Digest;
use fake_broker::{FakeBroker, REQUEST_ID, Reply, Seen, request_view};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// A front end that writes down what it is told, and stops when `stop` fires.
struct Recorder {
    stop: Option<oneshot::Receiver<()>>,
    told: Vec<String>,
    proceed: bool,
}

impl Recorder {
    fn new() -> Recorder {
        Recorder {
            stop: None,
            told: Vec::new(),
            proceed: true,
        }
    }
}

impl Front for Recorder {
    type Stop = &'static str;

    fn stopped(&mut self) -> impl Future<Output = &'static str> + Send {
        let stop = &mut self.stop;
        async move {
            if let Some(rx) = stop {
                let _ = rx.await;
                *stop = None;
                return "stop";
            }
            std::future::pending().await
        }
    }

    fn opened(&mut self, gated: &ApprovalRequired, link: &str, _left: Duration) {
        self.told
            .push(format!("opened {} {link}", gated.request.id));
    }

    fn pending(&mut self, view: &RequestView, _left: Duration) {
        self.told
            .push(format!("pending, {} reviews", view.reviews.len()));
    }

    fn unreachable(&mut self, _error: &ClientError, first: bool) {
        self.told.push(format!("unreachable, first: {first}"));
    }

    fn reachable_again(&mut self) {
        self.told.push("reachable again".into());
    }

    fn proceed(&mut self) -> bool {
        self.told.push("proceed?".into());
        self.proceed
    }
}

fn action() -> ActionRequest {
    let mut action = ActionRequest::new("shell.exec", "db:prod/customers");
    action.details = json!({"argv": ["pg_dump", "customers"]});
    action
}

fn view(state: &str, digest: Digest) -> Value {
    let mut view = request_view(state);
    view["digest"] = json!(digest);
    // The labels the broker decided with, which the digest covers: this agent has none
    // configured.
    view["action"]["labels"] = json!({});
    // Far from expiry, so only the script ends the wait.
    view["expires_at"] = json!("2999-01-01T00:00:00.000Z");
    if state == "approved" {
        view["grant"] = json!({"token": "csg1.grant", "expires_at": "2999-01-01T00:00:00.000Z"});
    }
    view
}

/// A broker that gates the action, then answers each wait with the next of `waits` (a state, or
/// "503" for an outage); `approved_digest` is the digest its approved view names.
fn broker(
    waits: Vec<&'static str>,
    approved_digest: Digest,
) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    let ours = action().digest().unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    move |seen| {
        let path = seen.target.split('?').next().unwrap();
        match path.rsplit('/').next().unwrap() {
            "actions" => Reply::json(
                202,
                json!({"decision": "require_approval", "rules": ["r"], "explanation": "e",
                       "digest": ours, "request": view("pending", ours)}),
            ),
            "wait" => match waits[n.fetch_add(1, Ordering::SeqCst).min(waits.len() - 1)] {
                "503" => Reply::json(
                    503,
                    json!({"error": {"code": "unavailable", "message": "the store cannot commit"}}),
                ),
                "approved" => Reply::json(200, view("approved", approved_digest)),
                state => Reply::json(200, view(state, ours)),
            },
            "consume" => Reply::json(200, json!({"consumed": true, "request": REQUEST_ID})),
            "cancel" => Reply::json(200, view("cancelled", ours)),
            other => Reply::json(
                404,
                json!({"error": {"code": "not_found", "message": other}}),
            ),
        }
    }
}

async fn hold(url: &str, front: &mut Recorder) -> Ending<&'static str> {
    let client = Client::new(url, "csk_agent").unwrap();
    let action = action();
    let hold = Hold {
        client: &client,
        action: &action,
        pace: Pace {
            poll: Duration::from_secs(1),
            first_backoff: Duration::from_millis(10),
            give_up: None,
        },
    };
    hold.run(front).await
}

fn called(broker: &FakeBroker, end: &str) -> bool {
    broker
        .seen()
        .iter()
        .any(|s| s.target.split('?').next().unwrap().ends_with(end))
}

#[tokio::test]
async fn an_approval_rides_out_an_outage_and_consumes_the_grant_last() {
    let ours = action().digest().unwrap();
    let broker = FakeBroker::start(broker(vec!["503", "503", "pending", "approved"], ours)).await;
    let mut front = Recorder::new();
    let ending = hold(&broker.url, &mut front).await;
    let Ending::Approved(view) = ending else {
        panic!("{ending:?}")
    };
    assert_eq!(view.id.to_string(), REQUEST_ID);
    assert_eq!(
        front.told,
        [
            format!("opened {REQUEST_ID} {}/requests/{REQUEST_ID}", broker.url),
            "unreachable, first: true".into(),
            "unreachable, first: false".into(),
            "reachable again".into(),
            "pending, 1 reviews".into(),
            "proceed?".into(),
        ]
    );
    assert!(called(&broker, "/v1/grants/consume"));
    assert!(!called(&broker, "/cancel"));
}

#[tokio::test]
async fn an_approval_of_another_action_is_never_consumed() {
    let other = Digest::of(b"another action");
    let broker = FakeBroker::start(broker(vec!["approved"], other)).await;
    let mut front = Recorder::new();
    let ending = hold(&broker.url, &mut front).await;
    let Ending::Mismatch {
        theirs, approved, ..
    } = ending
    else {
        panic!("{ending:?}")
    };
    assert_eq!((theirs, approved), (other, true));
    assert!(!called(&broker, "/v1/grants/consume"));
}

#[tokio::test]
async fn a_front_end_that_backs_out_consumes_nothing() {
    let ours = action().digest().unwrap();
    let broker = FakeBroker::start(broker(vec!["approved"], ours)).await;
    let mut front = Recorder::new();
    front.proceed = false;
    let ending = hold(&broker.url, &mut front).await;
    assert!(matches!(ending, Ending::BackedOut), "{ending:?}");
    assert!(!called(&broker, "/v1/grants/consume"));
}

#[tokio::test]
async fn stopping_while_waiting_withdraws_the_request() {
    let ours = action().digest().unwrap();
    let broker = FakeBroker::start(broker(vec!["pending"], ours)).await;
    let (stop, stopped) = oneshot::channel();
    let mut front = Recorder::new();
    front.stop = Some(stopped);
    let url = broker.url.clone();
    let waiting = tokio::spawn(async move { hold(&url, &mut front).await });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !called(&broker, "/wait") {
        assert!(
            std::time::Instant::now() < deadline,
            "the hold never waited"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(()).unwrap();
    let ending = waiting.await.unwrap();
    let Ending::Stopped {
        stop,
        withdrawal: Some((id, Withdrawal::Cancelled)),
    } = ending
    else {
        panic!("{ending:?}")
    };
    assert_eq!((stop, id.to_string().as_str()), ("stop", REQUEST_ID));
    assert!(called(&broker, "/cancel"));
    assert!(!called(&broker, "/v1/grants/consume"));
}
