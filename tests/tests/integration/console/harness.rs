//! The browser harness on two small pages served by the test: axe-core finds nothing on an accessible page
//! and exactly the planted violations on a broken one, a form is filled, submitted and its answer read, the
//! viewport goes to a phone's size, and the screenshots land in `target/browser/screenshots/`. These tests
//! need Chromium, ChromeDriver and axe-core (`scripts/browser`), no Kafka broker.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::Uri;
use axum::response::Html;
use axum::routing::get;
use switchyard_tests::browser::{
    Browser, DESKTOP, PHONE, assert_accessible, axe_violations, click, describe, fill, screenshot,
    screenshot_path, set_viewport, text, violation_ids, wait_for_element_within, wait_for_text,
};

const ACCESSIBLE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Greeting</title></head>
<body>
<main>
  <h1>Greeting</h1>
  <form action="/greet" method="get">
    <label for="name">Your name</label>
    <input id="name" name="name" type="text" autocomplete="name">
    <button type="submit">Greet me</button>
  </form>
</main>
</body>
</html>"#;

/// Three serious or critical violations on purpose: an image without alt text (`image-alt`), an input without a
/// label (`label`), light grey text on white (`color-contrast`). Language and title are there, so that
/// nothing else is serious.
const BROKEN: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Broken</title></head>
<body>
<main>
  <h1>Broken</h1>
  <img src="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='40' height='40'/%3E" width="40" height="40">
  <input id="nameless" type="text">
  <p style="color: #c8c8c8; background: #ffffff">This text is hard to read.</p>
</main>
</body>
</html>"#;

/// The answer to the form: the name back, HTML-escaped.
async fn greet(uri: Uri) -> Html<String> {
    let url = reqwest::Url::parse(&format!("http://127.0.0.1{uri}")).expect("request URI");
    let name = url
        .query_pairs()
        .find(|(key, _)| key == "name")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    let escaped = name
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Greeted</title></head>
<body><main><h1>Greeted</h1><p id="greeting">Hello, {escaped}!</p></main></body></html>"#
    ))
}

/// Serves the pages on a free loopback port until the test's runtime ends.
async fn serve_pages() -> SocketAddr {
    let app = Router::new()
        .route("/accessible", get(|| async { Html(ACCESSIBLE) }))
        .route("/broken", get(|| async { Html(BROKEN) }))
        .route("/greet", get(greet));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// The width and height in a PNG's header, failing if `path` is not a PNG.
fn png_size(path: &Path) -> (u32, u32) {
    let png = std::fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    assert!(
        png.len() > 24 && png.starts_with(b"\x89PNG\r\n\x1a\n") && &png[12..16] == b"IHDR",
        "{} is not a PNG",
        path.display()
    );
    let field = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (field(16), field(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axe_passes_an_accessible_page_and_names_the_planted_violations_of_a_broken_one() {
    let pages = serve_pages().await;
    let started = Instant::now();
    let browser = Browser::start().await;
    println!("browser started in {:?}", started.elapsed());

    browser.goto(&format!("http://{pages}/accessible")).await.unwrap();
    let started = Instant::now();
    let violations = axe_violations(&browser, &["serious", "critical"]).await;
    println!("axe (injected and run) in {:?}", started.elapsed());
    assert!(violations.is_empty(), "{}", describe(&violations));
    assert_accessible(&browser, &["minor", "moderate", "serious", "critical"]).await;
    let shot = screenshot(&browser, screenshot_path("harness-accessible")).await;
    assert_eq!(png_size(&shot), DESKTOP, "the window's viewport");

    browser.goto(&format!("http://{pages}/broken")).await.unwrap();
    let violations = axe_violations(&browser, &["serious", "critical"]).await;
    assert_eq!(
        violation_ids(&violations),
        ["color-contrast", "image-alt", "label"],
        "{}",
        describe(&violations)
    );
    let contrast = violations
        .iter()
        .find(|violation| violation.id == "color-contrast")
        .unwrap();
    assert_eq!(contrast.impact, "serious");
    assert_eq!(contrast.nodes.len(), 1, "{contrast}");
    assert!(contrast.nodes[0].html.starts_with("<p "), "{contrast}");
    assert!(
        describe(&violations).contains("#nameless"),
        "{}",
        describe(&violations)
    );
    // The impacts filter: the image and the input are critical, the contrast only serious.
    let critical = axe_violations(&browser, &["critical"]).await;
    assert_eq!(
        violation_ids(&critical),
        ["image-alt", "label"],
        "{}",
        describe(&critical)
    );
    let shot = screenshot(&browser, screenshot_path("harness-broken")).await;
    assert_eq!(png_size(&shot), DESKTOP);

    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_is_filled_and_submitted_and_its_answer_read_at_a_phones_size() {
    let pages = serve_pages().await;
    let browser = Browser::start().await;
    browser.goto(&format!("http://{pages}/accessible")).await.unwrap();
    set_viewport(&browser, PHONE.0, PHONE.1).await;

    fill(&browser, "#name", "placeholder").await;
    // Filling replaces what the field held.
    fill(&browser, "#name", "Ada <Lovelace>").await;
    click(&browser, "button[type=submit]").await;
    assert_eq!(
        wait_for_text(&browser, "#greeting", "Hello").await,
        "Hello, Ada <Lovelace>!"
    );
    assert_eq!(text(&browser, "h1").await, "Greeted");
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with("/greet?name=Ada+%3CLovelace%3E"),
        "{}",
        browser.current_url().await.unwrap()
    );
    let shot = screenshot(&browser, screenshot_path("harness-greeted-phone")).await;
    assert_eq!(png_size(&shot), PHONE, "the phone's viewport");

    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_element_fails_with_the_pages_url_and_text() {
    let pages = serve_pages().await;
    let browser = Browser::start().await;
    let url = format!("http://{pages}/accessible");
    browser.goto(&url).await.unwrap();

    // In a task of its own, so that its panic (printed with --nocapture) can be caught and read.
    let client = browser.client().clone();
    let waited = tokio::spawn(async move {
        wait_for_element_within(&client, "#no-such-thing", Duration::from_millis(300)).await
    })
    .await;
    let panic = waited.expect_err("a missing element fails the wait").into_panic();
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_else(|| "(not a String)".to_owned());
    assert!(message.contains("`#no-such-thing`"), "{message}");
    assert!(message.contains(&url), "{message}");
    assert!(message.contains("Greeting Your name Greet me"), "{message}");

    browser.close().await;
}
