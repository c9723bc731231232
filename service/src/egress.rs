//! Outbound HTTP to plugin URLs, guarded against server-side request forgery (SSRF).
//!
//! The registry forwards requests to admin-registered plugin URLs and the plugin runtime calls them
//! too. Neither may become a way to reach the cloud metadata service (169.254.169.254) or other
//! internal addresses. The guard has three layers:
//!
//! 1. **URL patterns** ([`EgressPolicy::check_url`]): only `http`/`https` URLs without `user:pass@` that
//!    match a configured pattern `scheme://host[:port][/path-prefix]` are allowed. An empty list allows
//!    nothing. A host written as an IP literal is checked against the IP rules right away, because the
//!    HTTP client connects to IP literals without asking the resolver.
//! 2. **IP rules** ([`EgressPolicy::ip_allowed`]): loopback, private, link-local, CGNAT, multicast,
//!    reserved and similar ranges are denied, also when an IPv6 address embeds such an IPv4 address
//!    (IPv4-mapped, IPv4-compatible, NAT64, 6to4). Addresses inside a configured allowed network (for
//!    in-cluster services) are always allowed.
//! 3. **Resolve it ourselves** ([`GuardedResolver`]): the client built by [`EgressPolicy::client`]
//!    resolves names with our resolver, which drops every address that fails the IP rules. The client
//!    connects only to addresses the resolver returned, so a name that matches a pattern but resolves
//!    to a denied address (by mistake or by DNS rebinding) cannot be reached.
//!
//! The client also follows no redirects (a `3xx` is returned as is, so a plugin cannot bounce us to
//! another host), uses no proxy, and has a total time limit; [`read_capped`] limits the body size.
//!
//! Always pass a URL through [`EgressPolicy::check_url`] and send the returned [`url::Url`]: the
//! client alone does not check patterns or IP-literal hosts.
//!
//! `https` URLs use the system's OpenSSL (reqwest's `native-tls`), which librdkafka links already.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Errors from building an [`EgressPolicy`] or from an outbound request.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// A configured URL pattern is malformed.
    #[error("The egress URL pattern {pattern:?} is invalid: {reason}.")]
    BadPattern {
        /// The pattern as configured.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A configured allowed network is not a CIDR or an IP address.
    #[error("The allowed egress network {network:?} is not a CIDR such as 10.0.0.0/8 or fd00::/8: {source}.")]
    BadNetwork {
        /// The network as configured.
        network: String,
        /// Why it did not parse.
        source: ipnet::AddrParseError,
    },
    /// The URL does not parse.
    #[error("The plugin URL {url:?} is not a valid URL: {source}.")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// Why it did not parse.
        source: url::ParseError,
    },
    /// The URL's scheme is neither `http` nor `https`.
    #[error("The plugin URL {url} uses the scheme {scheme:?}; only http and https are allowed.")]
    Scheme {
        /// The URL.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// The URL contains a user name or password.
    #[error(
        "The plugin URL {url} contains a user name or password, which is not allowed; \
         pass credentials in headers instead."
    )]
    Userinfo {
        /// The URL with its user name and password removed.
        url: String,
    },
    /// The URL matches none of the configured patterns.
    #[error(
        "The plugin URL {url} matches none of the configured egress URL patterns, \
         so it may not be called."
    )]
    NotAllowed {
        /// The URL.
        url: String,
    },
    /// The host is, or resolves only to, an address in a denied range.
    #[error(
        "Refusing to connect to {host}: its address {ip} is in a denied range \
         (loopback, private, link-local, metadata, ...) and not in the allowed egress networks."
    )]
    Denied {
        /// The host from the URL.
        host: String,
        /// The (first) denied address.
        ip: IpAddr,
    },
    /// DNS resolution failed or returned no address.
    #[error("Could not resolve the plugin host {host}: {source}.")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// The response body is larger than allowed.
    #[error("The response from {url} is larger than the limit of {limit} bytes.")]
    TooLarge {
        /// The URL the response came from.
        url: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The HTTP client could not be built.
    #[error("Could not build the outbound HTTP client: {0}.")]
    Client(#[source] reqwest::Error),
    /// Reading the response body failed (connection error or timeout).
    #[error("Could not read the response body: {0}.")]
    Read(#[source] reqwest::Error),
}

/// Finds the [`EgressError`] behind a failed request, for example the [`EgressError::Denied`] raised by
/// [`GuardedResolver`], so callers can tell a policy refusal from a network failure.
pub fn egress_error(err: &reqwest::Error) -> Option<&EgressError> {
    let mut source = std::error::Error::source(err);
    while let Some(current) = source {
        if let Some(found) = current.downcast_ref::<EgressError>() {
            return Some(found);
        }
        source = current.source();
    }
    None
}

/// Which URLs and addresses outbound requests may reach. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EgressPolicy {
    patterns: Vec<UrlPattern>,
    allowed_networks: Arc<[IpNet]>,
}

impl EgressPolicy {
    /// Builds a policy from configuration.
    ///
    /// `url_patterns` are `scheme://host[:port][/path-prefix]`, where host is an exact name, an IP
    /// literal (IPv6 in brackets) or `*.example.com` (any subdomain, not the apex); the port defaults
    /// to the scheme's; the path prefix matches whole segments (`/api` matches `/api` and `/api/x`, not
    /// `/apix`). `allowed_networks` are CIDRs (a bare IP means that single address) whose addresses
    /// are allowed even inside denied ranges, for in-cluster services.
    pub fn new<P: AsRef<str>, N: AsRef<str>>(
        url_patterns: &[P],
        allowed_networks: &[N],
    ) -> Result<Self, EgressError> {
        let patterns = url_patterns
            .iter()
            .map(|p| UrlPattern::parse(p.as_ref()))
            .collect::<Result<_, _>>()?;
        let allowed_networks = allowed_networks
            .iter()
            .map(|n| parse_network(n.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            patterns,
            allowed_networks,
        })
    }

    /// Checks a URL and returns it parsed, ready to send with the client from [`client`](Self::client).
    ///
    /// Requires `http` or `https`, no user info, a matching pattern, and, when the host is an IP
    /// literal, an allowed address. Names are checked later, when the client resolves them.
    pub fn check_url(&self, url: &str) -> Result<Url, EgressError> {
        let parsed = Url::parse(url).map_err(|source| EgressError::BadUrl {
            url: url.to_owned(),
            source,
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(EgressError::Scheme {
                url: parsed.to_string(),
                scheme: parsed.scheme().to_owned(),
            });
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            let mut redacted = parsed.clone();
            // Both calls only fail for URLs without a host, which http(s) URLs always have.
            let _ = redacted.set_username("");
            let _ = redacted.set_password(None);
            return Err(EgressError::Userinfo {
                url: redacted.to_string(),
            });
        }
        if !self.patterns.iter().any(|pattern| pattern.matches(&parsed)) {
            return Err(EgressError::NotAllowed {
                url: parsed.to_string(),
            });
        }
        let literal_ip = match parsed.host() {
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(Host::Domain(_)) | None => None,
        };
        if let Some(ip) = literal_ip
            && !self.ip_allowed(ip)
        {
            return Err(EgressError::Denied {
                host: parsed.host_str().unwrap_or_default().to_owned(),
                ip,
            });
        }
        Ok(parsed)
    }

    /// Whether outbound connections to `ip` are allowed: true inside an allowed network, otherwise
    /// false for the denied ranges described in the module docs.
    pub fn ip_allowed(&self, ip: IpAddr) -> bool {
        ip_allowed(&self.allowed_networks, ip)
    }

    /// A resolver that returns only addresses passing [`ip_allowed`](Self::ip_allowed).
    pub fn resolver(&self) -> GuardedResolver {
        GuardedResolver {
            allowed_networks: Arc::clone(&self.allowed_networks),
        }
    }

    /// Builds an HTTP client for plugin calls: guarded resolver, no redirects, no proxy, the total
    /// `timeout` per request (connect, headers and body), and the User-Agent `switchyard`.
    pub fn client(&self, timeout: Duration) -> Result<reqwest::Client, EgressError> {
        reqwest::Client::builder()
            .dns_resolver(self.resolver())
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .user_agent("switchyard")
            .build()
            .map_err(EgressError::Client)
    }
}

/// Reads a response body, failing with [`EgressError::TooLarge`] as soon as it exceeds `max_bytes`.
///
/// A `Content-Length` above the limit fails at once, but the length is not trusted: the body is read
/// chunk by chunk and counted.
pub async fn read_capped(mut response: reqwest::Response, max_bytes: usize) -> Result<Vec<u8>, EgressError> {
    let too_large = |response: &reqwest::Response| EgressError::TooLarge {
        url: response.url().to_string(),
        limit: max_bytes,
    };
    let announced = match response.content_length().map(usize::try_from) {
        None => 0,
        Some(Ok(len)) if len <= max_bytes => len,
        Some(_) => return Err(too_large(&response)),
    };
    let mut body = Vec::with_capacity(announced);
    while let Some(chunk) = response.chunk().await.map_err(EgressError::Read)? {
        if body.len() + chunk.len() > max_bytes {
            return Err(too_large(&response));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A [`reqwest`] DNS resolver that drops denied addresses; see the module docs.
///
/// Resolution fails with [`EgressError::Denied`] when every address of a name is denied, and with
/// [`EgressError::Resolve`] when the lookup fails. Get one from [`EgressPolicy::resolver`].
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    allowed_networks: Arc<[IpNet]>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allowed_networks = Arc::clone(&self.allowed_networks);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: the HTTP connector replaces it with the URL's port.
            let lookup = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map(Iterator::collect);
            let resolved: Vec<SocketAddr> = match lookup {
                Ok(addrs) => addrs,
                Err(source) => return Err(EgressError::Resolve { host, source }.into()),
            };
            let (allowed, denied): (Vec<SocketAddr>, Vec<SocketAddr>) = resolved
                .into_iter()
                .partition(|addr| ip_allowed(&allowed_networks, addr.ip()));
            if allowed.is_empty() {
                let error = match denied.first() {
                    Some(addr) => EgressError::Denied { host, ip: addr.ip() },
                    None => EgressError::Resolve {
                        host,
                        source: io::Error::other("no addresses found"),
                    },
                };
                return Err(error.into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// Parses an allowed network: a CIDR, or a bare IP meaning that one address.
fn parse_network(text: &str) -> Result<IpNet, EgressError> {
    let text = text.trim();
    match text.parse::<IpNet>() {
        Ok(net) => Ok(net.trunc()),
        Err(source) => match text.parse::<IpAddr>() {
            Ok(ip) => Ok(IpNet::from(ip)),
            Err(_) => Err(EgressError::BadNetwork {
                network: text.to_owned(),
                source,
            }),
        },
    }
}

// ---------------------------------------------------------------------------------------------------
// URL patterns

/// One parsed `scheme://host[:port][/path-prefix]` pattern.
#[derive(Debug, Clone)]
struct UrlPattern {
    scheme: String,
    host: HostPattern,
    port: u16,
    /// Normalised path without trailing slash; empty matches every path.
    path_prefix: String,
}

#[derive(Debug, Clone, PartialEq)]
enum HostPattern {
    /// This name only.
    Exact(String),
    /// Any name ending in `.{suffix}`, but not the suffix itself.
    Subdomains(String),
    /// This IP literal.
    Ip(IpAddr),
}

impl UrlPattern {
    fn parse(pattern: &str) -> Result<Self, EgressError> {
        let bad = |reason: &str| EgressError::BadPattern {
            pattern: pattern.to_owned(),
            reason: reason.to_owned(),
        };

        let (scheme, rest) = pattern
            .trim()
            .split_once("://")
            .ok_or_else(|| bad("it must look like scheme://host[:port][/path]"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(bad("the scheme must be http or https"));
        }
        if rest.contains(['?', '#']) {
            return Err(bad("a query or fragment is not allowed"));
        }
        if rest.contains('@') {
            return Err(bad("a user name or password is not allowed"));
        }
        let (wildcard, rest) = match rest.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        if rest.contains('*') {
            return Err(bad(
                "'*' is only allowed as the whole first label, as in *.example.com",
            ));
        }

        // Let the URL parser normalise the host (case, IDNA, IP forms), port and path exactly as it will
        // normalise the URLs we check.
        let parsed = Url::parse(&format!("{scheme}://{rest}")).map_err(|e| bad(&e.to_string()))?;
        let host = match parsed.host() {
            Some(Host::Domain(name)) if wildcard => HostPattern::Subdomains(name.to_owned()),
            Some(Host::Domain(name)) => HostPattern::Exact(name.to_owned()),
            Some(Host::Ipv4(_) | Host::Ipv6(_)) if wildcard => {
                return Err(bad("a wildcard cannot be combined with an IP address"));
            }
            Some(Host::Ipv4(ip)) => HostPattern::Ip(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => HostPattern::Ip(IpAddr::V6(ip)),
            None => return Err(bad("the host is missing")),
        };
        let port = parsed
            .port_or_known_default()
            .ok_or_else(|| bad("the port is missing"))?;
        let path_prefix = parsed.path().trim_end_matches('/').to_owned();
        Ok(Self {
            scheme,
            host,
            port,
            path_prefix,
        })
    }

    fn matches(&self, url: &Url) -> bool {
        let host_matches = match (&self.host, url.host()) {
            (HostPattern::Exact(name), Some(Host::Domain(domain))) => domain == name,
            (HostPattern::Subdomains(suffix), Some(Host::Domain(domain))) => domain
                .strip_suffix(suffix.as_str())
                .is_some_and(|label| label.len() > 1 && label.ends_with('.')),
            (HostPattern::Ip(ip), Some(Host::Ipv4(v4))) => *ip == IpAddr::V4(v4),
            (HostPattern::Ip(ip), Some(Host::Ipv6(v6))) => *ip == IpAddr::V6(v6),
            _ => false,
        };
        let path_matches = url
            .path()
            .strip_prefix(self.path_prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        url.scheme() == self.scheme
            && host_matches
            && url.port_or_known_default() == Some(self.port)
            && path_matches
    }
}

// ---------------------------------------------------------------------------------------------------
// IP rules

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

/// IPv4 ranges that are never reachable unless inside an allowed network (IANA special-purpose
/// registry, minus the globally reachable entries).
const DENIED_V4: [Ipv4Net; 15] = [
    v4(0, 0, 0, 0, 8),       // "this network", including the unspecified 0.0.0.0
    v4(10, 0, 0, 0, 8),      // private (RFC 1918)
    v4(100, 64, 0, 0, 10),   // carrier-grade NAT (RFC 6598)
    v4(127, 0, 0, 0, 8),     // loopback
    v4(169, 254, 0, 0, 16),  // link-local, including the metadata service 169.254.169.254
    v4(172, 16, 0, 0, 12),   // private (RFC 1918)
    v4(192, 0, 0, 0, 24),    // IETF protocol assignments
    v4(192, 0, 2, 0, 24),    // documentation (TEST-NET-1)
    v4(192, 88, 99, 0, 24),  // deprecated 6to4 relay anycast
    v4(192, 168, 0, 0, 16),  // private (RFC 1918)
    v4(198, 18, 0, 0, 15),   // benchmarking
    v4(198, 51, 100, 0, 24), // documentation (TEST-NET-2)
    v4(203, 0, 113, 0, 24),  // documentation (TEST-NET-3)
    v4(224, 0, 0, 0, 4),     // multicast
    v4(240, 0, 0, 0, 4),     // reserved, including the broadcast address 255.255.255.255
];

const fn v6(segments: [u16; 8], prefix: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), prefix)
}

/// Global unicast IPv6 space. Everything outside it is denied: the unspecified address, loopback,
/// ULA fc00::/7, link-local fe80::/10, site-local fec0::/10, multicast ff00::/8, discard 100::/64, ...
const GLOBAL_UNICAST_V6: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

/// Parts of the global unicast space that are denied anyway.
const DENIED_V6: [Ipv6Net; 2] = [
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), // IETF protocol assignments, including Teredo 2001::/32
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), // documentation
];

fn ip_allowed(allowed_networks: &[IpNet], ip: IpAddr) -> bool {
    // `::ffff:a.b.c.d` is how dual-stack sockets write IPv4 addresses: treat it as plain IPv4.
    let ip = ip.to_canonical();
    if allowed_networks.iter().any(|net| net.contains(&ip)) {
        return true;
    }
    match ip {
        IpAddr::V4(v4) => !DENIED_V4.iter().any(|net| net.contains(&v4)),
        IpAddr::V6(v6) => match embedded_ipv4(v6) {
            // The packet may end up at the embedded IPv4 address, so that address decides.
            Some(v4) => ip_allowed(allowed_networks, IpAddr::V4(v4)),
            None => GLOBAL_UNICAST_V6.contains(&v6) && !DENIED_V6.iter().any(|net| net.contains(&v6)),
        },
    }
}

/// The IPv4 address carried inside an IPv6 address of a translation or tunnelling form, if any.
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    let low32 = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    match ip.segments() {
        // IPv4-mapped ::ffff:0:0/96.
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low32),
        // IPv4-compatible ::/96 (deprecated), but not :: and ::1, which are IPv6's own addresses.
        [0, 0, 0, 0, 0, 0, _, _] if !ip.is_unspecified() && !ip.is_loopback() => Some(low32),
        // NAT64 well-known prefix 64:ff9b::/96.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low32),
        // 6to4 2002::/16: the IPv4 address follows the first 16 bits.
        [0x2002, ..] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: &[&str] = &[];

    fn policy(patterns: &[&str], networks: &[&str]) -> EgressPolicy {
        EgressPolicy::new(patterns, networks).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn denied_ranges() {
        let p = policy(NONE, NONE);
        let denied = [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.1.2.3",
            "169.254.169.254",
            "169.254.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "192.0.2.1",
            "198.18.0.1",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            // IPv6 proper
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            // IPv6 embedding a denied IPv4 address
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:0a00:0001::",
            "2002:a9fe:a9fe::1",
            "2002:7f00:1::",
        ];
        for addr in denied {
            assert!(!p.ip_allowed(ip(addr)), "{addr} should be denied");
        }
    }

    #[test]
    fn public_addresses_allowed() {
        let p = policy(NONE, NONE);
        let allowed = [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "169.253.255.255",
            "2606:4700::1111",
            "2a00:1450::1",
            "::ffff:93.184.216.34",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::1",
        ];
        for addr in allowed {
            assert!(p.ip_allowed(ip(addr)), "{addr} should be allowed");
        }
    }

    #[test]
    fn allowed_networks_override_denials() {
        let p = policy(NONE, &["127.0.0.0/8", "fd00::/8", "10.1.2.3"]);
        assert!(p.ip_allowed(ip("127.0.0.1")));
        assert!(p.ip_allowed(ip("::ffff:127.0.0.1")));
        assert!(p.ip_allowed(ip("fd00::5")));
        assert!(p.ip_allowed(ip("10.1.2.3")));
        assert!(!p.ip_allowed(ip("10.1.2.4")));
        assert!(!p.ip_allowed(ip("::1")));
        assert!(!p.ip_allowed(ip("169.254.169.254")));
        assert!(!policy(NONE, NONE).ip_allowed(ip("127.0.0.1")));
    }

    #[test]
    fn wildcard_patterns() {
        let p = policy(&["https://*.example.com"], NONE);
        assert!(p.check_url("https://a.example.com/x").is_ok());
        assert!(p.check_url("https://a.b.EXAMPLE.com").is_ok());
        assert!(p.check_url("https://a.example.com:443/").is_ok());
        for url in [
            "https://example.com/",
            "https://badexample.com/",
            "https://a.example.com.evil.net/",
            "http://a.example.com/",
            "https://a.example.com:8443/",
        ] {
            assert!(
                matches!(p.check_url(url), Err(EgressError::NotAllowed { .. })),
                "{url}"
            );
        }
    }

    #[test]
    fn ports_and_path_prefixes() {
        let p = policy(&["http://api.internal:8080/v1", "https://example.com/api/"], NONE);
        for url in [
            "http://api.internal:8080/v1",
            "http://api.internal:8080/v1/",
            "http://API.internal:8080/v1/x?y=1",
            "https://example.com/api",
            "https://example.com/api/x",
        ] {
            assert!(p.check_url(url).is_ok(), "{url} should be allowed");
        }
        for url in [
            "http://api.internal:8080/v10",
            "http://api.internal:8080/v",
            "http://api.internal/v1",
            "http://api.internal:8080/v1/../admin",
            "https://example.com/apix",
            "http://example.com/api",
            "https://www.example.com/api",
        ] {
            assert!(
                matches!(p.check_url(url), Err(EgressError::NotAllowed { .. })),
                "{url} should be refused"
            );
        }
    }

    #[test]
    fn ip_literal_hosts_are_checked_immediately() {
        let p = policy(
            &["http://127.0.0.1", "http://[::1]:8080", "http://10.1.2.3:9000"],
            &["10.0.0.0/8"],
        );
        assert!(p.check_url("http://10.1.2.3:9000/x").is_ok());
        // Other spellings of 127.0.0.1 are normalised, match the pattern and are still denied.
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[::1]:8080/",
        ] {
            assert!(
                matches!(p.check_url(url), Err(EgressError::Denied { .. })),
                "{url}"
            );
        }
        let p = policy(&["http://[::ffff:10.0.0.1]"], NONE);
        assert!(matches!(
            p.check_url("http://[::ffff:a00:1]/"),
            Err(EgressError::Denied { .. })
        ));
    }

    #[test]
    fn url_errors() {
        let p = policy(&["https://*.example.com"], NONE);
        assert!(matches!(
            p.check_url("not a url"),
            Err(EgressError::BadUrl { .. })
        ));
        assert!(matches!(
            p.check_url("ftp://a.example.com/"),
            Err(EgressError::Scheme { .. })
        ));
        assert!(matches!(
            p.check_url("file:///etc/passwd"),
            Err(EgressError::Scheme { .. })
        ));
        let err = p.check_url("https://user:hunter2@a.example.com/").unwrap_err();
        assert!(matches!(err, EgressError::Userinfo { .. }));
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(matches!(
            policy(NONE, NONE).check_url("https://a.example.com/"),
            Err(EgressError::NotAllowed { .. })
        ));
    }

    #[test]
    fn bad_configuration() {
        for pattern in [
            "example.com",
            "ftp://example.com",
            "http://",
            "http://*.",
            "http://a.*.com",
            "http://*example.com",
            "http://*.10.0.0.1",
            "http://user@example.com",
            "http://example.com/?q=1",
            "http://example.com:99999",
        ] {
            let err = EgressPolicy::new(&[pattern], NONE).unwrap_err();
            assert!(matches!(err, EgressError::BadPattern { .. }), "{pattern}: {err}");
        }
        for network in ["10.0.0.0/33", "nonsense", ""] {
            let err = EgressPolicy::new(NONE, &[network]).unwrap_err();
            assert!(matches!(err, EgressError::BadNetwork { .. }), "{network}: {err}");
        }
    }

    // --- End to end, against servers on 127.0.0.1 ---------------------------------------------------

    use axum::Router;
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    use tokio::net::TcpListener;

    const TIMEOUT: Duration = Duration::from_secs(5);

    async fn spawn_server() -> u16 {
        let app = Router::new()
            .route("/ok", get(|| async { "hello" }))
            .route(
                "/redirect",
                get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/ok")], "moved") }),
            )
            .route("/big", get(|| async { vec![b'x'; 100_000] }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        port
    }

    /// Serves `response` verbatim to the next `connections` connections, on a plain thread.
    fn spawn_raw_server(response: &'static [u8], connections: usize) -> u16 {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for _ in 0..connections {
                let Ok((mut stream, _)) = listener.accept() else {
                    return;
                };
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let _ = stream.write_all(response);
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        });
        port
    }

    async fn get_checked(policy: &EgressPolicy, url: &str) -> Result<reqwest::Response, reqwest::Error> {
        let url = policy.check_url(url).unwrap();
        policy.client(TIMEOUT).unwrap().get(url).send().await
    }

    #[tokio::test]
    async fn ip_literal_with_allowed_network_succeeds() {
        let port = spawn_server().await;
        let p = policy(&[format!("http://127.0.0.1:{port}").as_str()], &["127.0.0.1/32"]);
        let response = get_checked(&p, &format!("http://127.0.0.1:{port}/ok"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(read_capped(response, 1024).await.unwrap(), b"hello");
    }

    #[tokio::test]
    async fn ip_literal_without_allowed_network_is_denied_before_connecting() {
        let port = spawn_server().await;
        let p = policy(&[format!("http://127.0.0.1:{port}").as_str()], NONE);
        let err = p.check_url(&format!("http://127.0.0.1:{port}/ok")).unwrap_err();
        assert!(
            matches!(err, EgressError::Denied { ip, .. } if ip == Ipv4Addr::LOCALHOST),
            "{err}"
        );
    }

    #[tokio::test]
    async fn name_resolving_to_loopback_is_denied_by_the_resolver() {
        let port = spawn_server().await;
        let url = format!("http://localhost:{port}/ok");
        let pattern = format!("http://localhost:{port}");

        // The pattern matches, so check_url passes; the resolver then finds only denied addresses.
        let p = policy(&[pattern.as_str()], NONE);
        let err = get_checked(&p, &url).await.unwrap_err();
        match egress_error(&err) {
            Some(EgressError::Denied { host, ip }) => {
                assert_eq!(host, "localhost");
                assert!(ip.is_loopback());
            }
            other => panic!("expected Denied from the resolver, got {other:?} ({err:?})"),
        }

        // Allowing 127.0.0.1 lets the same request through (any ::1 answer is still dropped).
        let p = policy(&[pattern.as_str()], &["127.0.0.1/32"]);
        let response = get_checked(&p, &url).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn redirects_are_returned_not_followed() {
        let port = spawn_server().await;
        let p = policy(&[format!("http://127.0.0.1:{port}").as_str()], &["127.0.0.1/32"]);
        let response = get_checked(&p, &format!("http://127.0.0.1:{port}/redirect"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(response.headers()[header::LOCATION], "/ok");
        assert_eq!(read_capped(response, 1024).await.unwrap(), b"moved");
    }

    #[tokio::test]
    async fn read_capped_limits_the_body() {
        let port = spawn_server().await;
        let p = policy(&[format!("http://127.0.0.1:{port}").as_str()], &["127.0.0.1/32"]);
        let big = format!("http://127.0.0.1:{port}/big");

        let response = get_checked(&p, &big).await.unwrap();
        let err = read_capped(response, 10_000).await.unwrap_err();
        assert!(
            matches!(err, EgressError::TooLarge { limit: 10_000, .. }),
            "{err}"
        );

        let response = get_checked(&p, &big).await.unwrap();
        assert_eq!(read_capped(response, 100_000).await.unwrap().len(), 100_000);
    }

    #[tokio::test]
    async fn read_capped_counts_bytes_without_content_length() {
        // Chunked: no Content-Length, 3 chunks of 8 bytes.
        let port = spawn_raw_server(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
              8\r\n01234567\r\n8\r\n01234567\r\n8\r\n01234567\r\n0\r\n\r\n",
            2,
        );
        let p = policy(&[format!("http://127.0.0.1:{port}").as_str()], &["127.0.0.1/32"]);
        let url = format!("http://127.0.0.1:{port}/");

        let response = get_checked(&p, &url).await.unwrap();
        assert_eq!(response.content_length(), None);
        assert!(matches!(
            read_capped(response, 20).await,
            Err(EgressError::TooLarge { limit: 20, .. })
        ));

        let response = get_checked(&p, &url).await.unwrap();
        assert_eq!(read_capped(response, 24).await.unwrap().len(), 24);
    }

    #[tokio::test]
    async fn total_timeout_applies() {
        // Accepts connections but never answers.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                open.push(stream);
            }
        });
        let p = policy(&[format!("http://127.0.0.1:{port}").as_str()], &["127.0.0.1/32"]);
        let url = p.check_url(&format!("http://127.0.0.1:{port}/")).unwrap();
        let err = p
            .client(Duration::from_millis(200))
            .unwrap()
            .get(url)
            .send()
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err:?}");
    }
}
