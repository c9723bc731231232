//! Logging setup: `tracing` with a filter from the config, as text or JSON lines on stderr.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. An invalid filter falls back to `info` with a warning.
pub fn init(config: &LogConfig) {
    let (filter, invalid) = match EnvFilter::try_new(&config.level) {
        Ok(filter) => (filter, None),
        Err(error) => (EnvFilter::new("info"), Some(error)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, not in files or log collectors.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match config.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    if let Some(error) = invalid {
        tracing::warn!(%error, level = %config.level, "invalid log filter; using info");
    }
}
