//! Loopback ports for test servers: one nobody listens on yet, and waiting until someone does.

use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// A port on 127.0.0.1 that was free a moment ago (the OS picked it), for a server a test starts
/// in another process.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls until something listens on 127.0.0.1:`port`; fails the test after `within`, naming `what`.
pub fn wait_for_port(port: u16, what: &str, within: Duration) {
    crate::poll::until(within, &format!("{what} to listen on port {port}"), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
}
