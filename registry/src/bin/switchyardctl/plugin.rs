//! `switchyardctl plugin`: the plugin author's commands, all local (no registry call).
//!
//! - `new ID --lang python|node|go|rust`: a runnable project from the kit's templates, with a `.env` that
//!   holds a development signing key and the secret the registry will derive from it for this plugin, so
//!   that `switchyardctl dev` run in the project signs what the plugin already verifies.
//! - `check --url URL [--secret whsec_...]`: the HTTP contract's conformance checks, one line each.
//! - `keygen --key-id ID --out FILE [--plugins PATTERN...]`: a publisher key, and the registry's trust line.
//! - `sign MANIFEST --key FILE`: a publisher signature in the manifest (contract section 7.1.2).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use switchyard_plugin_kit::check::{self, Status, Target};
use switchyard_plugin_kit::templates::{Lang, Project};
use switchyard_registry::api::plugins::validate_manifest;
use switchyard_registry::signing::MasterKey;
use switchyard_schemas::publisher::{SecretKey, signed_bytes};

use crate::Failure;

#[derive(Debug, Subcommand)]
pub(crate) enum PluginCommand {
    /// Write a runnable plugin project: manifest, service, tests, README, Dockerfile.
    New {
        /// The plugin id, e.g. `hello-world` (also the project's folder).
        id: String,
        /// The language: python, node, go (HTTP services) or rust (in process).
        #[arg(long)]
        lang: Lang,
        /// Where to write it (default: `./<id>`); must not exist or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The display name (default: from the id).
        #[arg(long, default_value = "")]
        name: String,
        /// The Switchyard checkout the Rust template depends on (default: the one switchyardctl was built
        /// in, or `SWITCHYARD_HOME`).
        #[arg(long)]
        switchyard: Option<PathBuf>,
    },
    /// Run the HTTP contract's conformance checks against a running plugin service.
    Check {
        /// The service's base URL.
        #[arg(long)]
        url: String,
        /// Its signing secret (`whsec_...`); without it only the unsigned checks run.
        #[arg(long, env = "SWITCHYARD_SIGNING_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// The longest an answer may take (the bridge's `http.timeout_ms`).
        #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// The team of the sample calls.
        #[arg(long, default_value = "plugin-check")]
        team: String,
    },
    /// Make a publisher key: the secret key file, and the line the registry trusts it with.
    Keygen {
        /// The key's id, e.g. `acme-2026` (named in each signature).
        #[arg(long)]
        key_id: String,
        /// The secret key file to write (it must not exist).
        #[arg(long)]
        out: PathBuf,
        /// The plugins the key may sign, for the trust line: ids, prefixes ending in `*`, or `*`.
        #[arg(long, num_args = 1.., default_values_t = ["*".to_owned()])]
        plugins: Vec<String>,
    },
    /// Sign a manifest file in place with a publisher key (or write the signed manifest to `--out`).
    Sign {
        /// The manifest (JSON).
        manifest: PathBuf,
        /// The secret key file of `keygen`.
        #[arg(long)]
        key: PathBuf,
        /// Write here instead of over the manifest.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs a `plugin` command; `check` has its own exit code (1 when a check failed).
pub(crate) fn plugin(command: &PluginCommand, json_output: bool) -> Result<ExitCode, Failure> {
    match command {
        PluginCommand::New {
            id,
            lang,
            dir,
            name,
            switchyard,
        } => new(id, *lang, dir.as_deref(), name, switchyard.as_deref()).map(|()| ExitCode::SUCCESS),
        PluginCommand::Check {
            url,
            secret,
            timeout,
            team,
        } => check(
            &Target {
                url: url.clone(),
                secret: secret.clone(),
                timeout: *timeout,
                team: team.clone(),
            },
            json_output,
        ),
        PluginCommand::Keygen { key_id, out, plugins } => {
            keygen(key_id, out, plugins).map(|()| ExitCode::SUCCESS)
        }
        PluginCommand::Sign { manifest, key, out } => {
            sign(manifest, key, out.as_deref()).map(|()| ExitCode::SUCCESS)
        }
    }
}

fn usage(text: impl Into<String>) -> Failure {
    Failure::Usage(text.into())
}

fn new(
    id: &str,
    lang: Lang,
    dir: Option<&Path>,
    name: &str,
    switchyard: Option<&Path>,
) -> Result<(), Failure> {
    let dir = dir.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(id));
    let switchyard_path = match switchyard {
        Some(path) => path.to_path_buf(),
        None => crate::checkout().unwrap_or_default(),
    };
    if lang == Lang::Rust && !switchyard_path.join("plugin-runtime/Cargo.toml").exists() {
        return Err(usage(
            "the Rust template depends on the Switchyard checkout: pass --switchyard PATH or set SWITCHYARD_HOME",
        ));
    }
    let switchyard_path = std::fs::canonicalize(&switchyard_path).unwrap_or(switchyard_path);
    // The development signing key of `switchyardctl dev`, and the secret the registry derives from it.
    let key = crate::random_key();
    let secret = MasterKey::parse(&key)
        .map_err(|e| usage(e.to_string()))?
        .plugin_secret(id);
    let env = format!(
        "# Development only (switchyardctl dev reads the key; the plugin reads the secret). Never commit or ship.\n\
         SWITCHYARD_SIGNING_SECRET={secret}\nSWITCHYARD_DEV_SIGNING_KEY={key}\n"
    );
    let project = Project {
        id: id.to_owned(),
        name: name.to_owned(),
        lang,
        switchyard_path: switchyard_path.clone(),
        extra_files: vec![(".env".into(), env)],
    };
    let written = project.write(&dir).map_err(|e| usage(e.to_string()))?;
    if lang == Lang::Rust {
        // The workspace's lock file: the project builds with the versions Switchyard is tested with.
        let _ = std::fs::copy(switchyard_path.join("Cargo.lock"), dir.join("Cargo.lock"));
    }
    println!("wrote {} files into {}/", written.len(), dir.display());
    println!(
        "next: cd {} and follow README.md (three commands to the first event)",
        dir.display()
    );
    Ok(())
}

fn check(target: &Target, json_output: bool) -> Result<ExitCode, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| usage(e.to_string()))?;
    let report = runtime.block_on(check::run(target, |json| {
        validate_manifest(json)
            .map(|_| ())
            .map_err(|lines| lines.join("; "))
    }));
    let failed = report.iter().filter(|c| c.result == Status::Fail).count();
    if json_output {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        for check in &report {
            let mark = match check.result {
                Status::Pass => "PASS",
                Status::Fail => "FAIL",
                Status::Skip => "SKIP",
            };
            println!("{mark}  {}: {}", check.check, check.detail);
            if !check.fix.is_empty() {
                println!("      fix: {}", check.fix);
            }
        }
        let passed = report.iter().filter(|c| c.result == Status::Pass).count();
        println!(
            "{passed} passed, {failed} failed, {} skipped",
            report.len() - passed - failed
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn keygen(key_id: &str, out: &Path, plugins: &[String]) -> Result<(), Failure> {
    let key = SecretKey::generate(key_id).map_err(|e| usage(e.to_string()))?;
    let line = key.trust_line(plugins);
    switchyard_schemas::publisher::PublisherKey::parse(&line).map_err(|e| usage(e.to_string()))?;
    write_secret_file(out, &format!("{}\n", key.to_text()))?;
    eprintln!(
        "wrote the secret key to {} (keep it like a password; it signs your releases)",
        out.display()
    );
    eprintln!("the registry trusts it with this entry of registration.publishers:");
    println!("{line}");
    Ok(())
}

/// Writes a new file readable by its owner only; an existing file is refused, not overwritten.
fn write_secret_file(path: &Path, text: &str) -> Result<(), Failure> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| usage(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .map_err(|e| usage(format!("cannot write {}: {e}", path.display())))
}

fn sign(manifest: &Path, key: &Path, out: Option<&Path>) -> Result<(), Failure> {
    let key_text =
        std::fs::read_to_string(key).map_err(|e| usage(format!("cannot read {}: {e}", key.display())))?;
    let key = SecretKey::parse(&key_text).map_err(|e| usage(format!("{}: {e}", key.display())))?;
    let mut json = crate::read_json_file(&manifest.to_path_buf())?;
    validate_manifest(&json).map_err(|lines| {
        usage(format!(
            "{} would not register: {}",
            manifest.display(),
            lines.join("; ")
        ))
    })?;
    key.sign(&mut json).map_err(|e| usage(e.to_string()))?;
    let mut text = serde_json::to_string_pretty(&json).map_err(|e| usage(e.to_string()))?;
    text.push('\n');
    let target = out.unwrap_or(manifest);
    std::fs::write(target, text).map_err(|e| usage(format!("cannot write {}: {e}", target.display())))?;
    let signed = signed_bytes(&json).map(|b| b.len()).unwrap_or(0);
    eprintln!(
        "signed {} with key {} ({signed} canonical bytes; \"url\" and \"signature\" are not covered)",
        target.display(),
        key.key_id()
    );
    Ok(())
}
