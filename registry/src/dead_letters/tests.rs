//! The pure parts of reading and replaying dead letters, without a broker.

use super::*;

fn worker_headers() -> Vec<HeaderRef<'static>> {
    vec![
        ("ce_specversion", Some(b"1.0".as_slice())),
        ("ce_id", Some(b"e-1".as_slice())),
        ("ce_type", Some(b"response.submitted".as_slice())),
        ("content-type", Some(b"application/json".as_slice())),
        ("switchyard_installation", Some(b"forms-bc".as_slice())),
        ("switchyard_error", Some(b"retries_exhausted".as_slice())),
        (
            "switchyard_error_detail",
            Some(b"the sheet answered 500".as_slice()),
        ),
        ("switchyard_plugin", Some(b"sheets-export".as_slice())),
        (
            "switchyard_source",
            Some(b"plugin.sheets-export.events/2/41".as_slice()),
        ),
        ("switchyard_attempts", Some(b"8".as_slice())),
        (
            "switchyard_first_failure",
            Some(b"2026-12-05T10:00:00Z".as_slice()),
        ),
        (
            "switchyard_last_failure",
            Some(b"2026-12-05T10:09:00Z".as_slice()),
        ),
    ]
}

fn stored(headers: &[HeaderRef<'_>], value: &[u8]) -> StoredLetter {
    StoredLetter {
        letter: DeadLetter::of(2, 7, Some(b"acme"), headers, value.len(), Some(0)),
        key: Some(b"acme".to_vec()),
        value: Some(value.to_vec()),
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.map(<[u8]>::to_vec)))
            .collect(),
    }
}

#[test]
fn letter_ids_are_canonical_partition_offset_pairs() {
    let id = LetterId::parse("3-1200").unwrap();
    assert_eq!((id.partition, id.offset), (3, 1200));
    assert_eq!(id.to_string(), "3-1200");
    assert_eq!(LetterId::parse("0-0").unwrap().to_string(), "0-0");
    for bad in [
        "",
        "3",
        "3-",
        "-3",
        "3-+1",
        "+3-1",
        "03-1",
        "3-01",
        "3-1-2",
        "a-1",
        "3 -1",
        "2147483648-0",
        "0-9223372036854775808",
        "replay",
    ] {
        assert_eq!(LetterId::parse(bad), None, "{bad:?}");
    }
    assert_eq!(
        serde_json::to_value(LetterId::parse("2147483647-9223372036854775807").unwrap()).unwrap(),
        "2147483647-9223372036854775807"
    );
}

#[test]
fn the_entry_is_built_from_the_workers_headers() {
    let letter = DeadLetter::of(
        2,
        7,
        Some(b"acme"),
        &worker_headers(),
        12,
        Some(1_796_464_800_250),
    );
    let json = serde_json::to_value(&letter).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "id": "2-7", "partition": 2, "offset": 7, "team": "acme", "event_id": "e-1",
            "event_type": "response.submitted", "installation": "forms-bc", "reason": "retries_exhausted",
            "detail": "the sheet answered 500", "attempts": 8, "first_failure": "2026-12-05T10:00:00Z",
            "last_failure": "2026-12-05T10:09:00Z", "dead_lettered_at": "2026-12-05T10:00:00.25Z",
            "source": "plugin.sheets-export.events/2/41", "bytes": 12
        })
    );
}

#[test]
fn absent_headers_are_nulls_and_the_default_installation_has_none() {
    let headers = [
        ("switchyard_attempts", Some(b"many".as_slice())),
        ("switchyard_installation", Some(b"default".as_slice())),
        ("switchyard_replayed_from", Some(b"plugin.s.dlq/0/3".as_slice())),
        ("ce_id", None),
    ];
    let letter = DeadLetter::of(0, 3, Some(&[0xff, 0xfe]), &headers, 0, None);
    assert_eq!(letter.attempts, None, "not a number");
    assert_eq!(letter.installation, None);
    assert_eq!(letter.installation(), "default");
    assert_eq!(letter.team, None, "a key that is not UTF-8 is no team");
    assert_eq!(letter.event_id, None, "a null value");
    assert_eq!(letter.dead_lettered_at, None);
    let json = serde_json::to_value(&letter).unwrap();
    assert_eq!(json["replayed_from"], "plugin.s.dlq/0/3");
    assert!(json["reason"].is_null() && json["first_failure"].is_null());
    let plain = DeadLetter::of(0, 4, None, &[], 0, Some(-1));
    let json = serde_json::to_value(&plain).unwrap();
    assert!(json.get("replayed_from").is_none(), "only on a replay");
    assert!(json["attempts"].is_null() && json["dead_lettered_at"].is_null());
}

#[test]
fn the_filter_keeps_a_team_a_time_an_installation_and_an_event() {
    let at = |team: &str, ms: i64, installation: Option<&str>| {
        let mut headers = vec![];
        if let Some(i) = installation {
            headers.push(("switchyard_installation", Some(i.as_bytes())));
        }
        DeadLetter::of(0, 0, Some(team.as_bytes()), &headers, 0, Some(ms))
    };
    let acme = Filter {
        team: Some("acme".to_owned()),
        ..Filter::default()
    };
    assert!(acme.keeps(&at("acme", 5, None)));
    assert!(!acme.keeps(&at("globex", 5, None)));
    assert!(
        !acme.keeps(&DeadLetter::of(0, 0, None, &[], 0, Some(5))),
        "no key, no team"
    );
    let since = Filter {
        since_ms: Some(10),
        ..Filter::default()
    };
    assert!(since.keeps(&at("acme", 10, None)) && !since.keeps(&at("acme", 9, None)));
    assert!(!since.keeps(&DeadLetter::of(0, 0, None, &[], 0, None)), "no time");
    let default = Filter {
        installation: Some("default".to_owned()),
        ..Filter::default()
    };
    assert!(default.keeps(&at("acme", 1, None)));
    assert!(!default.keeps(&at("acme", 1, Some("forms-bc"))));
    let named = Filter {
        installation: Some("forms-bc".to_owned()),
        ..Filter::default()
    };
    assert!(named.keeps(&at("acme", 1, Some("forms-bc"))) && !named.keeps(&at("acme", 1, None)));
    assert!(Filter::default().keeps(&DeadLetter::of(0, 0, None, &[], 0, None)));
    let event = Filter {
        event_id: Some("e-1".to_owned()),
        ..Filter::default()
    };
    let of_event = |id: &'static [u8]| DeadLetter::of(0, 0, None, &[("ce_id", Some(id))], 0, None);
    assert!(event.keeps(&of_event(b"e-1")) && !event.keeps(&of_event(b"e-2")));
    assert!(
        !event.keeps(&DeadLetter::of(0, 0, None, &[], 0, None)),
        "no ce_id"
    );
}

#[test]
fn the_detail_shows_every_header_and_decodes_json_payloads() {
    let mut headers = worker_headers();
    headers.push(("binary", Some([0xc3, 0x28].as_slice())));
    headers.push(("empty", None));
    let detail = serde_json::to_value(stored(&headers, br#"{"answers": [1]}"#).detail()).unwrap();
    assert_eq!(detail["id"], "2-7", "the list's fields");
    assert_eq!(detail["content_type"], "application/json");
    assert_eq!(
        detail["payload"],
        serde_json::json!({"encoding": "json", "value": {"answers": [1]}})
    );
    let header_views = detail["headers"].as_array().unwrap();
    assert_eq!(header_views.len(), headers.len(), "every header, in order");
    assert_eq!(
        header_views[1],
        serde_json::json!({"name": "ce_id", "value": "e-1", "encoding": "text"})
    );
    assert_eq!(
        header_views[headers.len() - 2],
        serde_json::json!({"name": "binary", "value": "wyg=", "encoding": "base64"})
    );
    assert_eq!(
        header_views[headers.len() - 1],
        serde_json::json!({"name": "empty", "value": null, "encoding": "text"})
    );
}

#[test]
fn avro_and_unparsable_json_payloads_are_base64() {
    let mut avro = worker_headers();
    avro[3] = ("content-type", Some(b"application/avro".as_slice()));
    let detail = stored(&avro, &[0xc3, 0x01, 0x02]).detail();
    assert_eq!(detail.content_type.as_deref(), Some("application/avro"));
    assert_eq!(detail.payload, Some(Payload::Base64("wwEC".to_owned())));
    let broken = stored(&worker_headers(), b"{not json").detail();
    assert_eq!(
        broken.payload,
        Some(Payload::Base64(STANDARD.encode(b"{not json")))
    );
    let mut typed = worker_headers();
    typed[3] = (
        "content-type",
        Some(b"application/cloudevents+json; charset=utf-8".as_slice()),
    );
    assert_eq!(
        stored(&typed, b"[1]").detail().payload,
        Some(Payload::Json(serde_json::json!([1])))
    );
    let mut none = stored(&worker_headers(), b"");
    none.value = None;
    assert_eq!(none.detail().payload, None);
}

#[test]
fn a_replay_drops_the_dead_letter_headers_but_the_source_and_names_its_origin() {
    let mut headers = worker_headers();
    headers.push(("switchyard_replayed_from", Some(b"old/0/1".as_slice())));
    let replayed = stored(&headers, b"{}").replay_headers("plugin.sheets-export.dlq");
    let names: Vec<&str> = replayed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "ce_specversion",
            "ce_id",
            "ce_type",
            "content-type",
            "switchyard_installation",
            "switchyard_source",
            "switchyard_replayed_from"
        ]
    );
    assert_eq!(
        replayed.last().unwrap().1.as_deref(),
        Some(b"plugin.sheets-export.dlq/2/7".as_slice())
    );
}

#[test]
fn nearby_offsets_are_read_in_one_range() {
    assert_eq!(ranges(&[]), []);
    assert_eq!(ranges(&[5]), [(5, 6)]);
    assert_eq!(ranges(&[5, 6, 40]), [(5, 41)]);
    assert_eq!(ranges(&[5, 500, 501]), [(5, 6), (500, 502)]);
}
