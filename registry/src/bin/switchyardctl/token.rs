//! `switchyardctl token`: development tokens and plugin signing secrets, computed locally from the
//! registry's own secrets (no registry call).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Subcommand, ValueEnum};
use switchyard_registry::auth::{
    CONSOLE_SIGN_IN, Claims, DEFAULT_MAX_PLUGIN_TOKEN_LIFETIME, DEFAULT_MAX_TOKEN_LIFETIME, Role,
    format_lifetime, mint_hs256_with,
};
use switchyard_registry::signing::MasterKey;

use crate::Failure;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum RoleArg {
    Admin,
    Team,
    Plugin,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Print a plugin's Standard Webhooks signing secret, derived from the registry's signing key (for a
    /// plugin service that verifies the calls of its bridge and of the gateway).
    SigningSecret {
        /// The plugin.
        #[arg(long)]
        plugin: String,
        /// The registry's signing key.
        #[arg(
            long,
            env = "SWITCHYARD_REGISTRY__GATEWAY__SIGNING_KEY",
            hide_env_values = true
        )]
        signing_key: String,
    },
    /// Mint an HS256 token from the registry's shared secret.
    Mint(MintArgs),
}

/// What a development token says and how it is signed (`token mint`, `console login`).
#[derive(Debug, clap::Args)]
pub(crate) struct MintArgs {
    /// The role.
    #[arg(long, value_enum, required_unless_present = "token")]
    role: Option<RoleArg>,
    /// The team (team tokens).
    #[arg(long, required_if_eq("role", "team"))]
    team: Option<String>,
    /// The plugin (plugin tokens).
    #[arg(long, required_if_eq("role", "plugin"))]
    plugin: Option<String>,
    /// The `aud` claim, when the registry is configured with `auth.audience`.
    #[arg(long)]
    audience: Option<String>,
    /// A `kid` in the token's header, naming the key of `auth.jwks` it is signed with (an `oct` key
    /// whose `k` is the base64url of `--secret`).
    #[arg(long)]
    kid: Option<String>,
    /// Lifetime, e.g. `15m`, `1h`, `7d`; at most what the registry accepts for the role.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    ttl: Duration,
    /// The registry's `auth.max_token_lifetime_ms`: the longest `--ttl` of an admin or team token.
    #[arg(
        long,
        env = "SWITCHYARD_REGISTRY__AUTH__MAX_TOKEN_LIFETIME_MS",
        default_value_t = DEFAULT_MAX_TOKEN_LIFETIME.as_millis() as u64
    )]
    max_token_lifetime_ms: u64,
    /// The registry's `auth.max_plugin_token_lifetime_ms`: the longest `--ttl` of a plugin token.
    #[arg(
        long,
        env = "SWITCHYARD_REGISTRY__AUTH__MAX_PLUGIN_TOKEN_LIFETIME_MS",
        default_value_t = DEFAULT_MAX_PLUGIN_TOKEN_LIFETIME.as_millis() as u64
    )]
    max_plugin_token_lifetime_ms: u64,
    /// The registry's HS256 secret.
    #[arg(
        long,
        env = "SWITCHYARD_REGISTRY__AUTH__HS256_SECRET",
        hide_env_values = true,
        required_unless_present = "token"
    )]
    secret: Option<String>,
}

/// Runs a `token` command.
pub(crate) fn token(command: &TokenCommand) -> Result<(), Failure> {
    match command {
        TokenCommand::SigningSecret { plugin, signing_key } => {
            let key = MasterKey::parse(signing_key).map_err(|e| Failure::Usage(e.to_string()))?;
            println!("{}", key.plugin_secret(plugin));
        }
        TokenCommand::Mint(args) => println!("{}", mint(args)?),
    }
    Ok(())
}

/// A token as `args` describe it.
pub(crate) fn mint(args: &MintArgs) -> Result<String, Failure> {
    mint_for(args, None)
}

/// A console sign-in link's token as `args` describe it: a fresh `jti` and `"switchyard_use":
/// "console-sign-in"`, so that the console accepts it once and the API never.
pub(crate) fn mint_sign_in(args: &MintArgs) -> Result<String, Failure> {
    mint_for(args, Some(uuid::Uuid::new_v4().to_string()))
}

fn mint_for(args: &MintArgs, sign_in: Option<String>) -> Result<String, Failure> {
    let MintArgs {
        role,
        team,
        plugin,
        audience,
        kid,
        ttl,
        max_token_lifetime_ms,
        max_plugin_token_lifetime_ms,
        secret,
    } = args;
    let (Some(role), Some(secret)) = (role, secret) else {
        return Err(Failure::Usage(
            "a token is minted from --role and --secret".to_owned(),
        ));
    };
    let (name, max_ms, key) = match role {
        RoleArg::Plugin => (
            "plugin",
            *max_plugin_token_lifetime_ms,
            "auth.max_plugin_token_lifetime_ms",
        ),
        RoleArg::Admin => ("admin", *max_token_lifetime_ms, "auth.max_token_lifetime_ms"),
        RoleArg::Team => ("team", *max_token_lifetime_ms, "auth.max_token_lifetime_ms"),
    };
    let max = Duration::from_millis(max_ms);
    if *ttl > max {
        return Err(Failure::Usage(format!(
            "--ttl {} is longer than the registry accepts for {name} tokens ({}, its {key}); the registry \
                 would refuse the token",
            format_lifetime(*ttl),
            format_lifetime(max),
        )));
    }
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + ttl.as_secs();
    let claims = Claims {
        role: match role {
            RoleArg::Admin => Role::Admin,
            RoleArg::Team => Role::Team,
            RoleArg::Plugin => Role::Plugin,
        },
        team: team.clone(),
        plugin: plugin.clone(),
        exp,
        purpose: sign_in.is_some().then(|| CONSOLE_SIGN_IN.to_owned()),
        jti: sign_in,
    };
    mint_hs256_with(secret.as_bytes(), &claims, audience.as_deref(), kid.as_deref())
        .map_err(|e| Failure::Usage(e.to_string()))
}
