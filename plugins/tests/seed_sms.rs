//! sms-notify against the fake Twilio on 127.0.0.1.

// Test helpers outside `#[test]` functions unwrap too; clippy.toml only exempts the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_plugin_runtime::plugin::{Context, DEFAULT_INSTALLATION, Event, EventMeta, Outcome, Plugin};
use switchyard_plugins::fakes::server::{FakeServer, InjectedFailure};
use switchyard_plugins::fakes::twilio::{self as fake, FakeTwilio};
use switchyard_plugins::in_process::{SmsNotifyPlugin, sms_notify_manifest};
use switchyard_plugins::sms::record::{CLOCK_ALLOWANCE, Decision, Entry, Intent, Sent, decide};
use switchyard_plugins::sms::twilio::MAX_LIST_PAGES;
use switchyard_plugins::sms::{
    ListedMessage, Prepared, SkipReason, SmsError, SmsNotifier, SmsOutcome, TwilioClient,
};
use switchyard_plugins::{Disposition, Secret};
use switchyard_schemas::events::{Answer, Response, ResponseSubmitted};
use time::OffsetDateTime;
use tokio::net::TcpListener;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "7f3c0ffee0ddba11";
const TEAM: &str = "kilimo-coop";

async fn start(fake: &FakeTwilio) -> FakeServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    fake::serve(listener, fake.clone()).await.unwrap()
}

fn client(server: &FakeServer) -> TwilioClient {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    TwilioClient::new(&server.base_url(), http).unwrap()
}

fn team_config(token: &str, template: Option<&str>) -> Value {
    let mut config = json!({ "account_sid": SID, "auth_token": token, "from": "KILIMO" });
    if let Some(template) = template {
        config["template"] = Value::from(template);
    }
    config
}

fn farmer(id: &str, phone: Option<&str>) -> ResponseSubmitted {
    let mut answers = BTreeMap::new();
    answers.insert(
        "farmer_name".to_owned(),
        Some(Answer::Text {
            text: "Wanjiku Kamau".into(),
        }),
    );
    answers.insert(
        "city".to_owned(),
        Some(Answer::Choice {
            choice: "nakuru".into(),
        }),
    );
    answers.insert("farm_size_acres".to_owned(), Some(Answer::Number { number: 2.5 }));
    answers.insert(
        "phone".to_owned(),
        phone.map(|phone| Answer::Phone { phone: phone.into() }),
    );
    ResponseSubmitted {
        response: Response {
            id: id.into(),
            form_id: "f-kilimo-coop-farmer-registration".into(),
            form_version: 1,
            team_id: TEAM.into(),
            collector_id: "enum-3".into(),
            submitted_at: 1_795_165_200_000,
            locale: "sw".into(),
            answers,
            duration_ms: None,
        },
    }
}

async fn notifier(server: &FakeServer, token: &str, template: Option<&str>) -> SmsNotifier {
    let notifier = SmsNotifier::new(client(server));
    notifier
        .configure_team(TEAM, &team_config(token, template))
        .unwrap();
    notifier
}

#[tokio::test]
async fn a_message_is_sent_with_the_filled_template() {
    let twilio = FakeTwilio::new();
    twilio.add_account(SID, TOKEN);
    let server = start(&twilio).await;
    let notifier = notifier(
        &server,
        TOKEN,
        Some(
            "Habari {{name}}! Response {{response_id}} ({{answer.city}}, {{answer.farm_size_acres}} acres).",
        ),
    )
    .await;

    let outcome = notifier
        .response_submitted(&farmer("r-1", Some("+254 712-345 678")))
        .await
        .unwrap();
    let SmsOutcome::Sent { sid, to_masked } = &outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(to_masked, "+*********678");
    assert!(sid.starts_with("SM") && sid.len() == 34, "{sid}");
    assert_eq!(
        serde_json::to_value(&outcome).unwrap(),
        json!({ "outcome": "sent", "sid": sid, "to_masked": "+*********678" })
    );

    let messages = twilio.messages();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(&message.sid, sid);
    assert_eq!(message.to, "+254712345678");
    assert_eq!(message.from, "KILIMO");
    assert_eq!(
        message.body,
        "Habari Wanjiku Kamau! Response r-1 (nakuru, 2.5 acres)."
    );
}

#[tokio::test]
async fn the_same_send_twice_texts_twice_as_twilio_does() {
    // Twilio's Messages API takes no idempotency key, and neither does the fake: a redelivered event
    // texts the respondent again unless the caller remembers what it sent.
    let twilio = FakeTwilio::new();
    twilio.add_account(SID, TOKEN);
    let server = start(&twilio).await;
    let notifier = notifier(&server, TOKEN, None).await;
    let event = farmer("r-1", Some("+254712345678"));
    for _ in 0..2 {
        notifier.response_submitted(&event).await.unwrap();
    }
    let messages = twilio.messages();
    assert_eq!(messages.len(), 2);
    assert_ne!(messages[0].sid, messages[1].sid);
}

#[tokio::test]
async fn the_default_template_and_long_messages() {
    let twilio = FakeTwilio::new();
    twilio.add_account(SID, TOKEN);
    let server = start(&twilio).await;
    let notifier = notifier(&server, TOKEN, None).await;
    notifier
        .response_submitted(&farmer("r-1", Some("+254712345678")))
        .await
        .unwrap();
    assert_eq!(
        twilio.messages()[0].body,
        "Thank you Wanjiku Kamau, we received your response r-1."
    );

    let notifier = self::notifier(
        &server,
        TOKEN,
        Some(&format!("{}{{{{response_id}}}}", "x".repeat(1700))),
    )
    .await;
    notifier
        .response_submitted(&farmer("r-2", Some("+254712345678")))
        .await
        .unwrap();
    let body = &twilio.messages()[1].body;
    assert_eq!(body.chars().count(), 1600);
    assert!(body.ends_with("x…"));
}

#[tokio::test]
async fn responses_without_a_valid_number_are_skipped() {
    let twilio = FakeTwilio::new();
    twilio.add_account(SID, TOKEN);
    let server = start(&twilio).await;
    let notifier = notifier(&server, TOKEN, None).await;

    let national = notifier
        .response_submitted(&farmer("r-1", Some("0712 345 678")))
        .await
        .unwrap();
    assert_eq!(
        national,
        SmsOutcome::Skipped {
            reason: SkipReason::InvalidNumber {
                question: "phone".into()
            }
        }
    );
    let skipped = notifier.response_submitted(&farmer("r-2", None)).await.unwrap();
    assert_eq!(
        skipped,
        SmsOutcome::Skipped {
            reason: SkipReason::NoNumber {
                question: "phone".into()
            }
        }
    );
    assert_eq!(
        serde_json::to_value(&skipped).unwrap(),
        json!({ "outcome": "skipped", "reason": { "kind": "no_number", "question": "phone" } })
    );

    let mut config = team_config(TOKEN, None);
    config["phone_question"] = Value::from("city");
    notifier.configure_team(TEAM, &config).unwrap();
    let choice = notifier
        .response_submitted(&farmer("r-3", Some("+254712345678")))
        .await
        .unwrap();
    assert!(matches!(
        choice,
        SmsOutcome::Skipped {
            reason: SkipReason::NotAPhoneAnswer { .. }
        }
    ));
    assert_eq!(twilio.requests(), 0);
}

#[tokio::test]
async fn bad_credentials_are_dead_lettered() {
    let twilio = FakeTwilio::new();
    twilio.add_account(SID, TOKEN);
    let server = start(&twilio).await;
    let notifier = notifier(&server, "not-the-token", None).await;
    let error = notifier
        .response_submitted(&farmer("r-1", Some("+254712345678")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            SmsError::Api {
                status: 401,
                code: Some(20003),
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.disposition(), Disposition::DeadLetter);
    assert!(!error.to_string().contains("not-the-token"));
    assert!(twilio.messages().is_empty());
}

#[tokio::test]
async fn rate_limits_and_outages_are_retried() {
    let twilio = FakeTwilio::new();
    twilio.add_account(SID, TOKEN);
    let server = start(&twilio).await;
    let notifier = notifier(&server, TOKEN, None).await;
    let event = farmer("r-1", Some("+254712345678"));

    twilio.fail_next(
        1,
        InjectedFailure {
            status: 429,
            retry_after: Some(30),
        },
    );
    let error = notifier.response_submitted(&event).await.unwrap_err();
    assert!(
        matches!(
            error,
            SmsError::Api {
                status: 429,
                code: Some(20429),
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.disposition(),
        Disposition::Retry {
            after: Some(Duration::from_secs(30))
        }
    );

    twilio.fail_next(
        1,
        InjectedFailure {
            status: 500,
            retry_after: None,
        },
    );
    let error = notifier.response_submitted(&event).await.unwrap_err();
    assert_eq!(error.disposition(), Disposition::Retry { after: None });

    assert!(matches!(
        notifier.response_submitted(&event).await.unwrap(),
        SmsOutcome::Sent { .. }
    ));
    assert_eq!(twilio.messages().len(), 1);

    // Nobody listening: a connection error, retried.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let offline =
        SmsNotifier::new(TwilioClient::new(&format!("http://{address}"), reqwest::Client::new()).unwrap());
    offline.configure_team(TEAM, &team_config(TOKEN, None)).unwrap();
    let error = offline.response_submitted(&event).await.unwrap_err();
    assert!(matches!(error, SmsError::Transport { .. }), "{error:?}");
    assert_eq!(error.disposition(), Disposition::Retry { after: None });
}

#[tokio::test]
async fn an_invalid_to_number_is_refused_by_the_api_and_masked() {
    let twilio = FakeTwilio::new();
    twilio.add_account(SID, TOKEN);
    let server = start(&twilio).await;
    let error = client(&server)
        .send(SID, &Secret::new(TOKEN), "254712345678", "KILIMO", "Hi")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            SmsError::Api {
                status: 400,
                code: Some(21211),
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.disposition(), Disposition::DeadLetter);
    assert_eq!(
        error.to_string(),
        "The SMS API answered HTTP 400 with error 21211: \
         The 'To' number *********678 is not a valid phone number."
    );
}

#[tokio::test]
async fn config_problems_surface_at_configure_time() {
    let twilio = FakeTwilio::new();
    let server = start(&twilio).await;
    let notifier = SmsNotifier::new(client(&server));
    let error = notifier
        .configure_team(
            TEAM,
            &team_config(TOKEN, Some("Hi {{answer.name}} {{respondent}}")),
        )
        .unwrap_err();
    assert_eq!(error.field, "template");
    assert!(error.to_string().contains("{{respondent}}"), "{error}");
    assert_eq!(error.disposition(), Disposition::DeadLetter);

    let error = notifier
        .response_submitted(&farmer("r-1", Some("+254712345678")))
        .await
        .unwrap_err();
    assert!(matches!(error, SmsError::TeamNotConfigured { .. }));
    assert_eq!(error.disposition(), Disposition::DeadLetter);
    assert!(!notifier.remove_team(TEAM));
    assert_eq!(twilio.requests(), 0);
}

const TO: &str = "+254712345678";

/// `GET` of the fake's list at `path_and_query` (a path as Twilio's page URIs give it), as `sid`:`token`.
async fn list(server: &FakeServer, path_and_query: &str, token: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}{path_and_query}", server.base_url()))
        .basic_auth(SID, Some(token))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn messages_path(query: &str) -> String {
    format!("/2010-04-01/Accounts/{SID}/Messages.json?{query}")
}

fn bodies(page: &Value) -> Vec<&str> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect()
}

fn day(at: OffsetDateTime) -> String {
    at.date()
        .format(time::macros::format_description!("[year]-[month]-[day]"))
        .unwrap()
}

#[tokio::test]
async fn the_list_filters_by_recipient_sender_and_day_newest_first_in_twilios_format() {
    let twilio = FakeTwilio::new();
    twilio.add_account(SID, TOKEN);
    let server = start(&twilio).await;
    let client = client(&server);
    let now = OffsetDateTime::now_utc();
    let three_days_ago = now - time::Duration::days(3);
    twilio.record_sent(SID, TO, "KILIMO", "old", three_days_ago);
    for body in ["first", "second", "third"] {
        client
            .send(SID, &Secret::new(TOKEN), TO, "KILIMO", body)
            .await
            .unwrap();
    }
    client
        .send(
            SID,
            &Secret::new(TOKEN),
            "+254700000001",
            "KILIMO",
            "someone else",
        )
        .await
        .unwrap();
    client
        .send(SID, &Secret::new(TOKEN), TO, "OTHER", "another sender")
        .await
        .unwrap();

    let (status, page) = list(&server, &messages_path("To=%2B254712345678&From=KILIMO"), TOKEN).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(bodies(&page), ["third", "second", "first", "old"], "newest first");
    let newest = &page["messages"][0];
    assert_eq!(newest["to"], TO);
    assert_eq!(newest["from"], "KILIMO");
    assert_eq!(newest["status"], "sent");
    assert_eq!(newest["date_sent"], newest["date_created"]);
    assert_eq!(newest["sid"], twilio.messages()[3].sid.as_str());
    OffsetDateTime::parse(
        newest["date_created"].as_str().unwrap(),
        &time::format_description::well_known::Rfc2822,
    )
    .expect("RFC 2822");
    assert_eq!(page["page"], 0);
    assert_eq!(page["page_size"], 50);
    assert_eq!(page["start"], 0);
    assert_eq!(page["end"], 3);
    assert_eq!(page["next_page_uri"], Value::Null);
    assert_eq!(page["previous_page_uri"], Value::Null);
    assert_eq!(
        page["first_page_uri"],
        messages_path("To=%2B254712345678&From=KILIMO&PageSize=50&Page=0")
    );

    // The day filters, as Twilio's docs write them: `DateSent>=` is the parameter `DateSent>`.
    let today = day(now);
    let (_, since_today) = list(
        &server,
        &messages_path(&format!("To=%2B254712345678&From=KILIMO&DateSent>={today}")),
        TOKEN,
    )
    .await;
    assert_eq!(bodies(&since_today), ["third", "second", "first"]);
    let (_, encoded) = list(
        &server,
        &messages_path(&format!("To=%2B254712345678&DateSent%3E={today}")),
        TOKEN,
    )
    .await;
    assert_eq!(bodies(&encoded), ["another sender", "third", "second", "first"]);
    let (_, on_the_day) = list(
        &server,
        &messages_path(&format!("DateSent={}", day(three_days_ago))),
        TOKEN,
    )
    .await;
    assert_eq!(bodies(&on_the_day), ["old"]);
    let yesterday = day(now - time::Duration::days(1));
    let (_, until_yesterday) = list(&server, &messages_path(&format!("DateSent<={yesterday}")), TOKEN).await;
    assert_eq!(bodies(&until_yesterday), ["old"]);
    let (_, everyone) = list(&server, &messages_path(""), TOKEN).await;
    assert_eq!(bodies(&everyone).len(), 6);

    let (status, error) = list(&server, &messages_path("DateSent>=22/11/2026"), TOKEN).await;
    assert_eq!((status, error["code"].as_i64()), (400, Some(20001)), "{error}");
    let (status, error) = list(&server, &messages_path(""), "not-the-token").await;
    assert_eq!((status, error["code"].as_i64()), (401, Some(20003)), "{error}");
    let other = "/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages.json";
    let (status, error) = list(&server, other, TOKEN).await;
    assert_eq!((status, error["code"].as_i64()), (404, Some(20404)), "{error}");
    twilio.fail_next(
        1,
        InjectedFailure {
            status: 503,
            retry_after: Some(2),
        },
    );
    let (status, error) = list(&server, &messages_path(""), TOKEN).await;
    assert_eq!((status, error["code"].as_i64()), (503, Some(20503)), "{error}");
    let (status, _) = list(&server, &messages_path(""), TOKEN).await;
    assert_eq!(status, 200, "one failure injected");
}

#[tokio::test]
async fn the_list_pages_with_twilios_cursor_while_messages_arrive() {
    let twilio = FakeTwilio::new();
    twilio.add_account(SID, TOKEN);
    let server = start(&twilio).await;
    let client = client(&server);
    for n in 1..=5 {
        client
            .send(SID, &Secret::new(TOKEN), TO, "KILIMO", &format!("m{n}"))
            .await
            .unwrap();
    }
    let (_, first) = list(&server, &messages_path("To=%2B254712345678&PageSize=2"), TOKEN).await;
    assert_eq!(bodies(&first), ["m5", "m4"]);
    let next = first["next_page_uri"].as_str().unwrap().to_owned();
    assert!(
        next.starts_with(&messages_path(
            "To=%2B254712345678&PageSize=2&Page=1&PageToken=PASM"
        )),
        "{next}"
    );
    // A message arrives between two pages: the cursor carries on where the first page ended.
    client
        .send(SID, &Secret::new(TOKEN), TO, "KILIMO", "m6")
        .await
        .unwrap();
    let (_, second) = list(&server, &next, TOKEN).await;
    assert_eq!(bodies(&second), ["m3", "m2"]);
    assert_eq!(second["page"], 1);
    let (_, back) = list(&server, second["previous_page_uri"].as_str().unwrap(), TOKEN).await;
    assert_eq!(bodies(&back), ["m5", "m4"]);
    let (_, third) = list(&server, second["next_page_uri"].as_str().unwrap(), TOKEN).await;
    assert_eq!(bodies(&third), ["m1"]);
    assert_eq!(third["next_page_uri"], Value::Null);
    // Without a cursor, a page is counted from the newest message.
    let (_, numbered) = list(&server, &messages_path("PageSize=2&Page=1"), TOKEN).await;
    assert_eq!(bodies(&numbered), ["m4", "m3"]);
}

#[tokio::test]
async fn the_client_reads_every_page_and_gives_up_on_an_endless_list() {
    let twilio = FakeTwilio::new();
    twilio.add_account(SID, TOKEN);
    let server = start(&twilio).await;
    let now = OffsetDateTime::now_utc();
    for n in 0..230 {
        twilio.record_sent(SID, TO, "KILIMO", &format!("m{n}"), now);
    }
    twilio.record_sent(SID, "+254700000001", "KILIMO", "someone else", now);
    twilio.record_sent(SID, TO, "KILIMO", "before the day", now - time::Duration::days(2));
    let requests = twilio.requests();
    let listed = client(&server)
        .list_sent_since(SID, &Secret::new(TOKEN), TO, "KILIMO", now.date())
        .await
        .unwrap();
    assert_eq!(listed.len(), 230);
    assert_eq!(listed[0].body, "m229", "newest first");
    assert_eq!(listed[229].body, "m0");
    assert!(
        listed
            .iter()
            .all(|m| m.to == TO && m.from == "KILIMO" && m.status == "sent")
    );
    assert_eq!(
        twilio.requests() - requests,
        3,
        "pages of 100, following next_page_uri"
    );

    let error = client(&server)
        .list_sent_since(SID, &Secret::new("not-the-token"), TO, "KILIMO", now.date())
        .await
        .unwrap_err();
    assert!(matches!(error, SmsError::Api { status: 401, .. }), "{error:?}");

    for n in 230..(MAX_LIST_PAGES * 100 + 1) {
        twilio.record_sent(SID, TO, "KILIMO", &format!("m{n}"), now);
    }
    let error = client(&server)
        .list_sent_since(SID, &Secret::new(TOKEN), TO, "KILIMO", now.date())
        .await
        .unwrap_err();
    assert!(matches!(error, SmsError::ListTooLong { .. }), "{error:?}");
    assert_eq!(error.disposition(), Disposition::DeadLetter);
}

fn intent_at(at_ms: i64) -> Intent {
    Intent {
        to: TO.to_owned(),
        from: "KILIMO".to_owned(),
        body: "Thank you Wanjiku Kamau, we received your response r-1.".to_owned(),
        at_ms,
    }
}

fn listed(sid: &str, intent: &Intent, created_s: i64) -> ListedMessage {
    ListedMessage {
        sid: sid.to_owned(),
        to: intent.to.clone(),
        from: intent.from.clone(),
        body: intent.body.clone(),
        date_created: OffsetDateTime::from_unix_timestamp(created_s).unwrap(),
        status: "sent".to_owned(),
    }
}

#[test]
fn the_decision_follows_the_ledger_then_twilios_list() {
    // The intent was taken 900 ms into second S; Twilio's dates have whole seconds.
    const S: i64 = 1_795_165_200;
    let intent = intent_at(S * 1000 + 900);
    let entry = Entry::Intent(intent.clone());
    let ours = listed("SMours", &intent, S);
    let sent = Sent {
        sid: "SMrecorded".to_owned(),
        to_masked: "+*********678".to_owned(),
    };
    let recovered = |sid: &str| {
        Decision::Recover(Sent {
            sid: sid.to_owned(),
            to_masked: "+*********678".to_owned(),
        })
    };

    // Nothing recorded: send (Twilio is not asked, and what it lists does not matter).
    assert_eq!(decide(None, std::slice::from_ref(&ours)), Decision::Send);
    // Sent: answer the record, whatever Twilio lists.
    assert_eq!(
        decide(Some(&Entry::Sent(sent.clone())), std::slice::from_ref(&ours)),
        Decision::Answer(sent)
    );
    // An intent and its message, created in the intent's second (before it, to the millisecond).
    assert_eq!(
        decide(Some(&entry), std::slice::from_ref(&ours)),
        recovered("SMours")
    );
    // ...or later, among other messages to the number: the oldest of the matches.
    let other_body = ListedMessage {
        body: "Something else".to_owned(),
        ..listed("SMother", &intent, S + 5)
    };
    let retried = listed("SMretried", &intent, S + 30);
    assert_eq!(
        decide(Some(&entry), &[retried.clone(), other_body.clone(), ours.clone()]),
        recovered("SMours")
    );
    // Twilio's clock may lag ours by the allowance, not more.
    let allowance = i64::try_from(CLOCK_ALLOWANCE.as_secs()).unwrap();
    let early = listed("SMearly", &intent, S - allowance);
    assert_eq!(decide(Some(&entry), &[early]), recovered("SMearly"));
    let before = listed("SMbefore", &intent, S - allowance - 1);
    assert_eq!(decide(Some(&entry), &[before]), Decision::Send);
    // An intent and nothing that is its message: send.
    assert_eq!(decide(Some(&entry), &[]), Decision::Send);
    assert_eq!(decide(Some(&entry), &[other_body]), Decision::Send);
    let other_number = ListedMessage {
        to: "+254700000001".to_owned(),
        ..ours.clone()
    };
    let other_sender = ListedMessage {
        from: "OTHER".to_owned(),
        ..ours
    };
    assert_eq!(
        decide(Some(&entry), &[other_number, other_sender]),
        Decision::Send
    );
}

#[tokio::test]
async fn a_message_whose_answer_was_lost_is_found_at_twilio() {
    let twilio = FakeTwilio::new();
    twilio.add_account(SID, TOKEN);
    let server = start(&twilio).await;
    let notifier = notifier(&server, TOKEN, None).await;
    let Prepared::Text(text) = notifier
        .prepare(&farmer("r-1", Some("+254 712 345 678")))
        .unwrap()
    else {
        panic!("a text")
    };
    let intent = Intent::now(text.to(), text.from(), text.body());
    let entry = Entry::Intent(intent.clone());
    // Before the send, Twilio lists nothing of it.
    let listed = notifier.look_up(TEAM, &intent).await.unwrap();
    assert_eq!(decide(Some(&entry), &listed), Decision::Send);

    twilio.fail_after_sending(
        1,
        InjectedFailure {
            status: 500,
            retry_after: None,
        },
    );
    let error = notifier.send(&text).await.unwrap_err();
    assert_eq!(error.disposition(), Disposition::Retry { after: None });
    let messages = twilio.messages();
    assert_eq!(messages.len(), 1, "stored although the answer was an error");

    let listed = notifier.look_up(TEAM, &intent).await.unwrap();
    assert_eq!(
        decide(Some(&entry), &listed),
        Decision::Recover(Sent {
            sid: messages[0].sid.clone(),
            to_masked: "+*********678".to_owned(),
        })
    );
    assert_eq!(twilio.messages().len(), 1, "looking sends nothing");
}

#[tokio::test]
async fn an_answer_held_past_the_clients_timeout_leaves_the_message_sent() {
    let twilio = FakeTwilio::new();
    twilio.add_account(SID, TOKEN);
    let server = start(&twilio).await;
    twilio.hold_answers_after_sending(1, Duration::from_secs(30));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let error = TwilioClient::new(&server.base_url(), impatient)
        .unwrap()
        .send(SID, &Secret::new(TOKEN), TO, "KILIMO", "Hi")
        .await
        .unwrap_err();
    assert!(matches!(error, SmsError::Transport { .. }), "{error:?}");
    assert_eq!(twilio.messages().len(), 1);
    // Only the next message was held.
    client(&server)
        .send(SID, &Secret::new(TOKEN), TO, "KILIMO", "Hi again")
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------------
// Installations: a team that installed the plugin twice

/// The team's second installation, on a Twilio account of its own.
const CLINIC: &str = "clinic-intake";
const CLINIC_SID: &str = "ACfedcba9876543210fedcba9876543210";
const CLINIC_TOKEN: &str = "c1in1c-t0ken";

fn clinic_config(template: Option<&str>) -> Value {
    let mut config = json!({ "account_sid": CLINIC_SID, "auth_token": CLINIC_TOKEN, "from": "KLINIKI" });
    if let Some(template) = template {
        config["template"] = Value::from(template);
    }
    config
}

/// The context of `event` routed for the team's `installation`.
fn context(installation: &str, event: &ResponseSubmitted) -> Context {
    Context {
        meta: EventMeta {
            id: format!("e-{}", event.response.id),
            source: "/collect/web".into(),
            event_type: "response.submitted".into(),
            time: None,
            subject: Some(event.response.form_id.clone()),
            team_id: TEAM.into(),
            installation: installation.into(),
            backfill: None,
        },
        data: serde_json::to_value(event).unwrap(),
        data_json: None,
        attempt: 1,
        traceparent: None,
    }
}

#[tokio::test]
async fn two_installations_of_a_team_text_with_their_own_configs() {
    let twilio = FakeTwilio::new();
    twilio.add_account(SID, TOKEN);
    twilio.add_account(CLINIC_SID, CLINIC_TOKEN);
    let server = start(&twilio).await;
    let manifest = sms_notify_manifest(None);
    assert!(manifest.delivery.installations, "the manifest opts in");
    let plugin = SmsNotifyPlugin::new(SmsNotifier::new(client(&server)), manifest);
    plugin
        .initialize(
            TEAM,
            DEFAULT_INSTALLATION,
            Some(&team_config(TOKEN, Some("Asante {{name}}."))),
        )
        .await
        .unwrap();
    plugin
        .initialize(
            TEAM,
            CLINIC,
            Some(&clinic_config(Some("Kliniki: {{response_id}} received."))),
        )
        .await
        .unwrap();

    let event = farmer("r-1", Some("+254712345678"));
    let execute = |installation: &'static str| {
        let event = event.clone();
        let plugin = &plugin;
        async move {
            plugin
                .execute(
                    &context(installation, &event),
                    &Event::ResponseSubmitted(event.clone()),
                )
                .await
        }
    };
    for installation in [DEFAULT_INSTALLATION, CLINIC] {
        let outcome = execute(installation).await;
        assert!(
            matches!(&outcome, Outcome::Done(results) if results[0].kind == "sms.sent"),
            "{installation}: {outcome:?}"
        );
    }
    let sent = |messages: &[fake::FakeMessage]| -> Vec<(String, String, String)> {
        messages
            .iter()
            .map(|m| (m.account_sid.clone(), m.from.clone(), m.body.clone()))
            .collect()
    };
    assert_eq!(
        sent(&twilio.messages()),
        [
            (SID.into(), "KILIMO".into(), "Asante Wanjiku Kamau.".into()),
            (
                CLINIC_SID.into(),
                "KLINIKI".into(),
                "Kliniki: r-1 received.".into()
            ),
        ],
        "each installation with its own account, sender and template"
    );

    // Removing the clinic's config leaves the default installation's alone.
    plugin.initialize(TEAM, CLINIC, None).await.unwrap();
    let refused = execute(CLINIC).await;
    assert!(
        matches!(&refused, Outcome::DeadLetter { reason }
            if reason.contains(r#"no sms-notify config for its installation "clinic-intake""#)),
        "{refused:?}"
    );
    let outcome = execute(DEFAULT_INSTALLATION).await;
    assert!(matches!(&outcome, Outcome::Done(results) if results[0].kind == "sms.sent"));
    let messages = twilio.messages();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[2].body, "Asante Wanjiku Kamau.");

    // The default installation's error reads as before installations existed.
    let error = SmsNotifier::new(client(&server))
        .prepare(&farmer("r-2", Some(TO)))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"Team "kilimo-coop" has no sms-notify config, so no message can be sent for it."#
    );
}

#[tokio::test]
async fn an_installations_lost_answer_is_looked_up_on_its_own_account() {
    // Both installations text the same words from the same sender, on two accounts: the clinic's lost
    // answer is found on the clinic's account, and the default installation's account lists nothing.
    let twilio = FakeTwilio::new();
    twilio.add_account(SID, TOKEN);
    twilio.add_account(CLINIC_SID, CLINIC_TOKEN);
    let server = start(&twilio).await;
    let notifier = notifier(&server, TOKEN, None).await;
    let mut clinic = clinic_config(None);
    clinic["from"] = Value::from("KILIMO");
    notifier.configure_installation(TEAM, CLINIC, &clinic).unwrap();
    let Prepared::Text(text) = notifier.prepare_for(CLINIC, &farmer("r-1", Some(TO))).unwrap() else {
        panic!("a text")
    };
    let intent = Intent::now(text.to(), text.from(), text.body());
    twilio.fail_after_sending(
        1,
        InjectedFailure {
            status: 500,
            retry_after: None,
        },
    );
    notifier.send(&text).await.unwrap_err();
    let messages = twilio.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].account_sid, CLINIC_SID);

    let entry = Entry::Intent(intent.clone());
    let listed = notifier.look_up_for(TEAM, CLINIC, &intent).await.unwrap();
    assert_eq!(
        decide(Some(&entry), &listed),
        Decision::Recover(Sent {
            sid: messages[0].sid.clone(),
            to_masked: "+*********678".to_owned(),
        })
    );
    let on_default = notifier.look_up(TEAM, &intent).await.unwrap();
    assert!(on_default.is_empty(), "{on_default:?}");
    assert!(notifier.remove_installation(TEAM, CLINIC));
    assert!(matches!(
        notifier.look_up_for(TEAM, CLINIC, &intent).await,
        Err(SmsError::TeamNotConfigured { .. })
    ));
    assert!(notifier.look_up(TEAM, &intent).await.is_ok(), "the default stays");
}
