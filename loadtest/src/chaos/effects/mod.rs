//! The plugin side of a chaos run (`--effects`): the four seed plugins' workers behind the routers, their
//! endpoints (a fake Twilio and a fake Google Sheets in this process, the rules service as a process of
//! its own), faults on that side, and the count of every effect.
//!
//! ```text
//!  start: its topics, a config per enabled (team, plugin) on the configs topic, the fakes, the rules
//!         service, one worker per plugin, each ready (configs read)
//!  tick (every 100 ms of the chaos loop): faults due by the clock (faults.rs): a worker SIGKILLed and
//!         restarted │ second workers join, later leave │ every endpoint down for a while, then answers
//!         lost once; a worker or the rules service that exits on its own is restarted and counted
//!  finish (after the routers are done): the faults left, then poll until every effect the routed events
//!         call for is there and the counts stop changing; count (tally.rs); stop the workers
//! ```

mod faults;
mod observe;
mod tally;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use serde::Serialize;
use switchyard_plugins::fakes::server::{FakeServer, InjectedFailure};
use switchyard_plugins::fakes::sheets::{
    self as fake_sheets, ApiMethod, FakeSheets, demo_service_account_json,
};
use switchyard_plugins::fakes::twilio::{self as fake_twilio, FakeTwilio};
use switchyard_schemas::configs::ConfigRecord;
use switchyard_schemas::topics as names;

pub use faults::{EffectFault, EffectFaultCounts};
pub use tally::EffectCounts;

use super::ChaosOptions;
use super::slots::Slots;
use crate::control_plane::{DEMO_SMS_ACCOUNT, DEMO_SMS_TOKEN, sample_config};
use crate::generate::control::{RULES_VALIDATE, SHEETS_EXPORT, SMS_NOTIFY};
use crate::generate::{Control, SAMPLE_PLUGINS};
use crate::kafka::{Producer, ReadRecord, Record, TopicSpec, clients, create_topics, read_all_to_end};
use crate::plugins::{PluginWorker, wait_ready};
use crate::{LoadtestError, Progress};

/// What the plugin side of a run does.
#[derive(Debug, Clone)]
pub struct EffectsOptions {
    /// Where `switchyard-seed-plugin` and `switchyard-plugin-bridge` are.
    pub bin_dir: PathBuf,
    /// Its faults.
    pub faults: EffectFaultCounts,
    /// How long an endpoint outage lasts.
    pub outage: Duration,
}

/// What the plugin side found.
#[derive(Debug, Clone, Serialize)]
pub struct EffectsReport {
    /// Each plugin's effects.
    pub plugins: BTreeMap<String, EffectCounts>,
    /// Texts Twilio accepted.
    pub texts: u64,
    /// Data rows in the teams' spreadsheets.
    pub sheet_rows: u64,
    /// Result records read (copies included).
    pub results: u64,
    /// The faults, in order, with when they began (seconds from the routers' start).
    pub faults: Vec<(f64, EffectFault)>,
    /// Workers or rules services that exited without being asked to, and were restarted.
    pub unplanned_exits: u32,
    /// Seconds from the routers' end until every effect was there (or the wait gave up).
    pub settle_seconds: f64,
    /// Every due effect once, nothing else.
    pub ok: bool,
}

impl EffectsReport {
    /// The sum over the plugins.
    pub fn total(&self) -> EffectCounts {
        let mut total = EffectCounts::default();
        for counts in self.plugins.values() {
            total.expected += counts.expected;
            total.once += counts.once;
            total.duplicated += counts.duplicated;
            total.missing += counts.missing;
            total.dead_lettered += counts.dead_lettered;
            total.unexpected += counts.unexpected;
            total.copies_dropped += counts.copies_dropped;
        }
        total
    }

    /// The one-line summary's part.
    pub fn line(&self) -> String {
        let total = self.total();
        let kills = self
            .faults
            .iter()
            .filter(|(_, f)| matches!(f, EffectFault::WorkerKill(_)))
            .count();
        let outages = self
            .faults
            .iter()
            .filter(|(_, f)| *f == EffectFault::EndpointOutage)
            .count();
        format!(
            "effects_expected={} effects_once={} effects_duplicated={} effects_missing={} effects_unexpected={} \
             result_copies_dropped={} texts={} sheet_rows={} worker_kills={kills} endpoint_outages={outages} \
             worker_unplanned_exits={}",
            total.expected,
            total.once,
            total.duplicated,
            total.missing,
            total.unexpected,
            total.copies_dropped,
            self.texts,
            self.sheet_rows,
            self.unplanned_exits,
        )
    }
}

/// The topics of the plugin side, under the run's prefix.
struct EffectsTopics {
    events_template: String,
    dead_letter_template: String,
    configs: String,
    results: String,
    ledger: String,
}

impl EffectsTopics {
    fn new(prefix: &str, events_template: &str) -> Self {
        Self {
            events_template: events_template.to_owned(),
            dead_letter_template: format!("{prefix}.{}", names::PLUGIN_DEAD_LETTER_TEMPLATE),
            configs: format!("{prefix}.{}", names::CONFIGS),
            results: format!("{prefix}.{}", names::PLUGIN_RESULTS),
            ledger: format!("{prefix}.{}", switchyard_plugins::sms::ledger::DEFAULT_TOPIC),
        }
    }

    fn dead_letter(&self, plugin: &str) -> String {
        names::plugin_events_topic(&self.dead_letter_template, plugin)
    }
}

/// The plugin side while it runs. Dropping it kills every process it started and stops the fakes.
pub(super) struct Effects<'a> {
    options: &'a EffectsOptions,
    bootstrap: &'a str,
    prefix: String,
    topics: EffectsTopics,
    timeout: Duration,
    twilio: FakeTwilio,
    sheets: FakeSheets,
    twilio_url: String,
    sheets_url: String,
    /// The teams' spreadsheets: (team, spreadsheet id).
    spreadsheets: Vec<(String, String)>,
    rules_service: Slots,
    workers: BTreeMap<&'static str, Slots>,
    schedule: VecDeque<(Duration, EffectFault)>,
    outage_ends: Option<Instant>,
    done: Vec<(f64, EffectFault)>,
    unplanned_exits: u32,
    // The fakes' servers run on this runtime; declared last so that they stop before it goes.
    _servers: (FakeServer, FakeServer),
    _runtime: tokio::runtime::Runtime,
}

/// How long a stopped worker may take to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Calls done but answered 503 after each outage, per endpoint.
const LOST_ANSWERS: u32 = 3;

/// The worker slot of the second workers that join and leave.
const SECOND: usize = 1;

impl<'a> Effects<'a> {
    /// Creates the topics under the run's `prefix` (the plugin topics follow `events_template`), writes a
    /// config for each enabled (team, plugin) of `controls`, starts the fakes, the rules service and one
    /// worker per plugin, and waits until every worker has read the configs. The faults are spread over
    /// the time the run's events take to feed at its rate.
    pub(super) fn start(
        run: &'a ChaosOptions,
        options: &'a EffectsOptions,
        prefix: &str,
        events_template: &str,
        controls: &[Control],
        logs: PathBuf,
    ) -> Result<Self, LoadtestError> {
        let (bootstrap, timeout) = (run.bootstrap.as_str(), run.timeout);
        let feeding = Duration::from_secs_f64(run.events as f64 / run.rate.unwrap_or(1.0));
        let topics = EffectsTopics::new(prefix, events_template);
        let mut specs = vec![
            TopicSpec::compacted(&topics.configs, 1),
            TopicSpec::new(&topics.results, 3),
        ];
        specs.extend(
            SAMPLE_PLUGINS
                .iter()
                .map(|p| TopicSpec::new(topics.dead_letter(p), 1)),
        );
        create_topics(&clients(bootstrap), &specs)?;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(LoadtestError::Runtime)?;
        let twilio = FakeTwilio::new();
        twilio.add_account(DEMO_SMS_ACCOUNT, DEMO_SMS_TOKEN);
        let sheets = FakeSheets::demo().map_err(|e| LoadtestError::Usage(format!("the fake Sheets: {e}")))?;
        // Google's per-minute write quotas (60 per service account) would make this run about quotas;
        // the sheets tests cover those.
        sheets.set_write_quota_per_minute(1_000_000, 1_000_000);
        sheets.set_read_quota_per_minute(1_000_000, 1_000_000);
        let servers = runtime.block_on(async {
            let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
            let twilio_server = fake_twilio::serve(bind().await?, twilio.clone()).await?;
            let sheets_server = fake_sheets::serve(bind().await?, sheets.clone()).await?;
            Ok::<_, std::io::Error>((twilio_server, sheets_server))
        });
        let servers = servers.map_err(|error| LoadtestError::Process {
            what: "starting the fake Twilio and Google Sheets".to_owned(),
            error,
        })?;
        let (twilio_url, sheets_url) = (servers.0.base_url(), servers.1.base_url());

        // The configs, written before any worker starts.
        let producer = Producer::new(&clients(bootstrap))?;
        let mut spreadsheets = Vec::new();
        let key = demo_service_account_json(&format!("{sheets_url}/token"));
        let versions: BTreeMap<&str, String> = controls
            .iter()
            .filter_map(|c| match c {
                Control::Plugin(manifest) => Some((manifest.id.as_str(), manifest.version.to_string())),
                Control::Enablement { .. } => None,
            })
            .collect();
        for control in controls {
            let Control::Enablement {
                team,
                plugin,
                enablement: Some(enablement),
            } = control
            else {
                continue;
            };
            let Some(mut config) = sample_config(team, plugin) else {
                continue;
            };
            if plugin == SHEETS_EXPORT {
                config["service_account_key"] = key.clone().into();
                if let Some(id) = config["spreadsheet_id"].as_str() {
                    spreadsheets.push((team.clone(), id.to_owned()));
                }
            }
            let record = ConfigRecord {
                team_id: team.clone(),
                plugin_id: plugin.clone(),
                installation: None,
                config,
                sealed: None,
                plugin_version: versions.get(plugin.as_str()).cloned().unwrap_or_default(),
                updated_at: enablement.updated_at.clone(),
            };
            let value = serde_json::to_vec(&record).expect("a config record serializes to JSON");
            producer.send(
                &topics.configs,
                &Record {
                    key: Some(format!("{team}/{plugin}").into_bytes()),
                    value: Some(value),
                    headers: Vec::new(),
                },
            )?;
        }
        producer.flush(timeout)?;

        let mut rng = Xoshiro256PlusPlus::seed_from_u64(run.seed ^ 0x6566_6665_6374_7300);
        let schedule = faults::schedule(&options.faults, &SAMPLE_PLUGINS, feeding, &mut rng);
        let mut effects = Self {
            options,
            bootstrap,
            prefix: prefix.to_owned(),
            topics,
            timeout,
            twilio,
            sheets,
            twilio_url,
            sheets_url,
            spreadsheets,
            rules_service: Slots::new("rules-service", logs.clone()),
            workers: SAMPLE_PLUGINS
                .iter()
                .map(|&p| (p, Slots::new(&format!("worker-{p}"), logs.clone())))
                .collect(),
            schedule: schedule.into(),
            outage_ends: None,
            done: Vec::new(),
            unplanned_exits: 0,
            _servers: servers,
            _runtime: runtime,
        };
        effects.start_rules_service()?;
        for plugin in SAMPLE_PLUGINS {
            effects.start_worker(plugin, 0)?;
        }
        effects.wait_ready()?;
        Ok(effects)
    }

    fn start_rules_service(&mut self) -> Result<(), LoadtestError> {
        let program = self.options.bin_dir.join("switchyard-seed-plugin");
        self.rules_service.start(0, |listen| {
            let mut command = Command::new(&program);
            command.args(["rules-service", "--listen", listen]);
            command
        })?;
        // The bridge reads the manifest from the service when it starts.
        let address = self.rules_service.admin(0).to_owned();
        let started = Instant::now();
        while std::net::TcpStream::connect(&address).is_err() {
            if started.elapsed() > self.timeout {
                return Err(LoadtestError::Timeout {
                    what: "the rules service to listen",
                    waited: self.timeout,
                    last: address,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn start_worker(&mut self, plugin: &'static str, slot: usize) -> Result<(), LoadtestError> {
        let bin = |name: &str| self.options.bin_dir.join(name);
        let rules_url = format!("http://{}", self.rules_service.admin(0));
        let mut command = match plugin {
            RULES_VALIDATE => {
                let mut command = Command::new(bin("switchyard-plugin-bridge"));
                command
                    .args(["--url", &rules_url])
                    .env("SWITCHYARD_PLUGIN__HTTP__URL_PATTERNS", &rules_url)
                    .env("SWITCHYARD_PLUGIN__HTTP__ALLOWED_NETWORKS", "127.0.0.1/32");
                command
            }
            _ => {
                let mut command = Command::new(bin("switchyard-seed-plugin"));
                command.arg(plugin);
                match plugin {
                    SHEETS_EXPORT => command.args(["--sheets-api", &self.sheets_url]),
                    SMS_NOTIFY => command.args([
                        "--sms-api",
                        &self.twilio_url,
                        "--ledger-topic",
                        &self.topics.ledger,
                    ]),
                    _ => &mut command,
                };
                command
            }
        };
        let prefix = "SWITCHYARD_PLUGIN__";
        command
            .env(format!("{prefix}KAFKA__BOOTSTRAP_SERVERS"), self.bootstrap)
            .env(
                format!("{prefix}TOPICS__EVENTS_TEMPLATE"),
                &self.topics.events_template,
            )
            .env(
                format!("{prefix}TOPICS__DEAD_LETTER_TEMPLATE"),
                &self.topics.dead_letter_template,
            )
            .env(format!("{prefix}TOPICS__CONFIGS"), &self.topics.configs)
            .env(format!("{prefix}TOPICS__RESULTS"), &self.topics.results)
            .env(
                format!("{prefix}DELIVERY__GROUP_ID"),
                format!("{}-plugin-{{plugin}}", self.prefix),
            )
            // A killed worker's partitions move after its session: seconds, as the routers'.
            .env(
                format!("{prefix}KAFKA__CONSUMER_OPTIONS__SESSION_TIMEOUT_MS"),
                super::routers::SESSION_TIMEOUT.as_millis().to_string(),
            )
            .env(
                format!("{prefix}KAFKA__CONSUMER_OPTIONS__HEARTBEAT_INTERVAL_MS"),
                "1000",
            )
            .env(format!("{prefix}LOG__LEVEL"), "info");
        let slots = self
            .workers
            .get_mut(plugin)
            .expect("a slot set per sample plugin");
        slots.start(slot, |admin| {
            command.env(format!("{prefix}ADMIN__LISTEN"), admin);
            command
        })
    }

    /// Waits until the first worker of every plugin has read the configs.
    fn wait_ready(&self) -> Result<(), LoadtestError> {
        let workers: Vec<PluginWorker> = self
            .workers
            .iter()
            .map(|(plugin, slots)| PluginWorker {
                plugin: (*plugin).to_owned(),
                admin: slots.admin(0).to_owned(),
            })
            .collect();
        wait_ready(&workers, self.timeout)
    }

    /// Restarts what exited on its own, ends an outage that is over, and begins the next fault when it is
    /// due (`elapsed`: time since the routers started).
    pub(super) fn tick(&mut self, elapsed: Duration, progress: &Progress) -> Result<(), LoadtestError> {
        for (_, status) in self.rules_service.exited() {
            if self.outage_ends.is_none() {
                self.unplanned_exits += 1;
                progress.say(format_args!(
                    "the rules service exited on its own ({status}); restarting it"
                ));
                self.start_rules_service()?;
            }
        }
        for plugin in SAMPLE_PLUGINS {
            let exited = self
                .workers
                .get_mut(plugin)
                .map(Slots::exited)
                .unwrap_or_default();
            for (slot, status) in exited {
                self.unplanned_exits += 1;
                progress.say(format_args!(
                    "worker {slot} of {plugin} exited on its own ({status}); restarting it"
                ));
                self.start_worker(plugin, slot)?;
            }
        }
        if self.outage_ends.is_some_and(|ends| Instant::now() >= ends) {
            self.end_outage(progress)?;
        }
        if self.outage_ends.is_none() && self.schedule.front().is_some_and(|(at, _)| elapsed >= *at) {
            let (_, fault) = self.schedule.pop_front().expect("a fault is due");
            self.begin(fault, elapsed, progress)?;
        }
        Ok(())
    }

    fn begin(
        &mut self,
        fault: EffectFault,
        elapsed: Duration,
        progress: &Progress,
    ) -> Result<(), LoadtestError> {
        self.done.push((elapsed.as_secs_f64(), fault));
        match fault {
            EffectFault::WorkerKill(plugin) => {
                progress.say(format_args!("fault: kill -9 the {plugin} worker; restarting it"));
                if let Some(slots) = self.workers.get_mut(plugin) {
                    slots.kill(0);
                }
                self.start_worker(plugin, 0)?;
            }
            EffectFault::WorkersJoin => {
                progress.say(format_args!("fault: a second worker of every plugin joins"));
                for plugin in SAMPLE_PLUGINS {
                    self.start_worker(plugin, SECOND)?;
                }
            }
            EffectFault::WorkersLeave => {
                let clean = self
                    .workers
                    .values_mut()
                    .map(|slots| slots.stop(SECOND, STOP_TIMEOUT))
                    .filter(|clean| *clean)
                    .count();
                progress.say(format_args!(
                    "fault: the second workers left ({clean}/{} clean exits)",
                    self.workers.len()
                ));
            }
            EffectFault::EndpointOutage => {
                progress.say(format_args!(
                    "fault: every endpoint down for {:.0} s (Twilio and Google answer 503, the rules service \
                     killed)",
                    self.options.outage.as_secs_f64()
                ));
                let unavailable = InjectedFailure {
                    status: 503,
                    retry_after: None,
                };
                self.twilio.fail_next(u32::MAX, unavailable);
                self.sheets.fail_next_api_calls(u32::MAX, unavailable);
                self.rules_service.kill(0);
                self.outage_ends = Some(Instant::now() + self.options.outage);
            }
        }
        Ok(())
    }

    fn end_outage(&mut self, progress: &Progress) -> Result<(), LoadtestError> {
        let unavailable = InjectedFailure {
            status: 503,
            retry_after: None,
        };
        self.twilio.fail_next(0, unavailable);
        self.sheets.fail_next_api_calls(0, unavailable);
        // Recovery is not clean either: the next texts are sent and the next appends applied, and their
        // answers lost.
        self.twilio.fail_after_sending(LOST_ANSWERS, unavailable);
        self.sheets
            .fail_after_applying(ApiMethod::ValuesAppend, LOST_ANSWERS, unavailable);
        self.start_rules_service()?;
        self.outage_ends = None;
        progress.say(format_args!(
            "the endpoints are back (the next {LOST_ANSWERS} texts and appends to Google are done, answered \
             503)"
        ));
        Ok(())
    }

    /// Does the faults left (a few seconds apart), waits until every effect the routed events call for
    /// is there and the counts stopped changing, counts them and stops the workers. `routed`: the records
    /// read back from each plugin's topic.
    pub(super) fn finish(
        mut self,
        routed: &BTreeMap<String, &[ReadRecord]>,
        started: Instant,
        progress: &Progress,
    ) -> Result<EffectsReport, LoadtestError> {
        let finish_began = Instant::now();
        while !self.schedule.is_empty() || self.outage_ends.is_some() {
            if let Some((at, _)) = self.schedule.front_mut() {
                *at = (*at).min(started.elapsed());
            }
            self.tick(started.elapsed(), progress)?;
            std::thread::sleep(Duration::from_secs(1));
        }
        let mut oracle = observe::Oracle::default();
        let routed: BTreeMap<String, Vec<tally::RoutedEvent>> = routed
            .iter()
            .map(|(plugin, records)| {
                (
                    plugin.clone(),
                    observe::routed_events(plugin, records, &mut oracle),
                )
            })
            .collect();
        let mut topics = vec![self.topics.results.clone()];
        topics.extend(SAMPLE_PLUGINS.iter().map(|p| self.topics.dead_letter(p)));
        let mut last: Option<BTreeMap<String, EffectCounts>> = None;
        let (counts, observed) = loop {
            self.tick(started.elapsed(), progress)?;
            let observed = self.observe(&topics)?;
            let counts = tally::tally(&routed, &observed);
            let pending: u64 = counts.values().map(|c| c.missing - c.dead_lettered).sum();
            let settled = pending == 0 && last.as_ref() == Some(&counts);
            if settled || finish_began.elapsed() > self.timeout {
                break (counts, observed);
            }
            progress.say(format_args!(
                "waiting for the plugins' effects: {pending} missing ({} texts, {} rows, {} results so far)",
                observed.messages.len(),
                observed.rows.len(),
                observed.results.len()
            ));
            last = Some(counts);
            std::thread::sleep(Duration::from_secs(3));
        };
        let settle_seconds = finish_began.elapsed().as_secs_f64();
        for slots in self.workers.values_mut() {
            for slot in slots.running() {
                if !slots.stop(slot, STOP_TIMEOUT) {
                    progress.say(format_args!("a worker did not stop cleanly"));
                }
            }
        }
        let ok = counts.values().all(EffectCounts::clean);
        Ok(EffectsReport {
            texts: observed.messages.len() as u64,
            sheet_rows: observed.rows.len() as u64,
            results: observed.results.len() as u64,
            plugins: counts,
            faults: self.done.clone(),
            unplanned_exits: self.unplanned_exits,
            settle_seconds,
            ok,
        })
    }

    /// What the fakes and the results and dead-letter topics hold now.
    fn observe(&self, topics: &[String]) -> Result<tally::Observed, LoadtestError> {
        let reads = read_all_to_end(&clients(self.bootstrap), topics, self.timeout, &|_| true)?;
        let results = observe::results(&reads[0].kept);
        let dead_letters = SAMPLE_PLUGINS
            .iter()
            .zip(&reads[1..])
            .flat_map(|(plugin, read)| {
                read.kept
                    .iter()
                    .filter_map(|r| r.header(switchyard_schemas::envelope::ID))
                    .map(|id| ((*plugin).to_owned(), id))
            })
            .collect();
        let messages = self
            .twilio
            .messages()
            .iter()
            .map(|m| observe::texted_response(&m.body))
            .collect();
        let mut rows = Vec::new();
        for (team, spreadsheet) in &self.spreadsheets {
            for title in self.sheets.sheet_titles(spreadsheet).unwrap_or_default() {
                let grid = self.sheets.grid(spreadsheet, &title).unwrap_or_default();
                rows.extend(
                    observe::sheet_responses(&grid)
                        .into_iter()
                        .map(|response| (team.clone(), response)),
                );
            }
        }
        Ok(tally::Observed {
            messages,
            rows,
            results,
            dead_letters,
        })
    }
}
