use super::*;

const SECRET: &[u8] = b"a development secret of enough length";
const RSA_PRIVATE: &str = include_str!("../testdata/rsa-private.pem");
const RSA_PUBLIC: &str = include_str!("../testdata/rsa-public.pem");
const ED_PRIVATE: &str = include_str!("../testdata/ed25519-private.pem");
const ED_PUBLIC: &str = include_str!("../testdata/ed25519-public.pem");

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(role: Role, team: Option<&str>, plugin: Option<&str>) -> Claims {
    Claims {
        role,
        team: team.map(String::from),
        plugin: plugin.map(String::from),
        exp: now() + 600,
        jti: None,
        purpose: None,
    }
}

fn keys() -> KeySet {
    KeySet::new(Some(SECRET), &[RSA_PUBLIC.to_owned()], &[ED_PUBLIC.to_owned()]).unwrap()
}

fn oct(kid: &str, secret: &[u8]) -> serde_json::Value {
    serde_json::json!({"kid": kid, "kty": "oct", "k": URL_SAFE_NO_PAD.encode(secret)})
}

#[test]
fn a_kid_picks_its_key_of_the_jwks_and_a_retired_one_is_named() {
    let (old, new) = (
        b"the old secret, at least 32 bytes long",
        b"the new secret, at least 32 bytes long!",
    );
    let both = serde_json::json!({"keys": [oct("2026-11", old), oct("2026-12", new)]}).to_string();
    let keys = KeySet::new(None, &[], &[]).unwrap().with_jwks(&both).unwrap();
    let team = claims(Role::Team, Some("acme"), None);
    let mint = |secret: &[u8], kid: Option<&str>| mint_hs256_with(secret, &team, None, kid).unwrap();
    // Each kid verifies with its own key; a token signed with one key but naming the other does not.
    assert!(keys.verify(&mint(old, Some("2026-11"))).is_ok());
    assert!(keys.verify(&mint(new, Some("2026-12"))).is_ok());
    assert_eq!(
        keys.verify(&mint(old, Some("2026-12"))),
        Err(AuthError::Signature)
    );
    // Without a kid, every key of the family is tried, as before key ids.
    assert!(keys.verify(&mint(new, None)).is_ok());
    // The old key retired: its tokens are refused, naming the kid.
    let retired = serde_json::json!({"keys": [oct("2026-12", new)]}).to_string();
    let keys = KeySet::new(None, &[], &[]).unwrap().with_jwks(&retired).unwrap();
    assert_eq!(
        keys.verify(&mint(old, Some("2026-11"))),
        Err(AuthError::UnknownKid("2026-11".into()))
    );
    assert!(keys.verify(&mint(new, Some("2026-12"))).is_ok());
    // Keys without ids (auth.hs256_secret) still verify a token that names a kid they do not have.
    let unidentified = KeySet::new(Some(SECRET), &[], &[]).unwrap();
    assert!(unidentified.verify(&mint(SECRET, Some("issuer-key-7"))).is_ok());
    // An unusable set is refused at start, with the reason.
    for (bad, reason) in [
        ("not json".to_owned(), "not a JWK Set"),
        (r#"{"keys": [{"kty": "oct", "k": "AAAA"}]}"#.to_owned(), "no kid"),
        (
            serde_json::json!({"keys": [oct("a", old), oct("a", new)]}).to_string(),
            "twice",
        ),
        (
            r#"{"keys": [{"kid": "ec", "kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}"#.to_owned(),
            "only kty",
        ),
    ] {
        let error = KeySet::new(None, &[], &[])
            .unwrap()
            .with_jwks(&bad)
            .err()
            .unwrap();
        assert!(error.to_string().contains(reason), "{bad}: {error}");
    }
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &impl Serialize) -> String {
    encode(&Header::new(alg), claims, key).unwrap()
}

#[test]
fn each_configured_family_verifies_and_maps_roles() {
    let keys = keys();
    let hs = mint_hs256(SECRET, &claims(Role::Team, Some("acme"), None)).unwrap();
    assert_eq!(keys.verify(&hs), Ok(Principal::Team("acme".into())));
    let rs = sign(
        Algorithm::RS256,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
        &claims(Role::Admin, None, None),
    );
    assert_eq!(keys.verify(&rs), Ok(Principal::Admin));
    let ed = sign(
        Algorithm::EdDSA,
        &EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).unwrap(),
        &claims(Role::Plugin, None, Some("sms-notify")),
    );
    assert_eq!(keys.verify(&ed), Ok(Principal::Plugin("sms-notify".into())));
    assert_eq!(
        keys.authenticate(Some(&format!("Bearer {hs}"))),
        Ok(Principal::Team("acme".into()))
    );
}

#[test]
fn attacks_and_defects_are_refused() {
    let keys = keys();
    assert_eq!(keys.authenticate(None), Err(AuthError::Missing));
    assert_eq!(keys.authenticate(Some("Basic abc")), Err(AuthError::Missing));
    assert_eq!(keys.verify("not.a.jwt"), Err(AuthError::Malformed));
    // wrong secret
    let forged = mint_hs256(b"another secret entirely", &claims(Role::Admin, None, None)).unwrap();
    assert_eq!(keys.verify(&forged), Err(AuthError::Signature));
    // expired beyond the leeway
    let mut old = claims(Role::Admin, None, None);
    old.exp = now() - 3600;
    assert_eq!(
        keys.verify(&mint_hs256(SECRET, &old).unwrap()),
        Err(AuthError::Expired)
    );
    // tampered payload: a team token rewritten to admin, signature kept
    let token = mint_hs256(SECRET, &claims(Role::Team, Some("acme"), None)).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(Role::Admin, None, None)).unwrap());
    assert_eq!(
        keys.verify(&format!("{}.{payload}.{}", parts[0], parts[2])),
        Err(AuthError::Signature)
    );
    // alg: none
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    assert!(keys.verify(&format!("{none_header}.{payload}.")).is_err());
    // RS/HS confusion: the RSA public key used as an HMAC secret
    let confused = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
        &claims(Role::Admin, None, None),
    );
    assert_eq!(keys.verify(&confused), Err(AuthError::Signature));
    let rsa_only = KeySet::new(None, &[RSA_PUBLIC.to_owned()], &[]).unwrap();
    assert_eq!(
        rsa_only.verify(&confused),
        Err(AuthError::Algorithm("HS256".into()))
    );
    // an algorithm the registry does not take
    let hs512 = sign(
        Algorithm::HS512,
        &EncodingKey::from_secret(SECRET),
        &claims(Role::Admin, None, None),
    );
    assert_eq!(keys.verify(&hs512), Err(AuthError::Algorithm("HS512".into())));
}

#[test]
fn claims_must_fit_the_role() {
    let keys = keys();
    let no_team = mint_hs256(SECRET, &claims(Role::Team, None, None)).unwrap();
    assert!(matches!(keys.verify(&no_team), Err(AuthError::Claims(_))));
    let bad_plugin = mint_hs256(SECRET, &claims(Role::Plugin, None, Some("Not A Plugin"))).unwrap();
    assert!(matches!(keys.verify(&bad_plugin), Err(AuthError::Claims(_))));
    let no_exp = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET),
        &serde_json::json!({"role": "admin"}),
    );
    assert!(matches!(keys.verify(&no_exp), Err(AuthError::Claims(_))));
    let no_role = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET),
        &serde_json::json!({"exp": now() + 60}),
    );
    assert!(matches!(keys.verify(&no_role), Err(AuthError::Claims(_))));
    let unknown_role = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET),
        &serde_json::json!({"role": "root", "exp": now() + 60}),
    );
    assert!(matches!(keys.verify(&unknown_role), Err(AuthError::Claims(_))));
}

#[test]
fn tenants_reach_only_their_own_resources() {
    let team = Principal::Team("acme".into());
    let plugin = Principal::Plugin("sms-notify".into());
    assert!(
        team.may_access_team("acme")
            && !team.may_access_team("globex")
            && !team.may_act_as_plugin("sms-notify")
    );
    assert!(
        plugin.may_act_as_plugin("sms-notify")
            && !plugin.may_act_as_plugin("sheets-export")
            && !plugin.may_access_team("acme")
    );
    assert!(
        Principal::Admin.may_access_team("any")
            && Principal::Admin.may_act_as_plugin("any")
            && Principal::Admin.is_admin()
    );
}

#[tokio::test]
async fn handlers_get_a_principal_or_the_caller_gets_a_401_problem() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let app = axum::Router::new()
        .route(
            "/whoami",
            get(|principal: Principal| async move { format!("{principal:?}") }),
        )
        .with_state(keys());
    let call = |authorization: Option<String>| {
        let app = app.clone();
        async move {
            let mut request = Request::get("/whoami");
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            let response = app.oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, headers, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let token = mint_hs256(SECRET, &claims(Role::Team, Some("acme"), None)).unwrap();
    let (status, _, body) = call(Some(format!("Bearer {token}"))).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#"Team("acme")"#));
    let (status, headers, body) = call(None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(headers["www-authenticate"], "Bearer");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        problem,
        serde_json::json!({"type": "/problems/unauthorized", "title": "Unauthorized", "status": 401,
                           "detail": "a bearer token is required"})
    );
    let forged = mint_hs256(b"not the secret", &claims(Role::Admin, None, None)).unwrap();
    let (status, _, body) = call(Some(format!("Bearer {forged}"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.contains(&forged), "the token is never echoed");
}

#[test]
fn audience_is_checked_only_when_configured() {
    let hs = EncodingKey::from_secret(SECRET);
    let exp = claims(Role::Admin, None, None).exp;
    let for_us = sign(
        Algorithm::HS256,
        &hs,
        &serde_json::json!({"role": "admin", "exp": exp, "aud": "switchyard-registry"}),
    );
    let for_others = sign(
        Algorithm::HS256,
        &hs,
        &serde_json::json!({"role": "admin", "exp": exp, "aud": "billing"}),
    );
    let without = mint_hs256(SECRET, &claims(Role::Admin, None, None)).unwrap();
    let open = keys();
    for token in [&for_us, &for_others, &without] {
        assert_eq!(open.verify(token), Ok(Principal::Admin));
    }
    let minted = mint_hs256_for(
        SECRET,
        &claims(Role::Admin, None, None),
        Some("switchyard-registry"),
    )
    .unwrap();
    let strict = keys().with_audience(Some("switchyard-registry".into()));
    assert_eq!(strict.verify(&minted), Ok(Principal::Admin));
    assert_eq!(strict.verify(&for_us), Ok(Principal::Admin));
    assert!(matches!(strict.verify(&for_others), Err(AuthError::Claims(_))));
    assert!(matches!(strict.verify(&without), Err(AuthError::Claims(_))));
}

#[test]
fn a_crit_header_is_detected_whatever_its_value() {
    let header = |json: &str| format!("{}.e30.sig", URL_SAFE_NO_PAD.encode(json));
    assert_eq!(has_crit_header(&header(r#"{"alg":"HS256"}"#)), Ok(false));
    assert_eq!(
        has_crit_header(&header(r#"{"alg":"HS256","crit":["exp"],"exp":1}"#)),
        Ok(true)
    );
    assert_eq!(
        has_crit_header(&header(r#"{"alg":"HS256","crit":null}"#)),
        Ok(true)
    );
    assert_eq!(has_crit_header(&header(r#"{"alg":"HS256","crit":[]}"#)), Ok(true));
    assert_eq!(
        has_crit_header(&header(r#"{"crit":["b64"],"alg":"HS256","crit":null}"#)),
        Ok(true)
    );
    assert_eq!(has_crit_header(&header(r#"["crit"]"#)), Err(AuthError::Malformed));
    assert_eq!(has_crit_header("%%%.e30.sig"), Err(AuthError::Malformed));
    assert_eq!(has_crit_header(""), Err(AuthError::Malformed));
}

#[test]
fn signed_tokens_with_crit_are_refused() {
    let mut header = Header::new(Algorithm::HS256);
    header.crit = Some(vec!["urn:example:never-understood".into()]);
    let token = encode(
        &header,
        &claims(Role::Admin, None, None),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    assert_eq!(keys().verify(&token), Err(AuthError::Critical));
    // The same token without crit is fine: only the header makes the difference.
    let plain = mint_hs256(SECRET, &claims(Role::Admin, None, None)).unwrap();
    assert_eq!(keys().verify(&plain), Ok(Principal::Admin));
}

#[test]
fn lifetimes_read_in_whole_units() {
    let f = |seconds| format_lifetime(Duration::from_secs(seconds));
    assert_eq!(
        [f(86_400), f(90 * 86_400), f(12 * 3600), f(900), f(90), f(0)],
        ["1 day", "90 days", "12 h", "15 min", "90 s", "0 s"]
    );
}

#[test]
fn lifetime_is_bounded_with_the_clock_skew_allowance() {
    let day = Duration::from_secs(86_400);
    let now = 1_800_000_000;
    assert!(lifetime_within(now + 86_400, now, day));
    assert!(lifetime_within(now + 86_400 + LEEWAY_SECONDS, now, day));
    assert!(!lifetime_within(now + 86_400 + LEEWAY_SECONDS + 1, now, day));
    assert!(
        lifetime_within(now - 10, now, day),
        "expiry is another check's business"
    );
    assert!(!lifetime_within(253_402_300_799, now, day), "year 9999");
    assert!(lifetime_within(u64::MAX, now, Duration::MAX));
}

#[test]
fn tokens_valid_for_too_long_are_refused_by_role() {
    let keys = keys();
    let far = |role, team: Option<&str>, plugin: Option<&str>, ahead: u64| {
        let mut claims = claims(role, team, plugin);
        claims.exp = now() + ahead;
        mint_hs256(SECRET, &claims).unwrap()
    };
    let year_9999 = {
        let mut claims = claims(Role::Admin, None, None);
        claims.exp = 253_402_300_799;
        mint_hs256(SECRET, &claims).unwrap()
    };
    assert_eq!(
        keys.verify(&year_9999),
        Err(AuthError::Lifetime {
            role: "admin",
            max: "1 day".into()
        })
    );
    assert_eq!(
        keys.verify(&year_9999).unwrap_err().to_string(),
        "the token is valid for too long: admin tokens may expire at most 1 day from now"
    );
    let hours = 3600;
    assert_eq!(
        keys.verify(&far(Role::Team, Some("acme"), None, 23 * hours)),
        Ok(Principal::Team("acme".into()))
    );
    assert!(matches!(
        keys.verify(&far(Role::Team, Some("acme"), None, 25 * hours)),
        Err(AuthError::Lifetime { role: "team", .. })
    ));
    // Plugin tokens live in a Secret for a rotation period: 90 days by default.
    assert_eq!(
        keys.verify(&far(Role::Plugin, None, Some("sms-notify"), 89 * 24 * hours)),
        Ok(Principal::Plugin("sms-notify".into()))
    );
    assert!(matches!(
        keys.verify(&far(Role::Plugin, None, Some("sms-notify"), 91 * 24 * hours)),
        Err(AuthError::Lifetime { role: "plugin", .. })
    ));
    // The configured maximums replace the defaults.
    let strict = keys.with_max_lifetimes(Duration::from_secs(600), Duration::from_secs(3600));
    assert!(matches!(
        strict.verify(&far(Role::Admin, None, None, 2 * 600)),
        Err(AuthError::Lifetime { role: "admin", .. })
    ));
    assert_eq!(
        strict.verify(&far(Role::Admin, None, None, 500)),
        Ok(Principal::Admin)
    );
    assert!(matches!(
        strict.verify(&far(Role::Plugin, None, Some("sms-notify"), 2 * hours)),
        Err(AuthError::Lifetime { role: "plugin", .. })
    ));
}

#[test]
fn bad_key_configuration_is_reported_by_position() {
    let error = KeySet::new(None, &["not a pem".to_owned()], &[]).err().unwrap();
    assert_eq!((error.kind, error.index), ("RS256", 0));
}
