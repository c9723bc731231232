//! `switchyardctl console login`: a link that signs a browser in to the web console.

use clap::Subcommand;

use crate::Failure;
use crate::token::{MintArgs, mint_sign_in};

#[derive(Debug, Subcommand)]
pub(crate) enum ConsoleCommand {
    /// Print a one-time sign-in link: `<registry>/<console path>/sign-in#token=...`. The token rides in
    /// the URL's fragment, which the browser never sends to a server; the page signs in with it at once.
    /// It is minted from the HS256 secret as `token mint` does, marked for the console's sign-in only
    /// (the API refuses it) with an id the registry records when it is used: the link signs in once,
    /// within `--ttl`, and the session then lasts the console's session lifetime. With `--token`, the link
    /// carries that API token instead, which signs in as often as it is used, until it expires.
    Login {
        /// The console's path on the registry (`console.path`).
        #[arg(long, default_value = "/console")]
        path: String,
        #[command(flatten)]
        mint: MintArgs,
    },
}

/// Runs a `console` command.
pub(crate) fn console(url: &str, token: Option<&str>, command: &ConsoleCommand) -> Result<(), Failure> {
    let ConsoleCommand::Login { path, mint: args } = command;
    let token = match token {
        Some(token) => token.to_owned(),
        None => mint_sign_in(args)?,
    };
    println!("{}", link(url, path, &token));
    Ok(())
}

/// The sign-in link of `token` on the console at `path` of the registry at `url`.
fn link(url: &str, path: &str, token: &str) -> String {
    format!(
        "{}/{}/sign-in#token={token}",
        url.trim_end_matches('/'),
        path.trim_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_rides_in_the_fragment() {
        assert_eq!(
            link("http://127.0.0.1:8080/", "/console", "a.b.c"),
            "http://127.0.0.1:8080/console/sign-in#token=a.b.c"
        );
        assert_eq!(
            link("https://r.example", "ops/console/", "t"),
            "https://r.example/ops/console/sign-in#token=t"
        );
    }
}
