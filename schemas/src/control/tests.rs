//! Unit tests of [`super`].

use super::*;

const MANIFEST: &str = r#"{"id":"sheets-export","name":"Sheets export","version":"1.2.0",
    "url":"https://sheets.plugins.example","events":["response.submitted"],"actions":["resync"],
    "config_schema":{"type":"object"},"future_field":42}"#;

#[test]
fn manifests() {
    let manifest = PluginManifest::parse("sheets-export", MANIFEST.as_bytes()).unwrap();
    assert_eq!(manifest.version, semver::Version::new(1, 2, 0));
    assert_eq!(manifest.events, ["response.submitted"]);
    assert!(matches!(
        PluginManifest::parse("other", MANIFEST.as_bytes()),
        Err(ControlError::KeyMismatch { .. })
    ));
    let bad_version = MANIFEST.replace("1.2.0", "1.2");
    assert!(matches!(
        PluginManifest::parse("sheets-export", bad_version.as_bytes()),
        Err(ControlError::Json { .. })
    ));
    let bad_url = MANIFEST.replace("https://", "ftp://");
    assert!(matches!(
        PluginManifest::parse("sheets-export", bad_url.as_bytes()),
        Err(ControlError::Field { field: "url", .. })
    ));
    let bad_type = MANIFEST.replace("response.submitted", "response submitted");
    assert!(PluginManifest::parse("sheets-export", bad_type.as_bytes()).is_err());
    let kafka_only = r#"{"id":"audit","name":"Audit","version":"0.1.0","events":["form.created"]}"#;
    assert!(
        PluginManifest::parse("audit", kafka_only.as_bytes())
            .unwrap()
            .url
            .is_none()
    );
}

#[test]
fn a_manifest_without_delivery_hints_is_written_back_byte_for_byte() {
    let old = r#"{"id":"audit","name":"Audit","description":"","version":"0.1.0","events":["form.created"],"actions":[]}"#;
    let manifest = PluginManifest::parse("audit", old.as_bytes()).unwrap();
    assert_eq!(manifest.delivery, DeliveryHints::default());
    assert_eq!(manifest.delivery.ordering(), Ordering::Team);
    assert_eq!(serde_json::to_string(&manifest).unwrap(), old);
}

#[test]
fn ordering_values_known_and_unknown() {
    for (value, ordering) in [
        ("team", Ordering::Team),
        ("form", Ordering::Form),
        ("response", Ordering::Response),
        ("none", Ordering::None),
        ("per-question", Ordering::Unknown("per-question".into())),
    ] {
        let json = MANIFEST.replace("\"future_field\":42", &format!("\"ordering\":\"{value}\""));
        let manifest = PluginManifest::parse("sheets-export", json.as_bytes())
            .expect("an ordering this version does not know still parses: the router routes it");
        assert_eq!(manifest.delivery.ordering, Some(ordering));
        let written = serde_json::to_value(&manifest).unwrap();
        assert_eq!(written["ordering"], value, "written back as read");
    }
    let not_a_string = MANIFEST.replace("\"future_field\":42", "\"ordering\":1");
    assert!(matches!(
        PluginManifest::parse("sheets-export", not_a_string.as_bytes()),
        Err(ControlError::Json { .. })
    ));
}

#[test]
fn batches() {
    let json = MANIFEST.replace(
        "\"future_field\":42",
        "\"batch\":{\"max_events\":50,\"max_wait_ms\":200}",
    );
    let manifest = PluginManifest::parse("sheets-export", json.as_bytes()).unwrap();
    let batch = manifest.delivery.batch.unwrap();
    assert_eq!((batch.max_events, batch.max_wait_ms), (50, 200));
    assert_eq!(batch.problem(), None);
    assert_eq!(
        serde_json::to_value(&manifest).unwrap()["batch"]["max_events"],
        50
    );
    let too_big = Batch {
        max_events: 5000,
        max_wait_ms: 0,
    };
    assert_eq!(too_big.problem().map(|p| p.0), Some("max_events"));
    let too_long = Batch {
        max_events: 10,
        max_wait_ms: 120_000,
    };
    assert_eq!(too_long.problem().map(|p| p.0), Some("max_wait_ms"));
}

#[test]
fn delivery_hints_are_objects_or_null() {
    for (field, value) in [
        ("batch", "[50, 200]"),
        ("rate_limit", "[null, null]"),
        ("batch", "7"),
    ] {
        let json = MANIFEST.replace("\"future_field\":42", &format!("\"{field}\":{value}"));
        assert!(
            PluginManifest::parse("sheets-export", json.as_bytes()).is_err(),
            "{field}: {value}"
        );
    }
    let nulls = MANIFEST.replace(
        "\"future_field\":42",
        "\"ordering\":null,\"batch\":null,\"rate_limit\":null",
    );
    let manifest = PluginManifest::parse("sheets-export", nulls.as_bytes()).unwrap();
    assert_eq!(manifest.delivery, DeliveryHints::default(), "null is absent");
}

#[test]
fn installations_are_opted_into() {
    let manifest = PluginManifest::parse("sheets-export", MANIFEST.as_bytes()).unwrap();
    assert!(
        !manifest.delivery.installations,
        "absent = the default installation only"
    );
    let json = MANIFEST.replace("\"future_field\":42", "\"installations\":true");
    let manifest = PluginManifest::parse("sheets-export", json.as_bytes()).unwrap();
    assert!(manifest.delivery.installations);
    assert_eq!(serde_json::to_value(&manifest).unwrap()["installations"], true);
    let no = MANIFEST.replace("\"future_field\":42", "\"installations\":false");
    let manifest = PluginManifest::parse("sheets-export", no.as_bytes()).unwrap();
    assert!(
        serde_json::to_value(&manifest)
            .unwrap()
            .get("installations")
            .is_none()
    );
}

#[test]
fn rate_limits() {
    let json = MANIFEST.replace(
        "\"future_field\":42",
        "\"rate_limit\":{\"per_team_per_second\":2.5}",
    );
    let manifest = PluginManifest::parse("sheets-export", json.as_bytes()).unwrap();
    let limit = manifest.delivery.rate_limit.unwrap();
    assert_eq!(
        (limit.per_team_per_second, limit.per_plugin_per_second),
        (Some(2.5), None)
    );
    assert_eq!(limit.problem(), None);
    let zero = RateLimit {
        per_team_per_second: None,
        per_plugin_per_second: Some(0.0),
    };
    assert_eq!(zero.problem().map(|p| p.0), Some("per_plugin_per_second"));
}

#[test]
fn enablements() {
    let value =
        br#"{"team_id":"acme","plugin_id":"sms-notify","enabled":true,"event_types":["response.submitted"],
                    "updated_at":"2026-11-22T10:00:00Z"}"#;
    let enablement = Enablement::parse(b"acme/sms-notify", value).unwrap();
    assert!(enablement.enabled);
    assert_eq!(enablement.key(), "acme/sms-notify");
    assert!(matches!(
        Enablement::parse(b"other/sms-notify", value),
        Err(ControlError::KeyMismatch { .. })
    ));
    assert!(matches!(
        Enablement::parse(b"acme-sms-notify", value),
        Err(ControlError::Key { .. })
    ));
    assert!(matches!(
        Enablement::parse(b"acme/SMS", value),
        Err(ControlError::Id(_))
    ));
    let no_time = br#"{"team_id":"acme","plugin_id":"sms-notify","enabled":true,"updated_at":"now"}"#;
    assert!(matches!(
        Enablement::parse(b"acme/sms-notify", no_time),
        Err(ControlError::Field { .. })
    ));
}

const V1_ENABLEMENT: &str = r#"{"team_id":"acme","plugin_id":"sheets-export","enabled":true,"event_types":["response.submitted"],"updated_at":"2026-11-22T09:55:00Z"}"#;

#[test]
fn a_v1_enablement_is_the_default_installation_and_writes_back_byte_for_byte() {
    let enablement = Enablement::parse(b"acme/sheets-export", V1_ENABLEMENT.as_bytes()).unwrap();
    assert_eq!(enablement.installation(), DEFAULT_INSTALLATION);
    assert_eq!((enablement.form_ids(), enablement.filter()), (None, None));
    assert_eq!(enablement.key(), "acme/sheets-export");
    assert_eq!(serde_json::to_string(&enablement).unwrap(), V1_ENABLEMENT);
    let named_default = V1_ENABLEMENT.replace(r#""enabled""#, r#""installation":"default","enabled""#);
    assert_eq!(
        Enablement::parse(b"acme/sheets-export", named_default.as_bytes())
            .unwrap()
            .key(),
        "acme/sheets-export",
        "a two-part key may say `default` in the field"
    );
}

#[test]
fn installation_keys_in_both_forms() {
    let v1 = parse_installation_key(b"acme/sheets-export").unwrap();
    assert_eq!(
        (v1.team, v1.plugin, v1.installation, v1.is_default()),
        ("acme", "sheets-export", "default", true)
    );
    let named = parse_installation_key(b"acme/sheets-export/forms-bc").unwrap();
    assert_eq!(named.installation, "forms-bc");
    assert_eq!(named.to_key(), "acme/sheets-export/forms-bc");
    assert_eq!(v1.to_key(), "acme/sheets-export");
    assert!(
        matches!(
            parse_installation_key(b"acme/sheets-export/default"),
            Err(ControlError::Key { .. })
        ),
        "the default installation has one spelling"
    );
    for bad in [
        &b"acme"[..],
        b"acme/sheets-export/",
        b"acme/sheets-export/Forms",
        b"acme/sheets-export/a/b",
        b"/sheets-export/a",
        b"acme//a",
        b"acme/sheets-export/\xff",
    ] {
        assert!(
            parse_installation_key(bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    assert!(
        parse_enablement_key(b"acme/sheets-export/forms-bc").is_err(),
        "a v1 reader refuses a three-part key, so the record changes nothing for it"
    );
}

#[test]
fn named_installations_with_form_ids_and_a_filter() {
    let value = r#"{"team_id":"acme","plugin_id":"sheets-export","installation":"forms-bc","enabled":true,"form_ids":["f-b","f-c"],"filter":"type == \"response.submitted\"","updated_at":"2026-11-22T09:55:00Z"}"#;
    let enablement = Enablement::parse(b"acme/sheets-export/forms-bc", value.as_bytes()).unwrap();
    assert_eq!(enablement.installation(), "forms-bc");
    assert_eq!(
        enablement.form_ids(),
        Some(&["f-b".to_owned(), "f-c".to_owned()][..])
    );
    assert_eq!(enablement.filter(), Some(r#"type == "response.submitted""#));
    assert_eq!(enablement.key(), "acme/sheets-export/forms-bc");
    assert_eq!(serde_json::to_string(&enablement).unwrap(), value);

    let mismatch = |key: &[u8], value: &str| {
        matches!(
            Enablement::parse(key, value.as_bytes()),
            Err(ControlError::KeyMismatch {
                field: "installation",
                ..
            })
        )
    };
    assert!(mismatch(b"acme/sheets-export/forms-a", value));
    assert!(mismatch(b"acme/sheets-export", value));
    assert!(
        mismatch(b"acme/sheets-export/forms-bc", V1_ENABLEMENT),
        "a three-part key's record names its installation"
    );

    let empty = V1_ENABLEMENT.replace(r#""updated_at""#, r#""form_ids":[],"filter":"","updated_at""#);
    let enablement = Enablement::parse(b"acme/sheets-export", empty.as_bytes()).unwrap();
    assert_eq!(
        (enablement.form_ids(), enablement.filter()),
        (None, None),
        "empty means no limit"
    );
}

#[test]
fn form_ids_and_filters_out_of_bounds() {
    let with = |field: &str| {
        let json = V1_ENABLEMENT.replace(r#""updated_at""#, &format!("{field},\"updated_at\""));
        Enablement::parse(b"acme/sheets-export", json.as_bytes())
    };
    let field_error = |result: Result<Enablement, ControlError>, name: &str| matches!(result, Err(ControlError::Field { field, .. }) if field == name);
    assert!(field_error(with(r#""form_ids":[""]"#), "form_ids"));
    assert!(field_error(with(r#""form_ids":["a\u0000b"]"#), "form_ids"));
    let too_long = format!(r#""form_ids":["{}"]"#, "f".repeat(FORM_ID_MAX_LEN + 1));
    assert!(field_error(with(&too_long), "form_ids"));
    let too_many: Vec<String> = (0..=FORM_IDS_MAX).map(|i| format!("f-{i}")).collect();
    let too_many = format!(r#""form_ids":{}"#, serde_json::to_string(&too_many).unwrap());
    assert!(field_error(with(&too_many), "form_ids"));
    assert!(matches!(
        with(r#""form_ids":"f-a""#),
        Err(ControlError::Json { .. })
    ));
    let long_filter = format!(r#""filter":"{}""#, "a".repeat(FILTER_MAX_BYTES + 1));
    assert!(field_error(with(&long_filter), "filter"));
    let longest = format!(r#""filter":"{}""#, "a".repeat(FILTER_MAX_BYTES));
    assert!(
        with(&longest).is_ok(),
        "the expression's syntax is the router's and the registry's to check"
    );
}

#[test]
fn a_held_installation_carries_its_backfill() {
    let with = |field: &str| {
        let json = V1_ENABLEMENT.replace(r#""updated_at""#, &format!("{field},\"updated_at\""));
        Enablement::parse(b"acme/sheets-export", json.as_bytes())
    };
    let held =
        with(r#""backfill":{"id":"0193a8f2-7c1e-7b4a-9d2e-5f6a7b8c9d0e","since":"2026-11-01T00:00:00Z"}"#)
            .unwrap();
    let request = held.backfill.unwrap();
    assert_eq!(request.id, "0193a8f2-7c1e-7b4a-9d2e-5f6a7b8c9d0e");
    assert_eq!(
        (request.until, request.rate, request.cancel_requested),
        (None, None, false)
    );
    for bad in [
        r#""backfill":{"id":"Not An Id","since":"2026-11-01T00:00:00Z"}"#,
        r#""backfill":{"id":"b-1","since":"2026-11-01T00:00:00Z","until":"2026-10-01T00:00:00Z"}"#,
    ] {
        assert!(
            matches!(
                with(bad),
                Err(ControlError::Field {
                    field: "backfill",
                    ..
                })
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        with(r#""backfill":"b-1""#),
        Err(ControlError::Json { .. })
    ));
    // Without it the record is v1's, byte for byte.
    let plain = Enablement::parse(b"acme/sheets-export", V1_ENABLEMENT.as_bytes()).unwrap();
    assert_eq!(serde_json::to_string(&plain).unwrap(), V1_ENABLEMENT);
}
