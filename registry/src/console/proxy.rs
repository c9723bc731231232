//! Single sign-on through an authenticating reverse proxy (oauth2-proxy, an ingress with `auth_request`):
//! with `console.proxy.enabled`, the console trusts the identity headers the proxy sets on every request
//! instead of a sign-in, and maps the user's groups to a role. Off by default.
//!
//! Mapping: a group in `admin_groups` makes an admin; otherwise a group `<team_group_prefix><team>` lets
//! the user act as that team, and `<plugin_group_prefix><plugin>` as that plugin. A user in several team
//! groups acts, on a team's page, as the team the page names (if it is one of theirs), and elsewhere as
//! the first of them in alphabetical order.
//!
//! The registry cannot tell a header the proxy set from one a client sent, so the console must be
//! reachable only through the proxy (a network policy), or the proxy must also send
//! `shared_secret_header` with `shared_secret`, which the console checks in constant time.

use axum::http::HeaderMap;
use subtle::ConstantTimeEq as _;
use switchyard_schemas::ids::{check_plugin_id, check_team_id};

use crate::auth::Principal;
use crate::config::ConsoleProxyConfig;

/// Why a request carries no identity the console accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// The shared secret header is missing or wrong.
    NotFromProxy,
    /// No user header.
    NoUser,
    /// The user is in no group that maps to a role.
    NoRole(String),
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyError::NotFromProxy => {
                f.write_str("the request did not come through the authenticating proxy")
            }
            ProxyError::NoUser => f.write_str("the authenticating proxy did not say who you are"),
            ProxyError::NoRole(user) => write!(
                f,
                "{user} is in no group that gives access to Switchyard; ask for an admin, team or plugin group"
            ),
        }
    }
}

/// The user the proxy vouches for and the principal they act as on the requested page.
pub fn identify(
    config: &ConsoleProxyConfig,
    headers: &HeaderMap,
    page_team: Option<&str>,
) -> Result<(String, Principal), ProxyError> {
    if !config.shared_secret.is_empty() {
        let sent = headers
            .get(config.shared_secret_header.as_str())
            .map_or(&b""[..], |v| v.as_bytes());
        if !bool::from(sent.ct_eq(config.shared_secret.expose().as_bytes())) {
            return Err(ProxyError::NotFromProxy);
        }
    }
    let user = headers
        .get(config.user_header.as_str())
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or(ProxyError::NoUser)?
        .to_owned();
    let groups: Vec<&str> = headers
        .get_all(config.groups_header.as_str())
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .collect();
    principal(config, &groups, page_team)
        .map(|principal| (user.clone(), principal))
        .ok_or(ProxyError::NoRole(user))
}

/// The principal `groups` give on a page of `page_team` (if a team page): pure.
pub fn principal(config: &ConsoleProxyConfig, groups: &[&str], page_team: Option<&str>) -> Option<Principal> {
    if groups.iter().any(|g| config.admin_groups.iter().any(|a| a == g)) {
        return Some(Principal::Admin);
    }
    let with_prefix = |prefix: &str| -> Vec<String> {
        let mut ids: Vec<String> = groups
            .iter()
            .filter(|_| !prefix.is_empty())
            .filter_map(|g| g.strip_prefix(prefix))
            .map(str::to_owned)
            .collect();
        ids.sort();
        ids
    };
    let teams: Vec<String> = with_prefix(&config.team_group_prefix)
        .into_iter()
        .filter(|t| check_team_id(t.as_bytes()).is_ok())
        .collect();
    if let Some(team) = page_team.filter(|t| teams.iter().any(|own| own == t)) {
        return Some(Principal::Team(team.to_owned()));
    }
    if let Some(team) = teams.into_iter().next() {
        return Some(Principal::Team(team));
    }
    with_prefix(&config.plugin_group_prefix)
        .into_iter()
        .find(|p| check_plugin_id(p).is_ok())
        .map(Principal::Plugin)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;
    use crate::config::Secret;

    fn config() -> ConsoleProxyConfig {
        ConsoleProxyConfig {
            enabled: true,
            user_header: "x-forwarded-user".into(),
            groups_header: "x-forwarded-groups".into(),
            admin_groups: vec!["platform-admins".into()],
            team_group_prefix: "switchyard-team-".into(),
            plugin_group_prefix: "switchyard-plugin-".into(),
            shared_secret_header: "x-switchyard-proxy-secret".into(),
            shared_secret: Secret::new(""),
        }
    }

    #[test]
    fn groups_map_to_a_role() {
        let config = config();
        let team = |t: &str| Some(Principal::Team(t.to_owned()));
        assert_eq!(
            principal(&config, &["x", "platform-admins"], None),
            Some(Principal::Admin)
        );
        assert_eq!(
            principal(&config, &["switchyard-team-globex", "switchyard-team-acme"], None),
            team("acme")
        );
        assert_eq!(
            principal(
                &config,
                &["switchyard-team-globex", "switchyard-team-acme"],
                Some("globex")
            ),
            team("globex")
        );
        // A team page of a team the user is not in: their own first team (the API then refuses the page).
        assert_eq!(
            principal(&config, &["switchyard-team-acme"], Some("globex")),
            team("acme")
        );
        assert_eq!(
            principal(&config, &["switchyard-plugin-sheets-export"], None),
            Some(Principal::Plugin("sheets-export".into()))
        );
        assert_eq!(
            principal(
                &config,
                &["switchyard-team-", "switchyard-team-a b", "staff"],
                None
            ),
            None
        );
        let mut no_prefix = config.clone();
        no_prefix.team_group_prefix = String::new();
        assert_eq!(principal(&no_prefix, &["acme"], None), None);
    }

    #[test]
    fn headers_name_the_user_and_groups_and_carry_the_secret_when_one_is_set() {
        let mut config = config();
        let mut headers = HeaderMap::new();
        assert_eq!(identify(&config, &headers, None), Err(ProxyError::NoUser));
        headers.insert("x-forwarded-user", HeaderValue::from_static("achieng"));
        assert_eq!(
            identify(&config, &headers, None),
            Err(ProxyError::NoRole("achieng".into()))
        );
        headers.append(
            "x-forwarded-groups",
            HeaderValue::from_static("staff, switchyard-team-acme"),
        );
        assert_eq!(
            identify(&config, &headers, None),
            Ok(("achieng".into(), Principal::Team("acme".into())))
        );
        config.shared_secret = Secret::new("s3cret");
        assert_eq!(identify(&config, &headers, None), Err(ProxyError::NotFromProxy));
        headers.insert("x-switchyard-proxy-secret", HeaderValue::from_static("s3cret"));
        assert!(identify(&config, &headers, None).is_ok());
    }
}
