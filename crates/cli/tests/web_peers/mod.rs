//! The real peers of the web inbox's browser test: the OpenID Connect provider (npm
//! `oidc-provider`, tests/peers/oidc) and headless Chromium driven through chromedriver, with a
//! small WebDriver client on reqwest.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use countersign_test_support::ports;
pub use countersign_test_support::ports::free_port;
pub use countersign_test_support::process::{Peer, repo_root};
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

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

/// Polls `check` until it gives a value, or fails after `secs` saying `what`.
pub fn poll<T>(secs: u64, what: &str, check: impl FnMut() -> Option<T>) -> T {
    countersign_test_support::poll::until(Duration::from_secs(secs), what, check)
}

pub fn wait_for_port(port: u16, what: &str) {
    ports::wait_for_port(port, what, Duration::from_secs(20));
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

/// One WebDriver call to chromedriver on `port`, with a JSON body; returns the JSON answer (null
/// when it is not JSON). The tests are synchronous: each call runs on its own small runtime.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let url = format!("http://127.0.0.1:{port}{path}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let mut request = client.request(method, url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request.send().await.unwrap();
        answer.json().await.unwrap_or(Value::Null)
    })
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
