//! sms-notify against the fake Twilio on 127.0.0.1.

// Test helpers outside `#[test]` functions unwrap too; clippy.toml only exempts the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_plugins::fakes::server::{FakeServer, InjectedFailure};
use switchyard_plugins::fakes::twilio::{self as fake, FakeTwilio};
use switchyard_plugins::sms::{SkipReason, SmsError, SmsNotifier, SmsOutcome, TwilioClient};
use switchyard_plugins::{Disposition, Secret};
use switchyard_schemas::events::{Answer, Response, ResponseSubmitted};
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
