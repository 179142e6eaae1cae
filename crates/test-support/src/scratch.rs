//! Scratch directories: one per use, under the system's temporary directory, named after the test
//! process so that parallel test processes never share one.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh, empty directory, removed with everything in it when dropped (also when the test
/// fails). It derefs to its path.
#[derive(Debug)]
pub struct Scratch(pub PathBuf);

static NEXT: AtomicU32 = AtomicU32::new(0);

/// `countersign-NAME-PID-N` in the temporary directory, with nothing there yet (removed if a
/// crashed run left it): for code under test that creates its own directory.
pub fn unused_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "countersign-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&path);
    path
}

impl Scratch {
    /// `countersign-test-PID-N` in the temporary directory.
    pub fn new() -> Scratch {
        Scratch::named("test")
    }

    /// `countersign-NAME-PID-N` in the temporary directory, emptied if a crashed run left it.
    pub fn named(name: &str) -> Scratch {
        let dir = unused_path(name);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// `countersign.db` in the directory: where a test's SQLite store lives.
    pub fn database(&self) -> PathBuf {
        self.0.join("countersign.db")
    }

    /// A path in the directory nothing has used yet, ending in `name`: for a test that opens
    /// several databases side by side.
    pub fn unique(&self, name: &str) -> PathBuf {
        self.0
            .join(format!("{}-{name}", NEXT.fetch_add(1, Ordering::Relaxed)))
    }

    /// Gives the directory up to the caller, who removes it (or leaves it to look at).
    pub fn keep(mut self) -> PathBuf {
        std::mem::take(&mut self.0)
    }
}

impl Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Empty once kept.
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
