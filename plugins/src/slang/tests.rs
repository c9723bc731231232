use std::collections::BTreeMap;

use serde_json::json;
use switchyard_schemas::events::{Answer, Response};

use super::*;

/// The demo generator's Sheng words and free-text comments (loadtest `generate/answers.rs`), verbatim.
const GENERATOR_SHENG_WORDS: [&str; 10] = [
    "mambo", "poa", "fiti", "msee", "doh", "sasa", "manze", "keja", "ganji", "mat",
];
const GENERATOR_SHENG_COMMENTS: [&str; 12] = [
    "Mambo poa, maji iko fiti sasa",
    "Msee wa chama alisema doh itarudi next week",
    "Hakuna doh ya kununua mbolea mwezi huu",
    "Vitu ni fiti lakini bei ya unga iko juu",
    "Manze, the borehole is down again",
    "Sasa, keja iko mbali na kliniki",
    "Msee ako na ganji kidogo tu, anaomba loan",
    "Poa sana, tunashukuru for the visit",
    "Mat ilichelewa so tulianza late",
    "Doh ya school fees ndio shida kubwa",
    "Mambo ni poa, lakini mvua haijanyesha",
    "Msee hakuwa home, tumempigia simu",
];
const GENERATOR_PIDGIN_COMMENTS: [&str; 6] = [
    "Abeg, the pump don spoil again",
    "No wahala, everything dey okay",
    "Chale, market prices too high this month",
    "Wetin we go do, rain never fall",
    "Oga say make we come back next week",
    "E be like say the clinic too far for am",
];
const GENERATOR_PLAIN_COMMENTS: [&str; 10] = [
    "Respondent was cooperative.",
    "Follow up next month.",
    "Needs a referral to the county office.",
    "Harvest was poor because of the late rains.",
    "Household head was away; spoke with the spouse.",
    "Water point repaired last week.",
    "Asked about the next training session.",
    "Price of fertiliser has doubled since January.",
    "Interview done in the local language.",
    "Phone number confirmed by a test call.",
];

fn response(city: Option<Answer>, texts: &[(&str, &str)]) -> Response {
    let mut answers: BTreeMap<String, Option<Answer>> = texts
        .iter()
        .map(|(id, t)| {
            (
                (*id).to_owned(),
                Some(Answer::Text {
                    text: (*t).to_owned(),
                }),
            )
        })
        .collect();
    answers.insert("city".to_owned(), city);
    Response {
        id: "r-1".to_owned(),
        form_id: "f-kilimo-coop-household-survey".to_owned(),
        form_version: 1,
        team_id: "kilimo-coop".to_owned(),
        collector_id: "enum-1".to_owned(),
        submitted_at: 1_795_165_200_000,
        locale: "sw-KE".to_owned(),
        answers,
        duration_ms: None,
    }
}

fn in_city(city: &str, texts: &[(&str, &str)]) -> Response {
    response(
        Some(Answer::Choice {
            choice: city.to_owned(),
        }),
        texts,
    )
}

fn default_index() -> SlangIndex {
    SlangIndex::from_json(&json!({})).unwrap()
}

/// `(term, matched text)` of the hits.
fn found(index: &SlangIndex, response: &Response) -> Vec<(String, String)> {
    index
        .search(response)
        .into_iter()
        .map(|hit| {
            let text = match &response.answers[&hit.question_id] {
                Some(Answer::Text { text }) => text[hit.start..hit.end].to_owned(),
                other => panic!("hit in {other:?}"),
            };
            (hit.term, text)
        })
        .collect()
}

fn terms(index: &SlangIndex, city: &str, text: &str) -> Vec<String> {
    found(index, &in_city(city, &[("comments", text)]))
        .into_iter()
        .map(|(term, _)| term)
        .collect()
}

#[test]
fn hits_in_a_nairobi_comment_carry_offsets_and_meanings() {
    let index = default_index();
    let hits = index.search(&in_city(
        "nairobi",
        &[("comments", "Mambo poa, maji iko fiti sasa")],
    ));
    let summary: Vec<_> = hits.iter().map(|h| (h.term.as_str(), h.start, h.end)).collect();
    assert_eq!(
        summary,
        [("mambo", 0, 5), ("poa", 6, 9), ("fiti", 20, 24), ("sasa", 25, 29)]
    );
    assert_eq!(
        hits[1],
        Hit {
            question_id: "comments".to_owned(),
            term: "poa".to_owned(),
            meaning: "cool, fine".to_owned(),
            city: "nairobi".to_owned(),
            start: 6,
            end: 9,
        }
    );
    assert_eq!(
        serde_json::to_value(&hits[0]).unwrap(),
        json!({"question_id": "comments", "term": "mambo", "meaning": "hi, how are things",
               "city": "nairobi", "start": 0, "end": 5})
    );
}

#[test]
fn every_generator_slang_word_is_found() {
    let index = default_index();
    let mut seen = std::collections::BTreeSet::new();
    for city in SHENG_CITIES {
        for comment in GENERATOR_SHENG_COMMENTS {
            let hits = terms(&index, city, comment);
            assert!(!hits.is_empty(), "{city}: {comment}");
            seen.extend(hits);
        }
    }
    for word in GENERATOR_SHENG_WORDS {
        assert!(seen.contains(word), "{word} never found");
    }
    for city in PIDGIN_CITIES {
        for comment in GENERATOR_PIDGIN_COMMENTS {
            assert!(!terms(&index, city, comment).is_empty(), "{city}: {comment}");
        }
    }
    assert_eq!(
        terms(&index, "lagos", "Oga say make we come back next week"),
        ["oga", "make we"]
    );
    // Plain comments have no slang anywhere.
    for city in SHENG_CITIES.iter().chain(&PIDGIN_CITIES) {
        for comment in GENERATOR_PLAIN_COMMENTS {
            assert!(terms(&index, city, comment).is_empty(), "{city}: {comment}");
        }
    }
}

#[test]
fn a_lagos_response_is_not_searched_for_sheng() {
    let index = default_index();
    assert!(terms(&index, "lagos", "Mambo poa, maji iko fiti sasa").is_empty());
    assert_eq!(
        terms(&index, "nairobi", "No wahala, everything dey okay"),
        Vec::<String>::new()
    );
    assert_eq!(
        terms(&index, "lagos", "No wahala, everything dey okay"),
        ["no wahala", "dey"]
    );
}

#[test]
fn only_whole_words_match() {
    let index = default_index();
    for text in [
        "format",
        "matatu",
        "the mat's",
        "poa2",
        "2poa",
        "dohá",
        "ápoa",
        "kipoa",
        "msee_",
    ] {
        let expected: &[&str] = match text {
            "the mat's" => &["mat"],
            "msee_" => &["msee"],
            _ => &[],
        };
        assert_eq!(terms(&index, "nairobi", text), expected, "{text}");
    }
    assert_eq!(
        terms(&index, "nairobi", "poa-poa (fiti)!"),
        ["poa", "poa", "fiti"]
    );
    assert_eq!(terms(&index, "nairobi", "«poa»—sasa"), ["poa", "sasa"]);
    // Multi-byte text before a hit: offsets stay byte offsets.
    let hits = default_index().search(&in_city("nairobi", &[("comments", "Ñandú poa")]));
    assert_eq!((hits[0].start, hits[0].end), (8, 11));
}

#[test]
fn multi_word_terms_win_over_their_words_and_fall_back_at_boundaries() {
    let index = default_index();
    assert_eq!(terms(&index, "nairobi", "Poa sana, asante"), ["poa sana"]);
    assert_eq!(terms(&index, "accra", "No wahala"), ["no wahala"]);
    assert_eq!(
        terms(&index, "accra", "E be like say e don do"),
        ["e be like say", "e don do"]
    );
    // `poa sana` fails the boundary check in `poa sanaa`; the shorter `poa` is still found.
    assert_eq!(terms(&index, "nairobi", "poa sanaa"), ["poa"]);
    // Two spaces are not one.
    assert_eq!(terms(&index, "nairobi", "poa  sana"), ["poa"]);
    // A team's multi-word term, written with extra spaces in the config.
    let team = SlangIndex::from_json(&json!({
        "dictionaries": {"Nairobi": {"  Form  ni  gani ": "what's the plan"}}
    }))
    .unwrap();
    let hits = team.search(&in_city("nairobi", &[("comments", "Sasa, form ni gani leo?")]));
    let summary: Vec<_> = hits
        .iter()
        .map(|h| (h.term.as_str(), h.meaning.as_str(), h.start))
        .collect();
    assert_eq!(
        summary,
        [
            ("sasa", "hi, what's up; also: now", 0),
            ("form ni gani", "what's the plan", 6)
        ]
    );
}

#[test]
fn a_team_dictionary_overrides_and_extends_the_builtin_one() {
    let index = SlangIndex::from_json(&json!({
        "dictionaries": {
            "nairobi": {"Poa": "great", "mnoma": "excellent"},
            "Dar es Salaam": {"mambo": "hello"},
            "Kigali": {"nta kibazo": "no problem"}
        }
    }))
    .unwrap();
    let hits = index.search(&in_city("nairobi", &[("comments", "poa msee, mnoma sana")]));
    let meanings: Vec<_> = hits
        .iter()
        .map(|h| (h.term.as_str(), h.meaning.as_str()))
        .collect();
    assert_eq!(
        meanings,
        [("poa", "great"), ("msee", "guy, person"), ("mnoma", "excellent")]
    );
    // The override is per city.
    let mombasa = index.search(&in_city("mombasa", &[("comments", "poa")]));
    assert_eq!(mombasa[0].meaning, "cool, fine");
    let dar = index.search(&in_city("dar-es-salaam", &[("comments", "Mambo!")]));
    assert_eq!(
        (dar[0].meaning.as_str(), dar[0].city.as_str()),
        ("hello", "dar-es-salaam")
    );
    assert_eq!(terms(&index, "kigali", "Nta kibazo"), ["nta kibazo"]);

    // Without the built-in dictionaries only the team's terms are searched.
    let own = SlangIndex::from_json(&json!({
        "use_builtin": false,
        "dictionaries": {"nairobi": {"mnoma": "excellent"}}
    }))
    .unwrap();
    assert_eq!(terms(&own, "nairobi", "poa, mnoma"), ["mnoma"]);
    assert_eq!(own.cities().collect::<Vec<_>>(), ["nairobi"]);
}

#[test]
fn no_city_or_an_unknown_city_gives_no_hits() {
    let index = default_index();
    let text = [("comments", "Mambo poa")];
    assert!(index.search(&in_city("nyeri", &text)).is_empty());
    assert!(index.search(&response(None, &text)).is_empty());
    assert!(
        index
            .search(&response(
                Some(Answer::Text {
                    text: "  ".to_owned()
                }),
                &text
            ))
            .is_empty()
    );
    assert!(
        index
            .search(&response(Some(Answer::Number { number: 1.0 }), &text))
            .is_empty()
    );
    let mut no_question = in_city("nairobi", &text);
    no_question.answers.remove("city");
    assert!(index.search(&no_question).is_empty());
}

#[test]
fn the_city_may_be_typed_in_any_case_and_spacing() {
    let index = default_index();
    for typed in ["Nairobi", " NAIROBI ", "nairobi\n"] {
        let r = response(
            Some(Answer::Text {
                text: typed.to_owned(),
            }),
            &[("comments", "poa")],
        );
        assert_eq!(index.city_of(&r).as_deref(), Some("nairobi"));
        assert_eq!(index.search(&r).len(), 1, "{typed:?}");
    }
    let dar = response(
        Some(Answer::Text {
            text: "Dar es  Salaam".to_owned(),
        }),
        &[("comments", "poa")],
    );
    assert_eq!(index.city_of(&dar).as_deref(), Some("dar-es-salaam"));
    assert_eq!(index.search(&dar).len(), 1);
}

#[test]
fn matching_ignores_case() {
    let index = default_index();
    assert_eq!(terms(&index, "nairobi", "POA Poa pOa"), ["poa", "poa", "poa"]);
    assert_eq!(terms(&index, "lagos", "NO WAHALA"), ["no wahala"]);
    let hits = index.search(&in_city("nairobi", &[("comments", "MSEE")]));
    assert_eq!(
        (hits[0].term.as_str(), hits[0].start, hits[0].end),
        ("msee", 0, 4)
    );
}

#[test]
fn the_config_chooses_the_questions() {
    let texts = [
        ("comments", "poa"),
        ("notes", "fiti"),
        ("respondent_name", "Baraka"),
    ];
    let all = default_index().search(&in_city("nairobi", &texts));
    assert_eq!(
        all.iter().map(|h| h.question_id.as_str()).collect::<Vec<_>>(),
        ["comments", "notes"]
    );

    let index = SlangIndex::from_json(&json!({"text_questions": ["notes"]})).unwrap();
    let hits = index.search(&in_city("nairobi", &texts));
    assert_eq!(hits.iter().map(|h| h.term.as_str()).collect::<Vec<_>>(), ["fiti"]);

    // Another city question; the city's own text answer is not searched by default.
    let index = SlangIndex::from_json(&json!({"city_question": "town"})).unwrap();
    let mut r = in_city("lagos", &[("comments", "poa"), ("town", "Nairobi poa")]);
    assert_eq!(index.city_of(&r).as_deref(), Some("nairobi-poa"));
    r.answers.insert(
        "town".to_owned(),
        Some(Answer::Text {
            text: "Nairobi".to_owned(),
        }),
    );
    assert_eq!(found(&index, &r), [("poa".to_owned(), "poa".to_owned())]);

    // Non-text answers are never searched.
    let mut r = in_city("nairobi", &[]);
    r.answers.insert(
        "water_source".to_owned(),
        Some(Answer::Choice {
            choice: "poa".to_owned(),
        }),
    );
    assert!(default_index().search(&r).is_empty());
}

#[test]
fn bad_configs_are_refused_with_a_reason() {
    let cases = [
        (json!({"city_question": " "}), "The city question id is empty"),
        (
            json!({"text_questions": []}),
            "The list of text questions is empty",
        ),
        (
            json!({"dictionaries": {" - ": {"x": "y"}}}),
            "which is empty once spaces and dashes are removed",
        ),
        (
            json!({"dictionaries": {"Nairobi": {"a": "b"}, "nairobi": {"c": "d"}}}),
            "are the same city",
        ),
        (
            json!({"dictionaries": {"nairobi": {"Poa": "a", "poa": "b"}}}),
            "which are the same term",
        ),
        (
            json!({"dictionaries": {"nairobi": {" ": "a"}}}),
            "has an empty term",
        ),
        (
            json!({"dictionaries": {"nairobi": {"poa": " "}}}),
            "has an empty meaning",
        ),
        (
            json!({"dictionaries": {"nairobi": {"x".repeat(101): "a"}}}),
            "a term of 101 characters",
        ),
        (
            json!({"dictionaries": {"nairobi": {"x": "m".repeat(201)}}}),
            "a meaning of 201 characters",
        ),
        (json!({"use_builtin": "yes"}), "does not have the expected shape"),
        (json!({"unknown": 1}), "does not have the expected shape"),
    ];
    for (config, reason) in cases {
        let error = SlangIndex::from_json(&config).unwrap_err();
        let text = error.to_string();
        assert!(text.contains(reason), "{config}: {text}");
        assert!(text.starts_with("The ") && text.ends_with('.'), "{text}");
    }
    let many: BTreeMap<String, String> = (0..=MAX_TEAM_TERMS)
        .map(|i| (format!("t{i}"), "m".to_owned()))
        .collect();
    let error = SlangIndex::from_json(&json!({"dictionaries": {"nairobi": many}})).unwrap_err();
    assert!(matches!(error, SlangError::TooManyTerms { count: 10_001 }));
}

#[test]
fn the_schema_accepts_good_configs_and_refuses_bad_shapes() {
    let schema = config_schema();
    assert!(jsonschema::meta::is_valid(&schema));
    let validator = jsonschema::validator_for(&schema).unwrap();
    for good in [
        json!({}),
        json!({"city_question": "town", "text_questions": ["comments"], "use_builtin": false,
               "dictionaries": {"nairobi": {"poa": "cool"}}}),
    ] {
        assert!(validator.is_valid(&good), "{good}");
        assert!(SlangIndex::from_json(&good).is_ok(), "{good}");
    }
    for bad in [
        json!({"city_question": ""}),
        json!({"text_questions": []}),
        json!({"text_questions": ["a", "a"]}),
        json!({"use_builtin": 1}),
        json!({"dictionaries": {"nairobi": {"poa": ""}}}),
        json!({"dictionaries": {"nairobi": {"": "x"}}}),
        json!({"dictionaries": {"nairobi": ["poa"]}}),
        json!({"extra": true}),
    ] {
        assert!(!validator.is_valid(&bad), "{bad}");
    }
}

#[test]
fn dictionaries_normalise_and_merge() {
    let mut d = Dictionaries::new();
    assert!(d.is_empty());
    assert_eq!(
        d.insert(" Dar es Salaam", " Mambo  Poa ", " all good ").unwrap(),
        None
    );
    assert_eq!(d.meaning("dar-es-salaam", "mambo poa"), Some("all good"));
    assert_eq!(
        d.insert("dar_es_salaam", "MAMBO POA", "fine").unwrap().as_deref(),
        Some("all good")
    );
    assert_eq!(d.cities().collect::<Vec<_>>(), ["dar-es-salaam"]);
    assert!(d.insert("", "x", "y").is_err());
    let mut base = builtin();
    let before = base.term_count();
    base.merge(d);
    assert_eq!(base.term_count(), before + 1);
    assert_eq!(base.meaning("Dar es Salaam", "mambo"), Some("hi, how are things"));
    assert_eq!(normalize_city("  Dar-es_Salaam "), "dar-es-salaam");
    assert_eq!(normalize_term("\tE  be like\nSAY "), "e be like say");
}

#[test]
fn the_builtin_dictionaries_are_valid() {
    let dictionaries = builtin();
    assert_eq!(
        dictionaries.cities().count(),
        SHENG_CITIES.len() + PIDGIN_CITIES.len()
    );
    for (city, terms) in dictionaries.iter() {
        assert_eq!(normalize_city(city), city);
        for (term, meaning) in terms {
            assert_eq!(&normalize_term(term), term, "{city}: {term}");
            assert!(!meaning.trim().is_empty() && meaning.chars().count() <= MAX_MEANING_CHARS);
        }
    }
    assert_eq!(dictionaries.meaning("nairobi", "msee"), Some("guy, person"));
    assert_eq!(dictionaries.meaning("lagos", "wahala"), Some("trouble, problem"));
    assert_eq!(dictionaries.meaning("lagos", "msee"), None);
}

#[test]
fn an_index_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SlangIndex>();
}
