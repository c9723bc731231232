//! `switchyardctl secrets`: how the stored configs are sealed (`status`), sealing them again with the
//! sealing master key after a rotation (`rotate`, rounds of `POST /v1/secrets/reseal` with a progress
//! bar), and a plugin's own keys for a worker that does not register (`plugin-keys`, computed locally from
//! the master keys, no registry call).

use std::io::IsTerminal as _;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use switchyard_registry::client::Client;
use switchyard_registry::secrets::ConfigSecrets;

use crate::Failure;
use crate::teams::Output;

/// Rounds in a row that seal nothing again before `rotate` gives up.
const MAX_IDLE_ROUNDS: u32 = 10;

/// `secrets ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum SecretsCommand {
    /// How the stored configs are sealed: by which master key, how many still in clear (admins).
    Status,
    /// Seal again, with the sealing (first) master key, every config an older key sealed or that holds a
    /// secret in clear (admins). Rounds of `--batch` configs until none is left; safe to repeat.
    Rotate {
        /// Configs per round.
        #[arg(long, default_value_t = 100)]
        batch: usize,
    },
    /// Print a plugin's config keys (`<id>:<base64>`, one per line, the sealing one first), for the
    /// `secrets.config_keys` of workers that do not register.
    PluginKeys {
        /// The plugin.
        #[arg(long)]
        plugin: String,
        /// The registry's master keys, comma-separated `<id>:<base64>`.
        #[arg(
            long,
            env = "SWITCHYARD_REGISTRY__SECRETS__MASTER_KEYS",
            hide_env_values = true,
            value_delimiter = ','
        )]
        master_keys: Vec<String>,
    },
}

/// Runs `secrets plugin-keys`, which needs no registry.
pub(crate) fn plugin_keys(command: &SecretsCommand) -> Result<(), Failure> {
    let SecretsCommand::PluginKeys { plugin, master_keys } = command else {
        unreachable!("only called for plugin-keys")
    };
    let keys: Vec<&str> = master_keys.iter().map(String::as_str).collect();
    let secrets = ConfigSecrets::parse(&keys).map_err(|e| Failure::Usage(e.to_string()))?;
    if !secrets.enabled() {
        return Err(Failure::Usage(
            "no master key: pass --master-keys or set SWITCHYARD_REGISTRY__SECRETS__MASTER_KEYS".to_owned(),
        ));
    }
    for key in secrets.plugin_keys(plugin) {
        println!("{}", key.to_text().as_str());
    }
    Ok(())
}

/// Runs `secrets status` and `secrets rotate`.
pub(crate) fn secrets(client: &Client, command: &SecretsCommand) -> Result<Output, Failure> {
    match command {
        SecretsCommand::Status => {
            let status = client.get("/v1/secrets")?;
            let table = status_table(&status);
            Ok((status, table))
        }
        SecretsCommand::Rotate { batch } => rotate(client, *batch),
        SecretsCommand::PluginKeys { .. } => unreachable!("handled without a registry"),
    }
}

fn count(value: &Value, field: &str) -> u64 {
    value[field].as_u64().unwrap_or(0)
}

fn status_table(status: &Value) -> String {
    let sealed_with: Vec<String> = status["sealed_with"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}: {v}")).collect())
        .unwrap_or_default();
    format!(
        "sealing key: {}\nkeys:        {}\nconfigs:     {}\nsealed with: {}\nin clear:    {}\nto reseal:   {}\n",
        status["sealing_key"]
            .as_str()
            .unwrap_or("(none: secrets are stored in clear)"),
        status["keys"]
            .as_array()
            .map(|k| k.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
            .unwrap_or_default(),
        count(status, "configs"),
        if sealed_with.is_empty() {
            "-".to_owned()
        } else {
            sealed_with.join(", ")
        },
        count(status, "clear"),
        count(status, "to_reseal"),
    )
}

fn rotate(client: &Client, batch: usize) -> Result<Output, Failure> {
    let before = client.get("/v1/secrets")?;
    let total = count(&before, "to_reseal");
    let bar = std::io::stdout().is_terminal().then(|| {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} configs sealed again  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    });
    let (mut resealed, mut changed, mut failed) = (0, 0, Vec::new());
    let (mut remaining, mut idle_rounds) = (total, 0);
    while remaining > 0 {
        let round = client.post(&format!("/v1/secrets/reseal?limit={batch}"), &json!({}))?;
        let done = count(&round, "resealed");
        resealed += done;
        changed += count(&round, "changed");
        remaining = count(&round, "remaining");
        let failures = round["failed"].as_array().cloned().unwrap_or_default();
        match &bar {
            Some(bar) => {
                bar.inc(done);
                bar.set_message(format!("{remaining} left"));
            }
            None => eprintln!("sealed again: {resealed} of {total}, {remaining} left"),
        }
        // Only configs that cannot be opened are left: another round would not change them.
        if done == 0 && remaining as usize <= failures.len() {
            failed = failures;
            break;
        }
        // Configs that keep coming back sealed with an older key: a replica still seals with it.
        idle_rounds = if done == 0 { idle_rounds + 1 } else { 0 };
        if idle_rounds >= MAX_IDLE_ROUNDS {
            return Err(Failure::Usage(format!(
                "{remaining} configs keep being written with an older master key: make the new key the \
                 first of secrets.master_keys on every registry replica, then run this again"
            )));
        }
    }
    if let Some(bar) = bar {
        bar.finish_with_message(format!("{remaining} left"));
    }
    let summary = json!({"resealed": resealed, "changed_meanwhile": changed, "remaining": remaining,
                         "failed": failed});
    let mut table =
        format!("sealed again: {resealed}; changed meanwhile (sealed by their own write): {changed}\n");
    for failure in &failed {
        table.push_str(&format!(
            "cannot open {}: {}\n",
            failure["config"].as_str().unwrap_or_default(),
            failure["reason"].as_str().unwrap_or_default()
        ));
    }
    if remaining > 0 {
        return Err(Failure::Usage(format!(
            "{table}{remaining} configs are not sealed with the sealing key yet; keep the old master key until \
             they are"
        )));
    }
    table.push_str("every config is sealed with the sealing key: the older master keys can be retired\n");
    Ok((summary, table))
}
