//! Child processes a test starts (a broker, a peer server, a browser's driver), killed and reaped
//! when dropped so that a failing test leaves nothing running.

use std::path::{Path, PathBuf};
use std::process::Child;

/// A child process killed when dropped.
#[derive(Debug)]
pub struct Peer(pub Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The repository's root, where `tests/peers` and `examples` are.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
