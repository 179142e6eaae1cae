//! A relay that only copies bytes, for `bench/mcp.sh`: what any process between an MCP client
//! and its server costs on the machine at hand (the extra pipe or socket hops and the wake-ups
//! they bring), measured beside `countersign mcp` in the same run. It looks at nothing.
//!
//!     bare_relay -- COMMAND [ARGS…]        stdio: starts COMMAND; stdin → its stdin, its stdout → stdout
//!     bare_relay LISTEN_ADDR UPSTREAM_ADDR  TCP: each connection copied to a new one to UPSTREAM_ADDR

// A benchmark tool: it stops loudly when started wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::process::{Command, Stdio};

fn copy(mut from: impl Read, mut to: impl Write) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to
                    .write_all(&buffer[..n])
                    .and_then(|()| to.flush())
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

fn stdio(command: &[String]) {
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot start the server");
    let (to_server, from_server) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
    std::thread::spawn(move || copy(std::io::stdin(), to_server));
    copy(from_server, std::io::stdout());
    let _ = child.wait();
}

fn tcp(listen: &str, upstream: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
        loop {
            let (mut client, _) = listener.accept().await.unwrap();
            let upstream = upstream.to_owned();
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [dash, command @ ..] if dash == "--" && !command.is_empty() => stdio(command),
        [listen, upstream] => tcp(listen, upstream),
        _ => panic!("usage: bare_relay -- COMMAND [ARGS…] | bare_relay LISTEN_ADDR UPSTREAM_ADDR"),
    }
}
