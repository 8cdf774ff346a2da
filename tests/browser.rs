//! A real, headless Chromium for end-to-end tests of what Waymark shows in
//! a browser (the simulation report, the daemon's pages): [`Browser::start`]
//! starts `chromedriver` on a free loopback port and opens a session in
//! which the page's console is recorded; the test then navigates, finds
//! elements by CSS selector, reads their text and attributes, fills fields,
//! clicks, runs scripts, reads cookies, reads the console's errors and
//! takes PNG screenshots. Dropping the browser ends the session and stops
//! chromedriver (and the Chromium it started).
//!
//! The API is blocking, like the rest of the tests: each call runs the
//! WebDriver request on a small tokio runtime of the browser's own. Calls
//! that cannot do what they say panic with a message naming the selector
//! and the page (a test wants that); [`Browser::try_find`] is for "is it
//! there?". WebDriver is spoken by `fantoccini` (over rustls, no OpenSSL);
//! the console is read with chromedriver's log command, which it does not
//! wrap.
//!
//! Needs `chromedriver` and Chromium (Debian: `apt-get install chromium
//! chromium-driver`). `CHROMEDRIVER` names another driver binary and
//! `CHROME` another browser binary. Tests that use it are `#[ignore]`d,
//! for machines without them; `.ci/run` installs both and runs them.
//!
//! ```no_run
//! use waymark_tests::browser::Browser;
//! let browser = Browser::start();
//! browser.goto("http://127.0.0.1:7878/console/login");
//! browser.fill("input[name=token]", "secret");
//! browser.click("button[type=submit]");
//! browser.wait_for("nav .user", std::time::Duration::from_secs(5));
//! assert!(browser.console_errors().is_empty());
//! browser.screenshot("target/e2e/console.png");
//! ```

use fantoccini::elements::Element as WdElement;
use fantoccini::error::CmdError;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value as Json, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How the browser is started.
#[derive(Debug, Clone)]
pub struct Options {
    /// The size of the window's inside, in CSS pixels (device scale 1):
    /// what pages lay out in and screenshots show.
    pub width: u32,
    pub height: u32,
    /// More Chromium switches (`--lang=zh-CN` …).
    pub args: Vec<String>,
    /// How long `chromedriver` may take to answer, and a page to load.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            width: 1200,
            height: 900,
            args: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// One entry of the browser's console log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// `SEVERE` (errors, failed loads), `WARNING`, `INFO`, `DEBUG`.
    pub level: String,
    pub message: String,
    /// `console-api`, `network`, `javascript` …
    pub source: String,
}

/// A Chromium session driven over WebDriver.
pub struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    /// Every console entry read so far (reading the log empties the
    /// browser's buffer).
    log: std::sync::Mutex<Vec<LogEntry>>,
}

/// An element of the page.
pub struct Element<'b> {
    browser: &'b Browser,
    inner: WdElement,
    /// The selector it was found by, for messages.
    selector: String,
}

impl Browser {
    /// Whether a `chromedriver` can be found (`CHROMEDRIVER`, else `PATH`).
    pub fn available() -> bool {
        chromedriver().is_some()
    }

    /// A browser with the default options (1200×900).
    pub fn start() -> Browser {
        Browser::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Browser {
        // The WebDriver client's TLS needs a process-wide crypto provider
        // when the build enables two (a workspace build does); another
        // test may have installed it already.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let driver = chromedriver().unwrap_or_else(|| {
            panic!(
                "no chromedriver on PATH (install Chromium and its driver: `apt-get install chromium chromium-driver`, or set CHROMEDRIVER)"
            )
        });
        let port = crate::free_port();
        let mut command = Command::new(&driver);
        command
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so that everything it started can be
        // stopped with it.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
        let until = Instant::now() + options.timeout;
        loop {
            let answer = crate::Client::new(port).request("GET", "/status", &[], b"");
            if let Ok((200, body)) = &answer
                && serde_json::from_slice::<Json>(body)
                    .is_ok_and(|s| s["value"]["ready"] == json!(true))
            {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("chromedriver exited ({status}) before it answered on port {port}");
            }
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "chromedriver did not answer on port {port} within {:?}",
                    options.timeout
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime for the browser");
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-extensions".into(),
            "--no-first-run".into(),
            "--hide-scrollbars".into(),
            "--force-device-scale-factor=1".into(),
            format!("--window-size={},{}", options.width, options.height),
        ];
        args.extend(options.args.iter().cloned());
        let mut chrome = json!({ "args": args });
        if let Some(binary) = std::env::var_os("CHROME") {
            chrome["binary"] = json!(PathBuf::from(binary));
        }
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": chrome,
            "goog:loggingPrefs": { "browser": "ALL" },
            "timeouts": { "pageLoad": options.timeout.as_millis() as u64, "script": options.timeout.as_millis() as u64 },
        });
        let Json::Object(capabilities) = capabilities else {
            unreachable!("an object")
        };
        let connected = runtime.block_on(async {
            ClientBuilder::rustls()
                .map_err(|e| e.to_string())?
                .capabilities(capabilities)
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
                .map_err(|e| e.to_string())
        });
        let client = match connected {
            Ok(client) => client,
            Err(e) => {
                stop(&mut child);
                panic!("cannot open a Chromium session through chromedriver: {e}");
            }
        };
        let browser = Browser {
            runtime,
            client: Some(client),
            driver: child,
            log: std::sync::Mutex::new(Vec::new()),
        };
        browser.set_window_size(options.width, options.height);
        browser
    }

    /// Sizes the window so that its inside (what a page lays out in and
    /// a screenshot shows) is `width` × `height` CSS pixels.
    pub fn set_window_size(&self, width: u32, height: u32) {
        self.run(
            "resizing the window",
            self.client().set_window_size(width, height),
        );
        let frame = self.script(
            "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight];",
            vec![],
        );
        let (dx, dy) = (
            frame[0].as_u64().unwrap_or(0),
            frame[1].as_u64().unwrap_or(0),
        );
        if dx > 0 || dy > 0 {
            self.run(
                "resizing the window",
                self.client()
                    .set_window_size(width + dx as u32, height + dy as u32),
            );
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open")
    }

    fn run<T>(&self, what: &str, f: impl std::future::Future<Output = Result<T, CmdError>>) -> T {
        self.runtime
            .block_on(f)
            .unwrap_or_else(|e| panic!("{what}: {e} (on {})", self.url_or_blank()))
    }

    fn url_or_blank(&self) -> String {
        self.runtime
            .block_on(self.client().current_url())
            .map(|u| u.to_string())
            .unwrap_or_else(|_| "?".into())
    }

    /// Opens `url` and waits for it to load.
    pub fn goto(&self, url: &str) {
        self.run(&format!("opening {url}"), self.client().goto(url));
    }

    /// Opens a local file.
    pub fn open_file(&self, path: &Path) {
        let path = std::fs::canonicalize(path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        let url = url::Url::from_file_path(&path).expect("an absolute path");
        self.goto(url.as_str());
    }

    pub fn url(&self) -> String {
        self.run("reading the URL", self.client().current_url())
            .to_string()
    }

    pub fn title(&self) -> String {
        self.run("reading the title", self.client().title())
    }

    /// The page's HTML as it is now.
    pub fn source(&self) -> String {
        self.run("reading the page source", self.client().source())
    }

    pub fn back(&self) {
        self.run("going back", self.client().back());
    }

    pub fn refresh(&self) {
        self.run("reloading", self.client().refresh());
    }

    /// Every console entry since the session started: `console.log` and
    /// `console.error` calls, uncaught exceptions, failed loads.
    pub fn console(&self) -> Vec<LogEntry> {
        let answer = self.run(
            "reading the browser log",
            self.client().issue_cmd(BrowserLog),
        );
        let mut log = self.log.lock().expect("the log lock");
        for entry in answer.as_array().into_iter().flatten() {
            let text = |key: &str| entry[key].as_str().unwrap_or_default().to_string();
            log.push(LogEntry {
                level: text("level"),
                message: text("message"),
                source: text("source"),
            });
        }
        log.clone()
    }

    /// The console's `SEVERE` entries since the session started: errors
    /// logged, scripts that threw, resources that failed to load.
    pub fn console_errors(&self) -> Vec<LogEntry> {
        self.console()
            .into_iter()
            .filter(|e| e.level == "SEVERE")
            .collect()
    }

    /// The first element matching a CSS selector; panics if there is none.
    pub fn find(&self, css: &str) -> Element<'_> {
        self.try_find(css)
            .unwrap_or_else(|| panic!("no element matches `{css}` on {}", self.url_or_blank()))
    }

    /// The first element matching a CSS selector, if any.
    pub fn try_find(&self, css: &str) -> Option<Element<'_>> {
        match self.runtime.block_on(self.client().find(Locator::Css(css))) {
            Ok(inner) => Some(self.element(inner, css)),
            Err(e) if e.is_no_such_element() => None,
            Err(e) => panic!("finding `{css}`: {e}"),
        }
    }

    /// Every element matching a CSS selector, in document order.
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        self.run(
            &format!("finding `{css}`"),
            self.client().find_all(Locator::Css(css)),
        )
        .into_iter()
        .map(|inner| self.element(inner, css))
        .collect()
    }

    /// Waits until an element matches (a page that builds itself, a form
    /// answered by a new page); panics after `timeout`.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Element<'_> {
        let inner = self.run(
            &format!("waiting {timeout:?} for `{css}`"),
            self.client()
                .wait()
                .at_most(timeout)
                .every(Duration::from_millis(50))
                .for_element(Locator::Css(css)),
        );
        self.element(inner, css)
    }

    /// Waits until `script` (a function body) returns true; panics after
    /// `timeout`, naming `what`.
    pub fn wait_until(&self, what: &str, timeout: Duration, script: &str) {
        let until = Instant::now() + timeout;
        while self.script(script, vec![]) != json!(true) {
            assert!(
                Instant::now() < until,
                "timed out after {timeout:?} waiting for {what} on {}",
                self.url_or_blank()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The visible text of the first element matching `css`.
    pub fn text(&self, css: &str) -> String {
        self.find(css).text()
    }

    /// Clicks the first element matching `css`.
    pub fn click(&self, css: &str) {
        self.find(css).click();
    }

    /// Replaces the value of the field matching `css` by typing `text`.
    pub fn fill(&self, css: &str, text: &str) {
        self.find(css).fill(text);
    }

    /// Runs `script` as the body of a function in the page (`arguments[0]`
    /// … are `args`; elements pass as `Element::json`); returns what it
    /// returns.
    pub fn script(&self, script: &str, args: Vec<Json>) -> Json {
        self.run("running a script", self.client().execute(script, args))
    }

    /// Like [`Browser::script`], for a script that ends by calling its
    /// last argument (a callback) with its result: `fetch` and the like.
    pub fn script_async(&self, script: &str, args: Vec<Json>) -> Json {
        self.run(
            "running an async script",
            self.client().execute_async(script, args),
        )
    }

    /// The cookies of the page, as (name, value).
    pub fn cookies(&self) -> Vec<(String, String)> {
        self.run("reading cookies", self.client().get_all_cookies())
            .iter()
            .map(|c| (c.name().to_string(), c.value().to_string()))
            .collect()
    }

    /// A PNG of the window as it is now, written to `path` (its folder
    /// made if needed); returns its bytes.
    pub fn screenshot(&self, path: impl AsRef<Path>) -> Vec<u8> {
        let png = self.run("taking a screenshot", self.client().screenshot());
        write(path.as_ref(), &png);
        png
    }

    fn element(&self, inner: WdElement, css: &str) -> Element<'_> {
        Element {
            browser: self,
            inner,
            selector: css.to_string(),
        }
    }

    /// Ends the session and stops chromedriver (dropping does the same).
    pub fn close(self) {}
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), client.close()).await
            });
        }
        stop(&mut self.driver);
    }
}

/// Stops chromedriver and what it started (its process group).
fn stop(driver: &mut Child) {
    #[cfg(unix)]
    {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", driver.id())])
            .stderr(Stdio::null())
            .status();
    }
    let _ = driver.kill();
    let _ = driver.wait();
}

impl Element<'_> {
    fn run<T>(&self, what: &str, f: impl std::future::Future<Output = Result<T, CmdError>>) -> T {
        self.browser
            .run(&format!("{what} of `{}`", self.selector), f)
    }

    /// Its rendered text (what a user sees; empty if hidden).
    pub fn text(&self) -> String {
        self.run("reading the text", self.inner.text())
    }

    /// Its `textContent`, seen or not (SVG text, hidden elements).
    pub fn text_content(&self) -> String {
        self.prop("textContent").unwrap_or_default()
    }

    pub fn attr(&self, name: &str) -> Option<String> {
        self.run(&format!("reading attribute {name}"), self.inner.attr(name))
    }

    /// A DOM property (`value`, `checked`, `textContent` …).
    pub fn prop(&self, name: &str) -> Option<String> {
        self.run(&format!("reading property {name}"), self.inner.prop(name))
    }

    /// Its outer HTML.
    pub fn html(&self) -> String {
        self.run("reading the HTML", self.inner.html(false))
    }

    pub fn is_displayed(&self) -> bool {
        self.run("reading whether it is shown", self.inner.is_displayed())
    }

    /// Its box on the page: (x, y, width, height) in CSS pixels.
    pub fn rect(&self) -> (f64, f64, f64, f64) {
        self.run("reading the box", self.inner.rectangle())
    }

    pub fn click(&self) {
        self.run("clicking", self.inner.click());
    }

    /// Clears the field and types `text`.
    pub fn fill(&self, text: &str) {
        self.run("clearing", self.inner.clear());
        self.run("typing into", self.inner.send_keys(text));
    }

    /// The first element inside it matching `css`; panics if none.
    pub fn find(&self, css: &str) -> Element<'_> {
        let inner = self.run(
            &format!("finding `{css}` inside"),
            self.inner.find(Locator::Css(css)),
        );
        self.browser.element(inner, css)
    }

    /// Every element inside it matching `css`.
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        self.run(
            &format!("finding `{css}` inside"),
            self.inner.find_all(Locator::Css(css)),
        )
        .into_iter()
        .map(|inner| self.browser.element(inner, css))
        .collect()
    }

    /// The element as a script argument (`arguments[0]` is it).
    pub fn json(&self) -> Json {
        serde_json::to_value(&self.inner).expect("an element reference")
    }

    /// A PNG of just this element, written to `path`.
    pub fn screenshot(&self, path: impl AsRef<Path>) -> Vec<u8> {
        let png = self.run("taking a screenshot", self.inner.screenshot());
        write(path.as_ref(), &png);
        png
    }
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("cannot make {}: {e}", dir.display()));
    }
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// `CHROMEDRIVER`, else `chromedriver` on `PATH`.
fn chromedriver() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMEDRIVER") {
        return Some(PathBuf::from(path));
    }
    let name = format!("chromedriver{}", std::env::consts::EXE_SUFFIX);
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(&name))
        .find(|p| p.is_file())
}

/// chromedriver's command for the browser's console log (not in the W3C
/// protocol, so not among fantoccini's): returns the entries since the
/// last call.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(r#"{"type":"browser"}"#.to_string()),
        )
    }
}
