//! What a load report says about itself, so that it stands alone: when and how it ran (time, run id, tool
//! version, git revision, scenario, command line), the machine the tool ran on, and the system under test
//! as its router and the broker describe it (router settings, replicas, commit interval).
//!
//! ```text
//!   main (command line, git, /proc, uname) ──► Metadata ──┐
//!   router admin /metrics (switchyard_router_info) ──┐     ├──► result.json, find-max.json, plan.json
//!   broker: members of the group, core partitions ───┴► SystemUnderTest ──► report.html, find-max.html
//! ```
//!
//! The parsers (`/proc/meminfo`, `/etc/os-release`, `/proc/cpuinfo`, the router's info series, the command
//! line's redaction) are pure and unit-tested; [`Machine::this`], [`git_revision`] and
//! [`describe_system`] do the reading.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;
use switchyard_fixtures::metrics::Metrics;
use switchyard_service::kafka::KafkaContext;

use crate::LoadtestError;

/// The name of the router's info series, whose labels are its version and delivery settings.
pub const ROUTER_INFO: &str = "switchyard_router_info";

/// Flags whose value is a secret: the command line in a report shows `***` instead.
const SECRET_FLAGS: [&str; 1] = ["--registry-token"];

/// The environment variable that names the git revision when the tool does not run in a checkout (an
/// image, CI): it wins over `git describe`.
pub const GIT_REVISION_ENV: &str = "SWITCHYARD_GIT_REVISION";

/// Where and how an output of the tool was made. The same fields in `result.json`, `find-max.json` and
/// `plan.json`; a field that does not apply to a subcommand is `null`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metadata {
    /// The subcommand: `run`, `find-max` or `plan`.
    pub subcommand: String,
    /// The run id (the `ce_source` suffix of the events sent); `null` for `plan`.
    pub run_id: Option<String>,
    /// When the subcommand started, RFC 3339 UTC, milliseconds.
    pub started_at: String,
    /// When it wrote this output, RFC 3339 UTC, milliseconds.
    pub finished_at: String,
    /// The version of `switchyard-loadtest`.
    pub tool_version: String,
    /// `$SWITCHYARD_GIT_REVISION`, else `git describe --always --dirty` of the folder the tool ran in
    /// (`-dirty`: with uncommitted changes); `null` when neither is known.
    pub git_revision: Option<String>,
    /// The scenario's name; `null` for `plan`.
    pub scenario: Option<String>,
    /// The generator's seed; `null` for `plan`.
    pub seed: Option<u64>,
    /// The command line, shell-quoted, secrets (`--registry-token`) replaced by `***`.
    pub command_line: String,
    /// The machine the tool ran on.
    pub machine: Machine,
    /// The system measured; `null` for `plan`.
    pub system: Option<SystemUnderTest>,
}

impl Metadata {
    /// The metadata of `subcommand`, started at `started_at`, run with `args` (the program's arguments,
    /// the program first), on this machine. The run's fields (`run_id`, `scenario`, `seed`, `system`) are
    /// filled in by the caller; `finished_at` is now.
    pub fn new(subcommand: &str, started_at: String, args: &[String]) -> Self {
        Self {
            subcommand: subcommand.to_owned(),
            run_id: None,
            started_at,
            finished_at: now(),
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            git_revision: git_revision(),
            scenario: None,
            seed: None,
            command_line: command_line(args),
            machine: Machine::this(),
            system: None,
        }
    }

    /// Sets `finished_at` to now.
    pub fn finish(&mut self) {
        self.finished_at = now();
    }
}

/// Now, RFC 3339 UTC with milliseconds: the times of the reports.
pub fn now() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_millisecond(now.millisecond())
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// The machine the tool ran on. With a local system under test (the default `--process-name`), also
/// the machine that system ran on.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Machine {
    /// Host name (`uname -n`).
    pub host: String,
    /// CPUs this process may use (`nproc`).
    pub cpus: usize,
    /// The CPU's model name from `/proc/cpuinfo`, if it names one.
    pub cpu_model: Option<String>,
    /// Total memory from `/proc/meminfo`, MiB.
    pub memory_mib: Option<u64>,
    /// The distribution (`PRETTY_NAME` of `/etc/os-release`), else the kernel's name.
    pub os: String,
    /// Kernel name, release and hardware (`uname -srm`).
    pub kernel: String,
}

impl Machine {
    /// This machine, read from `uname`, `/proc` and `/etc/os-release`; what cannot be read stays empty.
    pub fn this() -> Self {
        let uname = nix::sys::utsname::uname().ok();
        let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
            uname
                .as_ref()
                .map(|u| f(u).to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let kernel = [
            field(|u| u.sysname()),
            field(|u| u.release()),
            field(|u| u.machine()),
        ]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        Self {
            host: field(|u| u.nodename()),
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model: cpu_model(&read("/proc/cpuinfo")),
            memory_mib: memory_mib(&read("/proc/meminfo")),
            os: os_name(&read("/etc/os-release")).unwrap_or_else(|| field(|u| u.sysname())),
            kernel,
        }
    }

    /// `host, 8 CPUs (model), 15.6 GiB, OS (kernel)`: the machine in one line.
    pub fn line(&self) -> String {
        let mut line = format!("{}, {} CPUs", self.host, self.cpus);
        if let Some(model) = &self.cpu_model {
            line.push_str(&format!(" ({model})"));
        }
        if let Some(mib) = self.memory_mib {
            line.push_str(&format!(", {:.1} GiB memory", mib as f64 / 1024.0));
        }
        line.push_str(&format!(", {} ({})", self.os, self.kernel));
        line
    }
}

/// `MemTotal` of a `/proc/meminfo` text, in MiB.
pub fn memory_mib(meminfo: &str) -> Option<u64> {
    let kib: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024)
}

/// `PRETTY_NAME` of an `/etc/os-release` text, unquoted.
pub fn os_name(os_release: &str) -> Option<String> {
    let value = os_release
        .lines()
        .find_map(|line| line.strip_prefix("PRETTY_NAME="))?
        .trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    (!value.is_empty()).then(|| value.to_owned())
}

/// The first `model name` of a `/proc/cpuinfo` text (x86), else its `Model` line (ARM boards).
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    let value = |key: &str| {
        cpuinfo.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            (name.trim() == key && !value.trim().is_empty()).then(|| value.trim().to_owned())
        })
    };
    value("model name").or_else(|| value("Model"))
}

/// The command line `args` (program first) as one shell-quoted line, the program by its file name, the
/// value of each flag in [`SECRET_FLAGS`] replaced by `***`.
pub fn command_line(args: &[String]) -> String {
    let mut words = Vec::with_capacity(args.len());
    let mut secret_next = false;
    for (i, arg) in args.iter().enumerate() {
        let word = if i == 0 {
            std::path::Path::new(arg)
                .file_name()
                .map_or_else(|| arg.clone(), |name| name.to_string_lossy().into_owned())
        } else if secret_next {
            secret_next = false;
            "***".to_owned()
        } else if let Some((flag, _)) = arg
            .split_once('=')
            .filter(|(flag, _)| SECRET_FLAGS.contains(flag))
        {
            format!("{flag}=***")
        } else {
            secret_next = SECRET_FLAGS.contains(&arg.as_str());
            arg.clone()
        };
        words.push(shell_quote(&word));
    }
    words.join(" ")
}

/// `word` as a shell reads it back: as it is when it holds only safe characters, else in single quotes.
fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The git revision the tool reports: [`GIT_REVISION_ENV`] if set, else `git describe --always --dirty
/// --abbrev=12` in the current folder, else `None` (not a checkout, or no git).
pub fn git_revision() -> Option<String> {
    if let Some(revision) = std::env::var(GIT_REVISION_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        return Some(revision.trim().to_owned());
    }
    let output = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success() && !text.is_empty()).then_some(text)
}

/// The system measured, as it describes itself when the measurement begins (after the warm-up).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SystemUnderTest {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// The consumer group whose lag was sampled (`--group`: the router's `delivery.group_id`).
    pub group: String,
    /// Members of that group, from the broker: router replicas (or pipe instances) consuming the core
    /// topic; `null` when the broker did not answer.
    pub replicas: Option<usize>,
    /// The host of each member as the broker sees it (`/127.0.0.1`), in the broker's order.
    pub replica_hosts: Vec<String>,
    /// Partitions of the core topic.
    pub core_partitions: usize,
    /// The router admin address read (`--router-admin`); `null` with `--router-admin none`.
    pub router_admin: Option<String>,
    /// The router's settings from its `/metrics` (`switchyard_router_info`); `null` when not read.
    pub router: Option<RouterSettings>,
    /// The processes whose CPU and memory were sampled.
    pub pids: Vec<u32>,
    /// Why a field above is unknown, one sentence each.
    pub notes: Vec<String>,
}

/// A router replica's version and delivery settings, the labels of its `switchyard_router_info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouterSettings {
    /// The router's version.
    pub version: String,
    /// `exactly_once` or `at_least_once` (`delivery.mode`).
    pub delivery_mode: String,
    /// `delivery.group_id`.
    pub group_id: String,
    /// `delivery.commit_interval_ms`: the router commits at least this often while events flow, ms.
    pub commit_interval_ms: u64,
    /// `delivery.commit_max_events`: or after this many input events.
    pub commit_max_events: u64,
    /// `delivery.transaction_timeout_ms`.
    pub transaction_timeout_ms: u64,
    /// `delivery.validate_payloads`.
    pub validate_payloads: bool,
    /// The replica's host name.
    pub host: String,
}

impl RouterSettings {
    /// The settings in a router's `/metrics` page; an error sentence when the page has no
    /// `switchyard_router_info` (a router older than the series) or a label is missing or not a number.
    pub fn from_metrics(metrics: &Metrics) -> Result<Self, String> {
        let sample = metrics
            .samples
            .iter()
            .find(|s| s.name == ROUTER_INFO)
            .ok_or_else(|| {
                format!("the router's /metrics has no {ROUTER_INFO} (a router older than this tool)")
            })?;
        let label = |key: &str| {
            sample
                .labels
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| format!("{ROUTER_INFO} has no label {key}"))
        };
        let number = |key: &str| {
            label(key)?
                .parse::<u64>()
                .map_err(|_| format!("{ROUTER_INFO}'s label {key} is not a number"))
        };
        Ok(Self {
            version: label("version")?,
            delivery_mode: label("delivery_mode")?,
            group_id: label("group_id")?,
            commit_interval_ms: number("commit_interval_ms")?,
            commit_max_events: number("commit_max_events")?,
            transaction_timeout_ms: number("transaction_timeout_ms")?,
            validate_payloads: label("validate_payloads")? == "true",
            host: label("host")?,
        })
    }
}

/// One member of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Its `client.id`.
    pub client_id: String,
    /// Its host as the broker sees it.
    pub host: String,
}

/// The members of `group`, from the broker (DescribeGroups).
pub fn group_members(bootstrap: &str, group: &str) -> Result<Vec<GroupMember>, LoadtestError> {
    let consumer: BaseConsumer<KafkaContext> = crate::kafka::clients(bootstrap)
        .consumer("loadtest-group")
        .create()?;
    let list = consumer
        .fetch_group_list(Some(group), Duration::from_secs(5))
        .map_err(LoadtestError::kafka(format!("describing the group {group}")))?;
    Ok(list
        .groups()
        .iter()
        .filter(|g| g.name() == group)
        .flat_map(|g| g.members())
        .map(|m| GroupMember {
            client_id: m.client_id().to_owned(),
            host: m.client_host().to_owned(),
        })
        .collect())
}

/// What the system under test says of itself: the members of `group` (the broker), and the router's
/// settings when `router_metrics` holds its `/metrics` page (or the error reading it). Never fails: what
/// cannot be read is a note.
pub fn describe_system(
    mut system: SystemUnderTest,
    members: Result<Vec<GroupMember>, LoadtestError>,
    router_metrics: Option<Result<Metrics, LoadtestError>>,
) -> SystemUnderTest {
    match members {
        Ok(members) => {
            if members.is_empty() {
                system.notes.push(format!(
                    "the group {} had no members when the measurement began: nothing consumed the core \
                     topic yet",
                    system.group
                ));
            }
            system.replicas = Some(members.len());
            system.replica_hosts = members.into_iter().map(|m| m.host).collect();
        }
        Err(error) => system
            .notes
            .push(format!("the members of {} are unknown: {error}", system.group)),
    }
    match router_metrics {
        None => system.notes.push(
            "the router's settings were not read (--router-admin none): a system without a router admin \
             server"
                .to_owned(),
        ),
        Some(Err(error)) => system
            .notes
            .push(format!("the router's settings were not read: {error}")),
        Some(Ok(metrics)) => match RouterSettings::from_metrics(&metrics) {
            Ok(settings) => system.router = Some(settings),
            Err(why) => system.notes.push(why),
        },
    }
    if system.pids.is_empty() {
        system.notes.push(
            "no process was watched (no --pid, and no local process of --process-name): CPU and memory \
             are not measured"
                .to_owned(),
        );
    }
    system
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_machine_files() {
        assert_eq!(
            memory_mib("MemTotal:       16315412 kB\nMemFree:  1 kB\n"),
            Some(15933)
        );
        assert_eq!(memory_mib("nothing"), None);
        assert_eq!(
            os_name("NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n").as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(os_name("PRETTY_NAME=Alpine\n").as_deref(), Some("Alpine"));
        assert_eq!(
            cpu_model(
                "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n"
            )
            .as_deref(),
            Some("AMD EPYC 7B13")
        );
        assert_eq!(cpu_model("processor : 0\n"), None);
        let here = Machine::this();
        assert!(
            here.cpus >= 1 && !here.host.is_empty() && here.kernel.contains("Linux"),
            "{here:?}"
        );
    }

    #[test]
    fn the_command_line_hides_secrets_and_quotes() {
        let args: Vec<String> = [
            "/x/target/release/switchyard-loadtest",
            "run",
            "--registry-token",
            "eyJ.secret",
            "--registry-token=eyJ.other",
            "--scenario",
            "my scenario.toml",
            "--rate",
            "300",
        ]
        .map(str::to_owned)
        .to_vec();
        let line = command_line(&args);
        assert_eq!(
            line,
            "switchyard-loadtest run --registry-token '***' '--registry-token=***' --scenario 'my scenario.toml' \
             --rate 300"
        );
        assert!(!line.contains("eyJ"));
    }

    const INFO: &str = r#"switchyard_router_info{commit_interval_ms="100",commit_max_events="5000",delivery_mode="exactly_once",group_id="switchyard-router",host="node-1",transaction_timeout_ms="10000",validate_payloads="true",version="0.1.0"} 1
"#;

    #[test]
    fn router_settings_from_its_info_series() {
        let settings = RouterSettings::from_metrics(&Metrics::parse(INFO)).unwrap();
        assert_eq!(settings.commit_interval_ms, 100);
        assert_eq!(settings.delivery_mode, "exactly_once");
        assert!(settings.validate_payloads);
        let old = RouterSettings::from_metrics(&Metrics::parse("switchyard_router_ready 1\n")).unwrap_err();
        assert!(old.contains("no switchyard_router_info"), "{old}");
        let bad =
            RouterSettings::from_metrics(&Metrics::parse(&INFO.replace("\"100\"", "\"soon\""))).unwrap_err();
        assert!(bad.contains("commit_interval_ms"), "{bad}");
    }

    #[test]
    fn a_system_says_what_it_could_not_read() {
        let base = SystemUnderTest {
            group: "g".into(),
            pids: vec![7],
            ..SystemUnderTest::default()
        };
        let members = vec![
            GroupMember {
                client_id: "a".into(),
                host: "/10.0.0.1".into(),
            },
            GroupMember {
                client_id: "b".into(),
                host: "/10.0.0.2".into(),
            },
        ];
        let system = describe_system(base.clone(), Ok(members), Some(Ok(Metrics::parse(INFO))));
        assert_eq!(system.replicas, Some(2));
        assert_eq!(system.router.as_ref().unwrap().host, "node-1");
        assert!(system.notes.is_empty(), "{:?}", system.notes);
        let system = describe_system(
            SystemUnderTest { pids: vec![], ..base },
            Err(LoadtestError::Usage("no broker".into())),
            None,
        );
        assert_eq!((system.replicas, system.router.is_none()), (None, true));
        assert_eq!(system.notes.len(), 3, "{:?}", system.notes);
        assert!(system.notes[1].contains("--router-admin none"));
    }
}
