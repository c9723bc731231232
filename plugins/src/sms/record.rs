//! What the sms ledger keeps per event, in the forms the workers write, and what a delivery of the event
//! does about it: [`decide`], pure, so that every case is tested without a broker or HTTP.
//!
//! # The record forms (the ledger topic's value, keyed by the event id)
//!
//! ```text
//!   sent    {"sid":"SM0123456789abcdef0123456789abcdef","to_masked":"+*********678"}
//!           written after Twilio accepted the message; the only form sms-notify 0.9 workers write and read, and
//!           still written byte for byte the same, so that both versions read each other's
//!   intent  {"state":"intent","to":"+254712345678","from":"SURVEYS","body":"Thank you …",
//!            "at_ms":1795165200123}                                        (on one line)
//!           written (acks=all, awaited) just before the send, by the workers from 0.10 on
//! ```
//!
//! Compaction keeps the last record of a key, so the sent record replaces the intent. A record with a
//! `state` other than `intent` (none yet) reads as sent if it has a `sid`. A 0.9 worker cannot read an
//! intent (it has no `sid`): it logs it as unreadable and treats the event as not sent, which is what
//! 0.9 always did, so a fleet in the middle of an upgrade is never worse than 0.9.
//!
//! **Personal data.** The intent keeps the recipient in full and the message's body. The look-up must
//! filter Twilio's list by `To` (listing everything the sender sent since the day instead is thousands
//! of pages at the plugin's rates) and recognise the message by its text, and both must be the
//! attempt's own: the redelivered event, rendered with the team's config of the moment, gives another
//! number or text when the template, the sender or the phone question changed in between. A hash of
//! number and body would keep neither in clear, but could only be checked against such a re-rendering,
//! and would still need the number to filter by. The ledger is the plugin's own topic; a sent record
//! keeps only the masked number and replaces its intent at the next compaction (segments roll daily,
//! see [`crate::sms::ledger`]); what is left is the intent of an event that never got an answer, for at
//! most the topic's 7-day retention.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::phone::mask;
use super::twilio::ListedMessage;

/// How far Twilio's clock may lag this worker's: a message created up to this long before the intent's
/// second still counts as the intent's. Hosts kept by NTP differ by milliseconds; a message's
/// `date_created` has whole seconds, which the look-up allows for on top of this.
pub const CLOCK_ALLOWANCE: Duration = Duration::from_secs(2);

/// The ledger's record that a message went out, and what the event's result says about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// The message's id.
    pub sid: String,
    /// The recipient, masked.
    pub to_masked: String,
}

/// The ledger's record that a message is about to be sent: what a later delivery of the event needs to
/// find it at Twilio should the attempt not come back.
///
/// Holds the recipient unmasked and the body, personal data, on purpose: see the module's doc.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The recipient, E.164, in full.
    pub to: String,
    /// The sender, as sent.
    pub from: String,
    /// The message, as sent.
    pub body: String,
    /// When the attempt began, milliseconds since the Unix epoch, taken just before the send.
    pub at_ms: i64,
}

impl std::fmt::Debug for Intent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intent")
            .field("to", &mask(&self.to))
            .field("from", &self.from)
            .field("body_chars", &self.body.chars().count())
            .field("at_ms", &self.at_ms)
            .finish()
    }
}

impl Intent {
    /// The intent to send `body` from `from` to `to` now.
    pub fn now(to: &str, from: &str, body: &str) -> Self {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX));
        Self {
            to: to.to_owned(),
            from: from.to_owned(),
            body: body.to_owned(),
            at_ms,
        }
    }

    /// Whether this intent is for the same message: the same recipient, sender and text.
    pub fn is_for(&self, to: &str, from: &str, body: &str) -> bool {
        self.to == to && self.from == from && self.body == body
    }

    /// The earliest creation time of a message that can be this intent's: the intent's time down to its
    /// whole second (Twilio's resolution), less [`CLOCK_ALLOWANCE`].
    pub fn earliest_created(&self) -> OffsetDateTime {
        let second = self.at_ms.div_euclid(1000);
        let allowance = i64::try_from(CLOCK_ALLOWANCE.as_secs()).unwrap_or(i64::MAX);
        OffsetDateTime::from_unix_timestamp(second.saturating_sub(allowance))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Whether Twilio's `message` is the one this intent was about to send.
    pub fn matches(&self, message: &ListedMessage) -> bool {
        message.to == self.to
            && message.from == self.from
            && message.body == self.body
            && message.date_created >= self.earliest_created()
    }
}

/// What the ledger holds for an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// The message went out.
    Sent(Sent),
    /// An attempt was about to send, and its outcome is not known.
    Intent(Intent),
}

/// The tagged forms (so far only the intent): `{"state":"intent",...}`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum Tagged {
    Intent(Intent),
}

impl Entry {
    /// Reads a ledger record in any form a worker writes (see the module's doc).
    ///
    /// # Errors
    ///
    /// When it is not JSON, or not one of the forms.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let value: Value = serde_json::from_slice(bytes)?;
        if value.get("state").and_then(Value::as_str) == Some("intent") {
            let Tagged::Intent(intent) = serde_json::from_value(value)?;
            Ok(Self::Intent(intent))
        } else {
            serde_json::from_value(value).map(Self::Sent)
        }
    }

    /// The record's bytes, as the ledger topic keeps them.
    pub fn to_json(&self) -> Vec<u8> {
        let written = match self {
            Self::Sent(sent) => serde_json::to_vec(sent),
            Self::Intent(intent) => serde_json::to_vec(&Tagged::Intent(intent.clone())),
        };
        // Strings and an integer: serialising cannot fail.
        written.unwrap_or_default()
    }
}

/// What a delivery of an event does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send the message (after recording the intent).
    Send,
    /// It was sent and recorded: answer the recorded outcome, send nothing.
    Answer(Sent),
    /// Twilio has the message an earlier attempt did not record: record it as sent, answer it, send
    /// nothing.
    Recover(Sent),
}

/// What to do with a delivery of an event, from what the ledger holds for it and, when that is an intent
/// only, the messages Twilio lists to the intent's recipient from its sender since its day (`listed`,
/// ignored otherwise):
///
/// | ledger | Twilio lists | decision |
/// | --- | --- | --- |
/// | nothing | (not asked) | [`Decision::Send`] |
/// | sent | (not asked) | [`Decision::Answer`] the record |
/// | intent | a message it [`Intent::matches`] | [`Decision::Recover`] it (the oldest, if several) |
/// | intent | no such message | [`Decision::Send`] |
///
/// A message matches when it goes to the intent's `to`, from its `from`, with its `body`, and was created
/// at or after [`Intent::earliest_created`].
pub fn decide(entry: Option<&Entry>, listed: &[ListedMessage]) -> Decision {
    match entry {
        None => Decision::Send,
        Some(Entry::Sent(sent)) => Decision::Answer(sent.clone()),
        Some(Entry::Intent(intent)) => listed
            .iter()
            .filter(|message| intent.matches(message))
            .min_by_key(|message| message.date_created)
            .map_or(Decision::Send, |message| {
                Decision::Recover(Sent {
                    sid: message.sid.clone(),
                    to_masked: mask(&intent.to),
                })
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_0_9_record_reads_as_sent_and_is_still_written_byte_for_byte() {
        let released = br#"{"sid":"SM0123456789abcdef0123456789abcdef","to_masked":"+*********678"}"#;
        let sent = Sent {
            sid: "SM0123456789abcdef0123456789abcdef".to_owned(),
            to_masked: "+*********678".to_owned(),
        };
        assert_eq!(Entry::from_json(released).unwrap(), Entry::Sent(sent.clone()));
        assert_eq!(Entry::Sent(sent).to_json(), released.to_vec());
    }

    #[test]
    fn the_intent_record_round_trips_and_a_0_9_reader_cannot_take_it_for_sent() {
        let intent = Intent {
            to: "+254712345678".to_owned(),
            from: "SURVEYS".to_owned(),
            body: "Thank you Wanjiru, we received your response r-9.".to_owned(),
            at_ms: 1_795_165_200_123,
        };
        let bytes = Entry::Intent(intent.clone()).to_json();
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            concat!(
                r#"{"state":"intent","to":"+254712345678","from":"SURVEYS","#,
                r#""body":"Thank you Wanjiru, we received your response r-9.","at_ms":1795165200123}"#
            )
        );
        assert_eq!(Entry::from_json(&bytes).unwrap(), Entry::Intent(intent.clone()));
        // What a 0.9 worker does with it: `Sent` is all it knows.
        assert!(serde_json::from_slice::<Sent>(&bytes).is_err());
        assert!(!format!("{intent:?}").contains("712345"));
        assert!(Entry::from_json(b"{\"state\":\"intent\"}").is_err());
        assert!(Entry::from_json(b"not json").is_err());
    }

    #[test]
    fn the_earliest_creation_allows_for_whole_seconds_and_the_clock() {
        let intent = Intent {
            at_ms: 1_795_165_200_900,
            ..Intent::now("+254712345678", "SURVEYS", "Hi")
        };
        assert_eq!(intent.earliest_created().unix_timestamp(), 1_795_165_200 - 2);
    }
}
