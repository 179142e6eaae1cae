//! The notifier loop: one worker per request, and changes that arrive while it works coalesce
//! into one more pass, so a burst of changes costs two syncs, never one per change.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use countersign_broker::{Broker, Config};
use countersign_channel::{Channel, Notifier};
use countersign_model::{RequestId, SecretKey};
use countersign_policy::Policy;
use countersign_store::{SqliteStore, Store};
use tokio::sync::Semaphore;

/// A channel whose syncs wait for the test to let each one finish.
#[derive(Debug)]
struct Gated {
    entered: AtomicUsize,
    finish: Semaphore,
}

/// The channel the notifier owns; the test keeps the other handle.
struct Gate(Arc<Gated>);

impl Channel for Gate {
    fn service(&self) -> &'static str {
        "test"
    }

    fn title(&self) -> &'static str {
        "the test channel"
    }

    async fn sync(&self, _broker: &Broker, _id: RequestId) {
        self.0.entered.fetch_add(1, Ordering::SeqCst);
        self.0.finish.acquire().await.unwrap().forget();
    }
}

async fn broker(dir: &std::path::Path) -> Broker {
    let key = SecretKey::from_seed([7; 32]);
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.join("countersign.db"), Some(key.clone()))
            .await
            .unwrap(),
    );
    let config = Config::parse("data_dir = \"unused\"\npolicy = \"unused\"\n").unwrap();
    let policy = Policy::parse("version = 1\ndefault = \"deny\"\n").unwrap();
    let loader = Arc::new(|| Err("no policy file in this test".to_owned()));
    Broker::start(&config, policy, loader, store, key)
        .await
        .unwrap()
}

/// Polls until `entered` reaches `n`, within a deadline.
async fn entered(gated: &Gated, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while gated.entered.load(Ordering::SeqCst) < n {
        assert!(Instant::now() < deadline, "sync {n} never started");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_during_a_sync_coalesce_into_one_more_pass() {
    let dir = std::env::temp_dir().join(format!("countersign-channel-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let gated = Arc::new(Gated {
        entered: AtomicUsize::new(0),
        finish: Semaphore::new(0),
    });
    let notifier = Arc::new(Notifier::new(broker(&dir).await, Gate(Arc::clone(&gated))));
    let id = RequestId::from_random([1; 16]);

    notifier.touch(id);
    entered(&gated, 1).await;
    for _ in 0..5 {
        notifier.touch(id);
    }
    gated.finish.add_permits(1);
    entered(&gated, 2).await;
    gated.finish.add_permits(1);
    // The burst cost one more pass; a later change starts another.
    notifier.touch(id);
    entered(&gated, 3).await;
    gated.finish.add_permits(1);
    assert_eq!(gated.entered.load(Ordering::SeqCst), 3);
    let _ = std::fs::remove_dir_all(&dir);
}
