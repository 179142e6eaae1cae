//! The real peers of the web inbox's browser test: the OpenID Connect provider (npm
//! `oidc-provider`, tests/peers/oidc) and headless Chromium driven through chromedriver, with a
//! small WebDriver client over a plain socket.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Fails (never skips) when a peer is missing, saying how to install it.
pub fn require_peers() {
    let provider = repo_root().join("tests/peers/oidc/node_modules/oidc-provider");
    for (path, what) in [
        (Path::new(CHROMIUM).to_path_buf(), "Chromium"),
        (Path::new(CHROMEDRIVER).to_path_buf(), "chromedriver"),
        (provider, "the oidc-provider npm package"),
    ] {
        assert!(
            path.exists(),
            "{what} is missing ({}): run scripts/install-test-peers",
            path.display()
        );
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 50 ms until it gives a value, or fails after `secs` saying `what`.
pub fn poll<T>(secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn wait_for_port(port: u16, what: &str) {
    poll(20, what, || TcpStream::connect(("127.0.0.1", port)).ok());
}

/// A child process killed when dropped.
#[derive(Debug)]
pub struct Peer(pub Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the provider on `port`, for a Countersign whose callback is `redirect_uri`.
pub fn start_provider(port: u16, redirect_uri: &str) -> Peer {
    let mut child = Command::new("node")
        .arg(repo_root().join("tests/peers/oidc/provider.mjs"))
        .arg(port.to_string())
        .arg(redirect_uri)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node is needed for the OpenID Connect provider: run scripts/install-test-peers");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.trim() == "ready" => break,
            Ok(_) => {}
            Err(_) => panic!("the OpenID Connect provider did not start"),
        }
    }
    Peer(child)
}

/// One HTTP/1.1 exchange with a JSON body; returns the JSON answer.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // chromedriver keeps the connection open: read the head, then Content-Length bytes.
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut payload = vec![0; length];
    reader.read_exact(&mut payload).unwrap();
    let payload = String::from_utf8_lossy(&payload);
    serde_json::from_str(&payload).unwrap_or(Value::Null)
}

/// A headless Chromium session through chromedriver.
#[derive(Debug)]
pub struct Browser {
    port: u16,
    session: String,
    _driver: Peer,
    profile: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = TcpStream::connect(("127.0.0.1", self.port)).map(|_| {
            http(
                self.port,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            )
        });
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    pub fn start(name: &str) -> Browser {
        let port = free_port();
        let driver = Peer(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver: run scripts/install-test-peers"),
        );
        wait_for_port(port, "chromedriver");
        let profile = std::env::temp_dir().join(format!(
            "countersign-chromium-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&profile);
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
            // Nothing but this machine: every other host name fails to resolve.
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let answer = http(
            port,
            "POST",
            "/session",
            Some(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
            }}})),
        );
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("Chromium did not start: {answer}"))
            .to_owned();
        Browser {
            port,
            session,
            _driver: driver,
            profile,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let answer = http(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        );
        if let Some(error) = answer["value"]["error"].as_str() {
            panic!(
                "WebDriver {method} {path}: {error}: {}",
                answer["value"]["message"]
            );
        }
        answer["value"].clone()
    }

    pub fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.call("GET", "/url", None).as_str().unwrap().to_owned()
    }

    /// Runs `script` in the page and returns what it returns.
    pub fn js(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    pub fn text(&self) -> String {
        self.js("return document.body ? document.body.innerText : ''")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Polls until the page's text contains `needle`; returns the text.
    pub fn wait_for_text(&self, needle: &str) -> String {
        poll(20, &format!("the page to say {needle:?}"), || {
            let text = self.text();
            text.contains(needle).then_some(text)
        })
    }

    fn element(&self, css: &str) -> String {
        poll(20, &format!("an element {css}"), || {
            let answer = http(
                self.port,
                "POST",
                &format!("/session/{}/element", self.session),
                Some(&json!({"using": "css selector", "value": css})),
            );
            answer["value"]
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(Value::as_str)
                .map(str::to_owned)
                .filter(|_| answer["value"]["error"].is_null())
        })
    }

    pub fn click(&self, css: &str) {
        let element = self.element(css);
        self.call(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css);
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        );
    }

    pub fn delete_cookies(&self) {
        self.call("DELETE", "/cookie", None);
    }

    pub fn resize(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        );
    }

    /// Saves a PNG of the page to target/screenshots/NAME.png.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let data = self.call("GET", "/screenshot", None);
        let dir = repo_root().join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        let mut decode = Command::new("base64")
            .arg("-d")
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(&path).unwrap())
            .spawn()
            .unwrap();
        decode
            .stdin
            .take()
            .unwrap()
            .write_all(data.as_str().unwrap().as_bytes())
            .unwrap();
        assert!(decode.wait().unwrap().success());
        path
    }
}
