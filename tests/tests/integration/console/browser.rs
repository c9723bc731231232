//! The console in a real headless Chromium, against a registry served on loopback, a router and plugin
//! workers on the same broker: a team signs in from a `switchyardctl console login` link, finds
//! sheets-export in the catalog, enables it, fills its config form (an error shown at its field, then
//! fixed), and its next event reaches the plugin; a dead letter appears in the team's list and is replayed
//! from the page to the plugin; another team, a forged CSRF token and a team on the admin pages are
//! refused in the browser too; axe-core finds no serious or critical violation on any page.
//!
//! Screenshots of the main pages go to `target/browser/screenshots/`, or to `docs/console/` with
//! `SWITCHYARD_CONSOLE_SCREENSHOTS=docs` (`make console-screenshots`), where `docs/console.md` shows them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fantoccini::Client;
use serde_json::json;
use switchyard_plugin_runtime::plugin::{Context, Outcome};
use switchyard_plugins::in_process::{SheetsExportPlugin, sheets_export_manifest};
use switchyard_plugins::sheets::CsvTarget;
use switchyard_schemas::envelope::ContentType;
use switchyard_tests::broker::{TestProducer, create_topics, unique};
use switchyard_tests::browser::{
    Browser, PHONE, assert_accessible, click, fill, screenshot, screenshot_path, set_viewport, text,
    wait_for_element, wait_for_text,
};
use switchyard_tests::records::core_event;
use switchyard_tests::registries::{
    HS256_SECRET, RegistryTopics, ServedRegistry, admin, ctl_binary, http, plugin,
};
use switchyard_tests::routers::{InProcessRouter, Topics};
use switchyard_tests::wait::wait_for;
use switchyard_tests::workers::{InProcessWorker, ScriptedPlugin, WorkerTopics};

/// The impacts that fail a page.
const SERIOUS: &[&str] = &["serious", "critical"];

/// A registry on loopback and a router on its control topics.
struct Platform {
    topics: RegistryTopics,
    registry: ServedRegistry,
    router: InProcessRouter,
    core: String,
}

impl Platform {
    async fn start() -> Self {
        let topics = RegistryTopics::unique();
        let registry = ServedRegistry::start(&topics, &[]).await;
        let router_topics = Topics::of_registry(&topics);
        create_topics(&[
            (&router_topics.core, 2, false),
            (&router_topics.dead_letter, 1, false),
        ])
        .await;
        let router = InProcessRouter::start(&router_topics, &[]);
        router.admin.wait_ready().await;
        Self {
            topics,
            registry,
            router,
            core: router_topics.core,
        }
    }

    /// Registers a manifest with the plugin's own token.
    async fn register(&self, manifest: serde_json::Value) {
        let id = manifest["id"].as_str().unwrap().to_owned();
        let (status, body) = http(
            "POST",
            &format!("{}/v1/plugins", self.registry.url),
            Some(&plugin(&id)),
            Some(&manifest),
        )
        .await;
        assert!(status == 200 || status == 201, "{status} {body}");
    }

    /// A worker's settings on these topics that registers and heartbeats with the registry, so that the
    /// console shows the plugin up with its instance.
    async fn worker_settings(&self, plugin_id: &str) -> switchyard_plugin_runtime::settings::Settings {
        let topics = WorkerTopics::of_registry(plugin_id, &self.topics).await;
        topics.settings(&[
            ("REGISTRY__URL", &self.registry.url),
            ("REGISTRY__TOKEN", &plugin(plugin_id)),
            ("REGISTRY__HEARTBEAT_INTERVAL_MS", "1000"),
            ("REGISTRY__INSTANCE_ID", &format!("{plugin_id}-0")),
        ])
    }

    /// Enables `plugin` for `team` (its default installation), as an admin through the API.
    async fn enable(&self, team: &str, plugin: &str) {
        let (status, body) = http(
            "PUT",
            &format!("{}/v1/teams/{team}/plugins/{plugin}", self.registry.url),
            Some(&admin()),
            Some(&json!({"enabled": true})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Stops the router, then the registry.
    async fn stop(self) {
        drop(self.router);
        self.registry.stop().await;
    }

    fn send(&self, team: &str, id: &str) {
        let producer = TestProducer::new();
        producer.send(
            &self.core,
            &core_event(team, "response.submitted", id, ContentType::Json),
        );
        producer.flush();
    }
}

/// A sign-in link for `args` (`--role team --team acme`), printed by `switchyardctl console login`.
fn login_link(url: &str, args: &[&str]) -> String {
    let output = Command::new(ctl_binary())
        .args(["--url", url, "console", "login", "--ttl", "10m"])
        .args(args)
        .env("SWITCHYARD_REGISTRY__AUTH__HS256_SECRET", HS256_SECRET)
        .output()
        .expect("run switchyardctl");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Where the screenshot `name` goes.
fn shot(name: &str) -> PathBuf {
    if std::env::var("SWITCHYARD_CONSOLE_SCREENSHOTS").as_deref() == Ok("docs") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../docs/console/{name}.png"))
    } else {
        screenshot_path(&format!("console-{name}"))
    }
}

/// Opens a sign-in link and waits until the console's page after it is shown.
async fn sign_in(client: &Client, link: &str, lands_on: &str) {
    client.goto(link).await.expect("open the sign-in link");
    wait_for_text(client, "h1", lands_on).await;
    let url = client.current_url().await.unwrap();
    assert!(url.fragment().is_none(), "the token left the address bar: {url}");
}

/// The CSV files the sheets-export plugin wrote for `team`.
fn rows_of(dir: &Path, team: &str) -> Vec<String> {
    let Ok(files) = std::fs::read_dir(dir.join(team)) else {
        return Vec::new();
    };
    files
        .filter_map(Result::ok)
        .filter(|f| f.path().extension().is_some_and(|e| e == "csv"))
        .flat_map(|f| {
            let text = std::fs::read_to_string(f.path()).unwrap_or_default();
            text.lines().skip(1).map(str::to_owned).collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_enables_and_configures_sheets_export_and_its_next_event_reaches_the_plugin() {
    let platform = Platform::start().await;
    platform
        .register(serde_json::to_value(sheets_export_manifest(None)).unwrap())
        .await;
    let dir = std::env::temp_dir().join(unique("console-sheets"));
    let worker = InProcessWorker::start(
        SheetsExportPlugin::new(CsvTarget::new(&dir), sheets_export_manifest(None)),
        platform.worker_settings("sheets-export").await,
    );
    worker.admin.wait_ready().await;

    let browser = Browser::start().await;
    let link = login_link(&platform.registry.url, &["--role", "team", "--team", "acme"]);
    sign_in(&browser, &link, "Plugin catalog").await;
    let card = "#plugin-sheets-export";
    wait_for("the worker's heartbeat", Duration::from_secs(30), || async {
        let (_, plugin) = http(
            "GET",
            &format!("{}/v1/plugins/sheets-export", platform.registry.url),
            Some(&admin()),
            None,
        )
        .await;
        (plugin["status"] == "up").then_some(())
    })
    .await;
    browser.refresh().await.unwrap();
    assert!(text(&browser, card).await.contains("1 instance"));
    assert_accessible(&browser, SERIOUS).await;
    screenshot(&browser, shot("catalog")).await;

    // One click enables it; a plugin with settings and no config yet goes on to its config form.
    click(&browser, &format!("{card} button[type=submit]")).await;
    wait_for_text(&browser, "h1", "Configure Sheets export").await;
    assert_accessible(&browser, SERIOUS).await;
    fill(&browser, "#field-spreadsheet_id", "not an id!").await;
    click(&browser, "#config-form button[type=submit]").await;
    let error = wait_for_text(&browser, "#field-spreadsheet_id-error", "does not match").await;
    assert!(!error.is_empty());
    let field = wait_for_element(&browser, "#field-spreadsheet_id").await;
    assert_eq!(field.attr("aria-invalid").await.unwrap().as_deref(), Some("true"));
    assert_eq!(
        field.prop("value").await.unwrap().as_deref(),
        Some("not an id!"),
        "what was typed is kept"
    );
    assert_accessible(&browser, SERIOUS).await;
    screenshot(&browser, shot("config-error")).await;
    fill(&browser, "#field-spreadsheet_id", "1BxAcmeResponses").await;
    click(&browser, "#config-form button[type=submit]").await;
    wait_for_text(&browser, "#form-note", "Saved.").await;
    let (_, config) = http(
        "GET",
        &format!(
            "{}/v1/teams/acme/plugins/sheets-export/config",
            platform.registry.url
        ),
        Some(&admin()),
        None,
    )
    .await;
    assert_eq!(config["config"]["spreadsheet_id"], "1BxAcmeResponses");

    // The installations page says so, and the next event of the team reaches the plugin.
    click(&browser, "nav a[href$='/installations']").await;
    let row = text(&browser, "#installation-sheets-export-default").await;
    assert!(row.contains("enabled") && row.contains("set"), "{row}");
    assert_accessible(&browser, SERIOUS).await;
    screenshot(&browser, shot("installations")).await;
    platform.send("acme", "console-e-1");
    let rows = wait_for(
        "the event's row in acme's CSV",
        Duration::from_secs(60),
        || async {
            let rows = rows_of(&dir, "acme");
            (!rows.is_empty()).then_some(rows)
        },
    )
    .await;
    assert_eq!(rows.len(), 1, "{rows:?}");

    // The routing page, with a filter the registry refuses at its field.
    browser
        .goto(&format!(
            "{}/console/teams/acme/plugins/sheets-export/installations/default",
            platform.registry.url
        ))
        .await
        .unwrap();
    fill(&browser, "#filter", "data.response.answers.city.choice ==").await;
    click(&browser, "#routing-form button[type=submit]").await;
    wait_for_element(&browser, "#filter-error").await;
    assert_accessible(&browser, SERIOUS).await;
    screenshot(&browser, shot("routing")).await;

    // A backfill of the team's history, started from the same page, and its progress.
    browser
        .goto(&format!(
            "{}/console/teams/acme/plugins/sheets-export/installations/default",
            platform.registry.url
        ))
        .await
        .unwrap();
    browser
        .execute("document.getElementById('since').value = '2026-01-01';", vec![])
        .await
        .unwrap();
    click(&browser, "#backfill-form button").await;
    wait_for_text(&browser, "h1", "Backfills").await;
    assert!(
        text(&browser, "#backfills")
            .await
            .contains("sheets-export (default)")
    );
    assert_accessible(&browser, SERIOUS).await;
    screenshot(&browser, shot("backfills")).await;

    // At a phone's size the catalog still reads.
    set_viewport(&browser, PHONE.0, PHONE.1).await;
    click(&browser, "nav a[href$='/catalog']").await;
    wait_for_element(&browser, card).await;
    assert_accessible(&browser, SERIOUS).await;
    screenshot(&browser, shot("catalog-phone")).await;

    browser.close().await;
    worker.stop().await.unwrap();
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_replayed_from_the_page_and_reaches_the_plugin() {
    let platform = Platform::start().await;
    // The plugin refuses the event once (a dead letter), and takes it when it comes again.
    let refused = Arc::new(AtomicBool::new(false));
    let script = {
        let refused = Arc::clone(&refused);
        move |_: &Context| {
            let outcome = if refused.swap(true, Ordering::SeqCst) {
                Outcome::Done(Vec::new())
            } else {
                Outcome::DeadLetter {
                    reason: "the spreadsheet was deleted".to_owned(),
                }
            };
            (Duration::ZERO, outcome)
        }
    };
    let flaky = ScriptedPlugin::new("flaky", script);
    platform
        .register(json!({"id": "flaky", "name": "Flaky", "version": "1.0.0",
                         "events": ["response.submitted"], "actions": []}))
        .await;
    platform.enable("acme", "flaky").await;
    let worker = InProcessWorker::start(flaky.clone(), platform.worker_settings("flaky").await);
    worker.admin.wait_ready().await;
    platform.send("acme", "console-dead-1");
    wait_for("the dead letter", Duration::from_secs(60), || async {
        refused.load(Ordering::SeqCst).then_some(())
    })
    .await;

    let browser = Browser::start().await;
    let link = login_link(&platform.registry.url, &["--role", "team", "--team", "acme"]);
    sign_in(&browser, &link, "Plugin catalog").await;
    click(&browser, "nav a[href$='/dead-letters']").await;
    wait_for_text(&browser, "h1", "Dead letters").await;
    assert_accessible(&browser, SERIOUS).await;
    click(&browser, "a[href$='/plugins/flaky/dead-letters']").await;
    // The worker may still be writing it when the page first loads.
    let list = platform.registry.url.clone() + "/console/teams/acme/plugins/flaky/dead-letters";
    wait_for(
        "the dead letter in the team's list",
        Duration::from_secs(30),
        || async {
            browser.goto(&list).await.unwrap();
            let page = text(&browser, "main").await;
            page.contains("console-dead-1").then_some(())
        },
    )
    .await;
    let listed = text(&browser, "table.letters").await;
    assert!(
        listed.contains("the spreadsheet was deleted") || listed.contains("plugin_dead_letter"),
        "{listed}"
    );
    assert_accessible(&browser, SERIOUS).await;
    screenshot(&browser, shot("dead-letters")).await;

    // A filter that matches nothing empties the list, and "replay all" follows the filter.
    fill(&browser, "#filter-installation", "forms-bc").await;
    click(&browser, "#letter-filter button").await;
    wait_for_element(&browser, "#no-dead-letters").await;
    assert_accessible(&browser, SERIOUS).await;
    browser.goto(&list).await.unwrap();

    // Its page, then a dry run, then the replay.
    click(&browser, "table.letters th a").await;
    wait_for_text(&browser, "h1", "Dead letter").await;
    assert!(text(&browser, "#letter").await.contains("console-dead-1"));
    assert_accessible(&browser, SERIOUS).await;
    screenshot(&browser, shot("dead-letter")).await;
    click(&browser, "#replay-one button").await;
    wait_for_text(&browser, "#dry-run", "found 1 dead letter").await;
    assert_accessible(&browser, SERIOUS).await;
    assert_eq!(
        flaky.ids_of("acme"),
        ["console-dead-1"],
        "a dry run replays nothing"
    );
    click(&browser, "#confirm-replay button").await;
    wait_for_text(&browser, "#replayed", "Replayed 1 dead letter").await;
    assert_accessible(&browser, SERIOUS).await;
    wait_for(
        "the replayed event at the plugin",
        Duration::from_secs(60),
        || async { (flaky.ids_of("acme").len() == 2).then_some(()) },
    )
    .await;
    assert_eq!(flaky.ids_of("acme"), ["console-dead-1", "console-dead-1"]);

    browser.close().await;
    worker.stop().await.unwrap();
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_teams_forged_forms_and_admin_pages_are_refused_and_every_page_is_accessible() {
    let platform = Platform::start().await;
    platform
        .register(serde_json::to_value(sheets_export_manifest(None)).unwrap())
        .await;
    let url = platform.registry.url.clone();
    for team in ["acme", "globex"] {
        platform.enable(team, "sheets-export").await;
    }

    // The sign-in page itself.
    let browser = Browser::start().await;
    browser.goto(&format!("{url}/console/sign-in")).await.unwrap();
    wait_for_text(&browser, "h1", "Sign in").await;
    assert_accessible(&browser, SERIOUS).await;
    screenshot(&browser, shot("sign-in")).await;

    // Team acme: globex's pages are refused, and so is a form whose CSRF token was changed.
    sign_in(
        &browser,
        &login_link(&url, &["--role", "team", "--team", "acme"]),
        "Plugin catalog",
    )
    .await;
    for page in [
        "catalog",
        "installations",
        "plugins/sheets-export/installations/default/config",
        "plugins/sheets-export/dead-letters",
        "backfills",
    ] {
        browser
            .goto(&format!("{url}/console/teams/globex/{page}"))
            .await
            .unwrap();
        wait_for_text(&browser, "h1", "Forbidden").await;
    }
    browser.goto(&format!("{url}/console/admin")).await.unwrap();
    wait_for_text(&browser, "h1", "Forbidden").await;
    assert_accessible(&browser, SERIOUS).await;
    browser
        .goto(&format!("{url}/console/teams/acme/installations"))
        .await
        .unwrap();
    browser
        .execute(
            "document.querySelectorAll('input[name=csrf]').forEach(i => i.value = 'forged');",
            vec![],
        )
        .await
        .unwrap();
    click(
        &browser,
        "#installation-sheets-export-default button[type=submit]",
    )
    .await;
    wait_for_text(&browser, "h1", "Forbidden").await;
    let (_, installations) = http(
        "GET",
        &format!("{url}/v1/teams/acme/installations"),
        Some(&admin()),
        None,
    )
    .await;
    assert_eq!(
        installations[0]["enabled"], true,
        "the forged form changed nothing"
    );
    for page in [
        "backfills",
        "dead-letters",
        "plugins/sheets-export/installations/default",
    ] {
        browser
            .goto(&format!("{url}/console/teams/acme/{page}"))
            .await
            .unwrap();
        wait_for_element(&browser, "main h1").await;
        assert_accessible(&browser, SERIOUS).await;
    }

    // The plugin's own page, and the admin's fleet and deregistration.
    click(&browser, "header button.link").await;
    wait_for_text(&browser, "h1", "Sign in").await;
    let plugin_link = login_link(&url, &["--role", "plugin", "--plugin", "sheets-export"]);
    sign_in(&browser, &plugin_link, "Sheets export").await;
    assert!(text(&browser, "#lag").await.contains("Partition"));
    assert!(text(&browser, "#registrations").await.contains("1.6.0 current"));
    assert_accessible(&browser, SERIOUS).await;
    screenshot(&browser, shot("plugin")).await;
    click(&browser, "header button.link").await;
    wait_for_text(&browser, "h1", "Sign in").await;
    sign_in(&browser, &login_link(&url, &["--role", "admin"]), "Fleet").await;
    assert!(text(&browser, "#fleet-sheets-export").await.contains("1.6.0"));
    assert_accessible(&browser, SERIOUS).await;
    screenshot(&browser, shot("fleet")).await;
    click(&browser, "#fleet-sheets-export a").await;
    click(&browser, "a.danger").await;
    wait_for_text(&browser, "h1", "Deregister").await;
    assert_accessible(&browser, SERIOUS).await;
    fill(&browser, "#confirm", "sheets").await;
    click(&browser, "#deregister button").await;
    wait_for_element(&browser, "#confirm-error").await;
    fill(&browser, "#confirm", "sheets-export").await;
    click(&browser, "#deregister button").await;
    wait_for_text(&browser, "h1", "Fleet").await;
    let (status, _) = http(
        "GET",
        &format!("{url}/v1/plugins/sheets-export"),
        Some(&admin()),
        None,
    )
    .await;
    assert_eq!(status, 404, "deregistered from the page");

    browser.close().await;
    platform.stop().await;
}
