//! A real headless Chromium for the web console's tests, driven through WebDriver with `fantoccini`, and the
//! checks a person would make of a page: accessibility (axe-core), screenshots, a phone-sized viewport.
//!
//! `scripts/browser` installs what this needs (Debian's `chromium` and `chromium-driver`, and axe-core in
//! `target/browser/axe.min.js`); `make test` runs it. Nothing is downloaded at test time, and a missing piece
//! fails the test with a message that says to run that script: these tests never skip.
//!
//! ```text
//!   Browser::start ─► chromedriver --port=N (its own process group; log in target/test-logs/chromedriver-N.log)
//!                  ─► GET /status until ready ─► new session: headless Chromium, 1280x900, en-US, its own profile
//!                     dir in target/browser/profiles/N
//!   the test ─► client.goto(url), wait_for_element, fill, click, text, axe_violations, screenshot, set_viewport
//!   Browser::close ─► session deleted (Chromium quits) ─► chromedriver stopped ─► profile removed
//!   a dropped Browser (a failed test) ─► chromedriver's process group killed, Chromium with it ─► profile removed
//! ```
//!
//! Every browser has its own chromedriver on a free port and its own profile, so tests run in parallel.
//! Environment: `SWITCHYARD_TEST_CHROMIUM` (default `/usr/bin/chromium`), `SWITCHYARD_TEST_CHROMEDRIVER`
//! (default `/usr/bin/chromedriver`), `SWITCHYARD_TEST_AXE` (default `target/browser/axe.min.js` in the
//! workspace).
//!
//! The helpers take a [`Client`], and a [`Browser`] dereferences to its client, so `&browser` serves:
//!
//! ```ignore
//! let browser = Browser::start().await;
//! browser.goto(&format!("http://{address}/console/")).await.unwrap();
//! fill(&browser, "#token", "secret").await;
//! click(&browser, "button[type=submit]").await;
//! assert_eq!(wait_for_text(&browser, "h1", "Plugins").await, "Plugins");
//! let violations = axe_violations(&browser, &["serious", "critical"]).await;
//! assert!(violations.is_empty(), "{}", describe(&violations));
//! screenshot(&browser, screenshot_path("console-plugins")).await;
//! browser.close().await;
//! ```

use std::fmt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};
use switchyard_fixtures::process::Supervised;

use crate::binaries::{free_address, supervise};

/// How long the helpers wait for an element or a text before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// The viewport every browser starts with (`innerWidth` x `innerHeight`), in CSS pixels.
pub const DESKTOP: (u32, u32) = (1280, 900);

/// A phone's viewport in CSS pixels (an iPhone 12 to 15), for [`set_viewport`].
pub const PHONE: (u32, u32) = (390, 844);

/// How long chromedriver may take to answer `/status` with `ready`.
const DRIVER_READY_WITHIN: Duration = Duration::from_secs(20);

/// How long Chromium may take to start and open the session.
const SESSION_WITHIN: Duration = Duration::from_secs(60);

/// How often the waits look again.
const POLL: Duration = Duration::from_millis(50);

/// The axe-core version `scripts/browser` fetches; an `axe.min.js` of another version fails the test.
pub const AXE_VERSION: &str = "4.14.1";

/// A headless Chromium under its own chromedriver, with one WebDriver session open. It dereferences to the
/// session's [`Client`].
///
/// Invariant: while a `Browser` exists its chromedriver runs; [`Browser::close`] ends the session cleanly, and
/// dropping it instead (a panicking test) kills chromedriver's whole process group, Chromium included, so no
/// browser outlives its test.
pub struct Browser {
    client: Client,
    driver: Driver,
}

/// The chromedriver process, the leader of a process group that Chromium's processes join, and Chromium's
/// profile directory: killed and removed when dropped.
struct Driver {
    process: Supervised,
    profile: PathBuf,
}

impl Browser {
    /// Starts chromedriver on a free loopback port, waits until it is ready and opens a session with a headless
    /// Chromium (`--lang=en-US`, a fresh profile) whose viewport is [`DESKTOP`], 1280x900. Fails the test if a
    /// binary is missing (saying to run `scripts/browser`), if chromedriver is not ready within 20 s, or if the
    /// session cannot be opened within 60 s.
    pub async fn start() -> Browser {
        let chromium = required_file(
            "SWITCHYARD_TEST_CHROMIUM",
            PathBuf::from("/usr/bin/chromium"),
            "Chromium",
        );
        let chromedriver = required_file(
            "SWITCHYARD_TEST_CHROMEDRIVER",
            PathBuf::from("/usr/bin/chromedriver"),
            "ChromeDriver",
        );
        let port = free_address().port();
        let log = workspace_target().join(format!("test-logs/chromedriver-{port}.log"));
        std::fs::create_dir_all(log.parent().expect("a folder"))
            .unwrap_or_else(|error| panic!("cannot create the folder of {}: {error}", log.display()));
        // A port is reused across runs: its log starts afresh.
        let _ = std::fs::remove_file(&log);
        let profile = workspace_target().join(format!("browser/profiles/{port}"));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", profile.display()));

        let process = supervise(
            Command::new(&chromedriver)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .args(["--append-log", "--log-level=INFO", "--readable-timestamp"])
                // Its own process group, so that a drop can kill Chromium with it: chromedriver killed alone
                // leaves its browser running.
                .process_group(0),
            &log,
        );
        let mut driver = Driver { process, profile };
        let webdriver = format!("http://127.0.0.1:{port}");
        wait_until_ready(&webdriver, &mut driver).await;

        let mut args = vec![
            "--headless=new".to_owned(),
            "--disable-gpu".to_owned(),
            // /dev/shm is small in containers; Chromium's shared memory goes to /tmp instead.
            "--disable-dev-shm-usage".to_owned(),
            format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
            "--lang=en-US".to_owned(),
            format!("--user-data-dir={}", driver.profile.display()),
        ];
        // Chromium refuses to start as root with its sandbox; as any other user the sandbox stays on.
        if running_as_root() {
            args.push("--no-sandbox".to_owned());
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".to_owned(), json!("chrome"));
        // The page's console is kept, so that a test can read its errors (`console_errors`).
        capabilities.insert("goog:loggingPrefs".to_owned(), json!({"browser": "ALL"}));
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": args,
                "prefs": {"intl.accept_languages": "en-US"},
            }),
        );
        let mut builder = ClientBuilder::new(HttpConnector::new());
        let connecting = builder.capabilities(capabilities).connect(&webdriver);
        let client = match tokio::time::timeout(SESSION_WITHIN, connecting).await {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => panic!(
                "chromedriver did not open a session with {}: {error}; chromedriver's log: {}",
                chromium.display(),
                driver.process.log().display()
            ),
            Err(_) => panic!(
                "no browser session within {SESSION_WITHIN:?}; chromedriver's log: {}",
                driver.process.log().display()
            ),
        };
        // Headless Chromium still takes room for a browser's toolbars out of the window (143 px of 900): the page
        // gets the full size, as on a desktop screen of that size.
        set_viewport(&client, DESKTOP.0, DESKTOP.1).await;
        Browser { client, driver }
    }

    /// The WebDriver session (also reached by dereferencing the browser).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// chromedriver's log, with Chromium's start-up and every WebDriver command: where to look after a failure.
    pub fn log(&self) -> &Path {
        self.driver.process.log()
    }

    /// Ends the session (Chromium quits and chromedriver removes nothing of ours), then stops chromedriver and
    /// removes the profile. Fails the test if the session cannot be closed: a browser that cannot quit cleanly
    /// is a finding.
    pub async fn close(self) {
        let Browser { client, driver } = self;
        client.close().await.unwrap_or_else(|error| {
            panic!(
                "closing the browser session failed: {error}; chromedriver's log: {}",
                driver.process.log().display()
            )
        });
        // chromedriver has nothing left to flush once the session is gone: the drop's SIGKILL is its end.
        drop(driver);
    }
}

impl std::ops::Deref for Browser {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Chromium's processes are in chromedriver's process group (its crash handlers, in sessions of their
        // own, exit when the browser does). The group is killed before chromedriver is reaped, and Linux gives
        // no new process a group's id while any member lives: the signal reaches only this browser.
        if let Ok(pid) = i32::try_from(self.process.pid()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.process.kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Polls chromedriver's `/status` until it says `ready`, failing the test with its log's path if it exits or
/// is not ready within [`DRIVER_READY_WITHIN`].
async fn wait_until_ready(webdriver: &str, driver: &mut Driver) {
    // No proxy from the environment stands between the test and loopback.
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("an HTTP client");
    let started = Instant::now();
    loop {
        let last = match http
            .get(format!("{webdriver}/status"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
        {
            Ok(response) => match response.json::<Value>().await {
                Ok(status) if status["value"]["ready"] == true => return,
                Ok(status) => status.to_string(),
                Err(error) => error.to_string(),
            },
            Err(error) => error.to_string(),
        };
        if let Some(status) = driver.process.exited() {
            panic!(
                "chromedriver exited ({status}) before it was ready; its log: {}",
                driver.process.log().display()
            );
        }
        assert!(
            started.elapsed() < DRIVER_READY_WITHIN,
            "chromedriver at {webdriver} not ready within {DRIVER_READY_WITHIN:?} (last: {last}); its log: {}",
            driver.process.log().display()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// `$variable` if set, else `default`; fails the test, saying how to install it, when the file is missing.
fn required_file(variable: &str, default: PathBuf, what: &str) -> PathBuf {
    let path = std::env::var_os(variable).map_or(default, PathBuf::from);
    assert!(
        path.is_file(),
        "{what} is missing at {} ({variable}): run scripts/browser, which installs Chromium, ChromeDriver and \
         axe-core (make test does)",
        path.display()
    );
    path
}

/// Whether this process runs with effective user id 0, from `/proc/self/status` (`Uid: real effective ...`).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|effective| effective == "0"))
        })
        .unwrap_or(false)
}

/// The workspace's `target` folder, where `scripts/browser` puts axe-core and the tests put screenshots.
fn workspace_target() -> PathBuf {
    // Without `..`: Chromium's file functions refuse paths that reference a parent, and ChromeDriver then waits
    // in vain for the DevToolsActivePort file in the profile.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is a folder of the workspace")
        .join("target")
}

// --- Accessibility ---------------------------------------------------------------------------------------------

/// One rule that axe-core found broken on the page, with the elements that break it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule, e.g. `image-alt`, `label`, `color-contrast`.
    pub id: String,
    /// How bad axe-core says it is: `minor`, `moderate`, `serious` or `critical`.
    pub impact: String,
    /// What the rule asks for, one sentence.
    pub help: String,
    /// Deque's page on the rule.
    pub help_url: String,
    /// The elements that break it.
    pub nodes: Vec<ViolatingNode>,
}

/// An element that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViolatingNode {
    /// CSS selectors that reach it, one per frame it is in; inside a shadow root, the host's and the element's
    /// selectors joined by ` >>> `.
    pub target: Vec<String>,
    /// Its opening HTML, as axe-core quotes it.
    pub html: String,
}

impl fmt::Display for Violation {
    /// `color-contrast (serious): Elements must meet minimum color contrast ratio thresholds`, then one line per
    /// element: its selector and its HTML.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {} <{}>",
            self.id, self.impact, self.help, self.help_url
        )?;
        for node in &self.nodes {
            let html: String = node.html.chars().take(160).collect();
            write!(f, "\n    {}  {html}", node.target.join(" >>> "))?;
        }
        Ok(())
    }
}

/// All `violations`, one [`Violation`] paragraph each, or `no violations`: for assertion messages.
pub fn describe(violations: &[Violation]) -> String {
    if violations.is_empty() {
        return "no violations".to_owned();
    }
    let list: Vec<String> = violations.iter().map(Violation::to_string).collect();
    format!("{} violation(s):\n  {}", violations.len(), list.join("\n  "))
}

/// The ids of `violations`, sorted: for comparing with the rules a test expects broken.
pub fn violation_ids(violations: &[Violation]) -> Vec<&str> {
    let mut ids: Vec<&str> = violations.iter().map(|violation| violation.id.as_str()).collect();
    ids.sort_unstable();
    ids
}

/// Runs axe-core on the current page and returns its violations whose impact is one of `impacts` (e.g.
/// `&["serious", "critical"]`). Injects `target/browser/axe.min.js` (or `$SWITCHYARD_TEST_AXE`) into the page
/// first if it is not there: a navigation removes it. Fails the test if the file is missing or of another
/// version than [`AXE_VERSION`], or if axe-core fails.
pub async fn axe_violations(client: &Client, impacts: &[&str]) -> Vec<Violation> {
    let loaded = client
        .execute("return typeof window.axe === 'object';", vec![])
        .await
        .unwrap_or_else(|error| panic!("cannot run a script in the page: {error}"));
    if loaded != Value::Bool(true) {
        let source = axe_source();
        // As the body of the script's function: axe.min.js sets window.axe.
        let script = format!("{source}\n;return typeof window.axe === 'object';");
        let injected = client
            .execute(&script, vec![])
            .await
            .unwrap_or_else(|error| panic!("injecting axe-core failed: {error}"));
        assert_eq!(injected, Value::Bool(true), "axe-core did not set window.axe");
    }
    // ChromeDriver waits for a promise that a script returns (WebDriver's Execute Script); only what the
    // violations need crosses back, not axe-core's whole result.
    let found = client
        .execute(
            r"return axe.run(document, {resultTypes: ['violations']}).then((results) =>
                results.violations.map((violation) => ({
                    id: violation.id,
                    impact: violation.impact || '',
                    help: violation.help,
                    helpUrl: violation.helpUrl,
                    nodes: violation.nodes.map((node) => ({
                        target: node.target.map((selector) =>
                            Array.isArray(selector) ? selector.join(' >>> ') : String(selector)),
                        html: node.html,
                    })),
                })));",
            vec![],
        )
        .await
        .unwrap_or_else(|error| panic!("axe.run failed: {error}"));
    let Value::Array(found) = found else {
        panic!("axe.run answered {found}, not a list of violations");
    };
    found
        .iter()
        .map(violation_from_json)
        .filter(|violation| impacts.contains(&violation.impact.as_str()))
        .collect()
}

/// Fails the test, listing them with the page's URL, if axe-core finds violations of `impacts` on the current
/// page.
pub async fn assert_accessible(client: &Client, impacts: &[&str]) {
    let violations = axe_violations(client, impacts).await;
    if !violations.is_empty() {
        let url = client
            .current_url()
            .await
            .map_or_else(|error| format!("(no URL: {error})"), |url| url.to_string());
        panic!("axe-core finds on {url} {}", describe(&violations));
    }
}

fn violation_from_json(value: &Value) -> Violation {
    let text = |value: &Value, key: &str| value[key].as_str().unwrap_or_default().to_owned();
    let nodes = value["nodes"].as_array().map_or_else(Vec::new, |nodes| {
        nodes
            .iter()
            .map(|node| ViolatingNode {
                target: node["target"].as_array().map_or_else(Vec::new, |targets| {
                    targets
                        .iter()
                        .filter_map(|target| target.as_str().map(str::to_owned))
                        .collect()
                }),
                html: text(node, "html"),
            })
            .collect()
    });
    Violation {
        id: text(value, "id"),
        impact: text(value, "impact"),
        help: text(value, "help"),
        help_url: text(value, "helpUrl"),
        nodes,
    }
}

/// axe-core's source, checked to be [`AXE_VERSION`] by its banner (`/*! axe v4.14.1`).
fn axe_source() -> String {
    let path = std::env::var_os("SWITCHYARD_TEST_AXE")
        .map_or_else(|| workspace_target().join("browser/axe.min.js"), PathBuf::from);
    let source = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "axe-core is missing at {} ({error}): run scripts/browser, which fetches it (make test does)",
            path.display()
        )
    });
    let banner = format!("/*! axe v{AXE_VERSION}");
    assert!(
        source.starts_with(&banner),
        "{} is not axe-core {AXE_VERSION}: run scripts/browser, which fetches that version into \
         target/browser/axe.min.js (SWITCHYARD_TEST_AXE, when set, must name such a file)",
        path.display()
    );
    source
}

// --- The console -----------------------------------------------------------------------------------------------

/// ChromeDriver's command that returns the browser's console messages since the last call (`POST
/// /session/{id}/se/log` with `{"type": "browser"}`); it needs the `goog:loggingPrefs` [`Browser::start`] sets.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/se/log", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// The errors in the page's console since the last call (level `SEVERE`: a script error, a resource that did not
/// load, a request the page's Content-Security-Policy blocked), as `source: message` lines.
pub async fn console_errors(client: &Client) -> Vec<String> {
    let log = client
        .issue_cmd(BrowserLog)
        .await
        .unwrap_or_else(|error| panic!("cannot read the browser's console: {error}"));
    let Value::Array(entries) = log else {
        panic!("the browser's console answered {log}, not a list of messages");
    };
    entries
        .iter()
        .filter(|entry| entry["level"] == "SEVERE")
        .map(|entry| {
            format!(
                "{}: {}",
                entry["source"].as_str().unwrap_or("?"),
                entry["message"].as_str().unwrap_or("")
            )
        })
        .collect()
}

// --- Screenshots and viewports ---------------------------------------------------------------------------------

/// `target/browser/screenshots/<name>.png` in the workspace: where the console tests keep their screenshots.
pub fn screenshot_path(name: &str) -> PathBuf {
    workspace_target().join(format!("browser/screenshots/{name}.png"))
}

/// Writes a PNG of the current viewport to `path` (its folders made if missing) and returns the path.
pub async fn screenshot(client: &Client, path: impl AsRef<Path>) -> PathBuf {
    let path = path.as_ref().to_owned();
    let png = client
        .screenshot()
        .await
        .unwrap_or_else(|error| panic!("taking a screenshot failed: {error}"));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
    }
    std::fs::write(&path, png).unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
    path
}

/// Resizes the window so that the page's viewport (`innerWidth` x `innerHeight`) is `width` x `height` CSS
/// pixels, e.g. [`PHONE`]; fails the test if Chromium does not get there.
pub async fn set_viewport(client: &Client, width: u32, height: u32) {
    let viewport = || async {
        let size = client
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await
            .unwrap_or_else(|error| panic!("cannot read the viewport's size: {error}"));
        let dimension = |index: usize| size[index].as_i64().unwrap_or_default();
        (dimension(0), dimension(1))
    };
    let resize = |outer_width: i64, outer_height: i64| async move {
        let dimension = |value: i64| u32::try_from(value.max(1)).unwrap_or(u32::MAX);
        client
            .set_window_size(dimension(outer_width), dimension(outer_height))
            .await
            .unwrap_or_else(|error| panic!("cannot resize the window: {error}"));
    };
    let (wanted_width, wanted_height) = (i64::from(width), i64::from(height));
    resize(wanted_width, wanted_height).await;
    // The viewport is smaller than the window by room for toolbars, even headless: grow the window by the
    // difference.
    let (inner_width, inner_height) = viewport().await;
    if (inner_width, inner_height) != (wanted_width, wanted_height) {
        let (outer_width, outer_height) = client
            .get_window_size()
            .await
            .map(|(width, height)| {
                (
                    i64::try_from(width).unwrap_or(i64::MAX),
                    i64::try_from(height).unwrap_or(i64::MAX),
                )
            })
            .unwrap_or_else(|error| panic!("cannot read the window's size: {error}"));
        resize(
            outer_width + wanted_width - inner_width,
            outer_height + wanted_height - inner_height,
        )
        .await;
    }
    let reached = viewport().await;
    assert_eq!(
        reached,
        (wanted_width, wanted_height),
        "the viewport is {}x{} rather than {width}x{height}",
        reached.0,
        reached.1
    );
}

// --- Finding, reading, typing, clicking -------------------------------------------------------------------------

/// The first element matching the CSS selector `css`, waiting up to [`WAIT`] for it to appear; fails the test
/// with the page's URL and the start of its text if it does not.
pub async fn wait_for_element(client: &Client, css: &str) -> Element {
    wait_for_element_within(client, css, WAIT).await
}

/// [`wait_for_element`] with a deadline of `within`.
pub async fn wait_for_element_within(client: &Client, css: &str, within: Duration) -> Element {
    let started = Instant::now();
    loop {
        match client.find(Locator::Css(css)).await {
            Ok(element) => return element,
            Err(error) if error.is_no_such_element() => {}
            // An invalid selector or a lost session does not get better by waiting.
            Err(error) => panic!(
                "looking for `{css}` failed: {error}; on {}",
                page_summary(client).await
            ),
        }
        if started.elapsed() >= within {
            panic!(
                "no element matches `{css}` after {within:?} on {}",
                page_summary(client).await
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits up to [`WAIT`] until the first element matching `css` shows a text containing `expected`, and returns
/// its whole text; fails the test with the text it last had and the page's summary if it does not.
pub async fn wait_for_text(client: &Client, css: &str, expected: &str) -> String {
    let started = Instant::now();
    let mut shown = None;
    loop {
        match client.find(Locator::Css(css)).await {
            // The element may be replaced between finding and reading it: that is one more round.
            Ok(element) => {
                if let Ok(text) = element.text().await {
                    if text.contains(expected) {
                        return text;
                    }
                    shown = Some(text);
                }
            }
            Err(error) if error.is_no_such_element() => {}
            Err(error) => panic!(
                "looking for `{css}` failed: {error}; on {}",
                page_summary(client).await
            ),
        }
        if started.elapsed() >= WAIT {
            let shown = shown.map_or_else(
                || "nothing (no element matches)".to_owned(),
                |text| format!("{text:?}"),
            );
            panic!(
                "`{css}` shows {shown}, not {expected:?}, after {WAIT:?} on {}",
                page_summary(client).await
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The rendered text of the first element matching `css` (waited for up to [`WAIT`]).
pub async fn text(client: &Client, css: &str) -> String {
    let element = wait_for_element(client, css).await;
    element
        .text()
        .await
        .unwrap_or_else(|error| panic!("cannot read the text of `{css}`: {error}"))
}

/// Empties the field matching `css` (waited for up to [`WAIT`]) and types `value` into it, as a person would.
pub async fn fill(client: &Client, css: &str, value: &str) {
    let field = wait_for_element(client, css).await;
    field
        .clear()
        .await
        .unwrap_or_else(|error| panic!("cannot clear `{css}`: {error}"));
    field
        .send_keys(value)
        .await
        .unwrap_or_else(|error| panic!("cannot type into `{css}`: {error}"));
}

/// Clicks the element matching `css` (waited for up to [`WAIT`]).
pub async fn click(client: &Client, css: &str) {
    let element = wait_for_element(client, css).await;
    element
        .click()
        .await
        .unwrap_or_else(|error| panic!("cannot click `{css}`: {error}"));
}

/// `URL (text: "the first 300 characters of the page's text")`: where a failing wait was, for its message.
pub async fn page_summary(client: &Client) -> String {
    let url = client
        .current_url()
        .await
        .map_or_else(|error| format!("(no URL: {error})"), |url| url.to_string());
    let text = client
        .execute("return document.body ? document.body.innerText : '';", vec![])
        .await
        .ok()
        .and_then(|text| text.as_str().map(str::to_owned))
        .unwrap_or_default();
    let snippet: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(300)
        .collect();
    format!("{url} (text: {snippet:?})")
}
