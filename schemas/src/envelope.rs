//! The core event envelope: CloudEvents 1.0 in the Kafka protocol binding's binary mode.
//!
//! ```text
//! key      = team id (UTF-8)
//! headers  = ce_specversion "1.0", ce_id, ce_source, ce_type, [ce_time], [ce_subject], [ce_teamid],
//!            [traceparent], content-type "application/avro" | "application/json"
//! value    = the event data
//! ```
//!
//! [`parse`] reads only headers and the key, never the value, so routing never pays for decoding; it
//! borrows from the record and allocates nothing on success.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::dead_letter::{Reason, Rejection};
use crate::ids::check_team_id;

/// `ce_specversion`: always `1.0`.
pub const SPECVERSION: &str = "ce_specversion";
/// `ce_id`: unique per event; plugins use it as the idempotency key.
pub const ID: &str = "ce_id";
/// `ce_source`: URI-reference of the producing system.
pub const SOURCE: &str = "ce_source";
/// `ce_type`: the event type, e.g. `response.submitted`.
pub const TYPE: &str = "ce_type";
/// `ce_time`: optional RFC 3339 time of the occurrence.
pub const TIME: &str = "ce_time";
/// `ce_subject`: optional; the form id for the v1 types.
pub const SUBJECT: &str = "ce_subject";
/// `ce_teamid`: optional extension; when present it must equal the key.
pub const TEAMID: &str = "ce_teamid";
/// `traceparent`: W3C trace context, passed through untouched.
pub const TRACEPARENT: &str = "traceparent";
/// `content-type`: the data content type.
pub const CONTENT_TYPE: &str = "content-type";
/// The only CloudEvents version of the contract.
pub const SPECVERSION_1_0: &str = "1.0";

/// The data content types of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentType {
    /// `application/avro`: Avro single-object encoding of the type's schema.
    Avro,
    /// `application/json`: a plain JSON object following the same schema, unions as bare values.
    Json,
}

impl ContentType {
    /// The media type as written in the `content-type` header.
    pub const fn media_type(self) -> &'static str {
        match self {
            ContentType::Avro => "application/avro",
            ContentType::Json => "application/json",
        }
    }

    /// Parses a `content-type` value; parameters (`; charset=utf-8`) are allowed and ignored, the media
    /// type is case-insensitive.
    pub fn parse(value: &str) -> Option<Self> {
        let media = value.split(';').next().unwrap_or_default().trim();
        if media.eq_ignore_ascii_case("application/avro") {
            Some(ContentType::Avro)
        } else if media.eq_ignore_ascii_case("application/json") {
            Some(ContentType::Json)
        } else {
            None
        }
    }
}

/// The routing-relevant attributes of a core event, borrowed from the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The key: the team that owns the event.
    pub team_id: &'a str,
    /// `ce_id`.
    pub id: &'a str,
    /// `ce_source`.
    pub source: &'a str,
    /// `ce_type`.
    pub event_type: &'a str,
    /// `content-type`.
    pub content_type: ContentType,
    /// `ce_subject`, if present.
    pub subject: Option<&'a str>,
    /// `ce_time`, if present (already checked to be RFC 3339).
    pub time: Option<&'a str>,
}

/// Header slots [`parse`] looks at, in the order their absence or malformation is reported.
const REQUIRED: [&str; 5] = [SPECVERSION, ID, SOURCE, TYPE, CONTENT_TYPE];
const OPTIONAL: [&str; 3] = [TIME, SUBJECT, TEAMID];

/// A header that was seen: `None` inside means the header had a null value.
type Slot<'a> = Option<Option<&'a [u8]>>;

/// Checks a core event's key and headers against the contract.
///
/// `headers` yields `(name, value)` pairs in record order; a `None` value is a header with a null value.
pub fn parse<'a, I>(key: Option<&'a [u8]>, headers: I) -> Result<Envelope<'a>, Rejection>
where
    I: IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
{
    let key = key.ok_or_else(|| {
        Rejection::new(
            Reason::MissingKey,
            "the record has no key; it must be the team id",
        )
    })?;
    check_team_id(key).map_err(|error| {
        Rejection::new(
            Reason::InvalidKey,
            format!("the key is not a valid team id: {error}"),
        )
    })?;
    // check_team_id admits ASCII only, so this cannot fail; no unsafe needed.
    let team_id =
        std::str::from_utf8(key).map_err(|_| Rejection::new(Reason::InvalidKey, "the key is not UTF-8"))?;

    let mut required: [Slot<'a>; 5] = [None; 5];
    let mut optional: [Slot<'a>; 3] = [None; 3];
    for (name, value) in headers {
        let slot = if let Some(i) = REQUIRED.iter().position(|n| *n == name) {
            &mut required[i]
        } else if let Some(i) = OPTIONAL.iter().position(|n| *n == name) {
            &mut optional[i]
        } else {
            continue;
        };
        if slot.is_some() {
            return Err(Rejection::new(
                Reason::InvalidHeader,
                format!("the header {name} appears more than once"),
            ));
        }
        *slot = Some(value);
    }

    let mut text: [&'a str; 5] = [""; 5];
    for (i, name) in REQUIRED.iter().enumerate() {
        let value = required[i].ok_or_else(|| {
            Rejection::new(
                Reason::MissingHeader,
                format!("the required header {name} is missing"),
            )
        })?;
        text[i] = header_text(name, value)?;
    }
    let [specversion, id, source, event_type, content_type] = text;
    if specversion != SPECVERSION_1_0 {
        return Err(Rejection::new(
            Reason::InvalidHeader,
            format!("{SPECVERSION} is {specversion:?}; only \"1.0\" is supported"),
        ));
    }

    let mut extra: [Option<&'a str>; 3] = [None; 3];
    for (i, name) in OPTIONAL.iter().enumerate() {
        if let Some(value) = optional[i] {
            extra[i] = Some(header_text(name, value)?);
        }
    }
    let [time, subject, teamid] = extra;
    if let Some(time) = time
        && OffsetDateTime::parse(time, &Rfc3339).is_err()
    {
        return Err(Rejection::new(
            Reason::InvalidHeader,
            format!("{TIME} {time:?} is not an RFC 3339 time"),
        ));
    }
    if let Some(teamid) = teamid
        && teamid != team_id
    {
        return Err(Rejection::new(
            Reason::TeamidMismatch,
            format!("{TEAMID} {teamid:?} differs from the record key {team_id:?}"),
        ));
    }
    let content_type = ContentType::parse(content_type).ok_or_else(|| {
        Rejection::new(
            Reason::UnsupportedContentType,
            format!("content-type {content_type:?} is not application/avro or application/json"),
        )
    })?;

    Ok(Envelope {
        team_id,
        id,
        source,
        event_type,
        content_type,
        subject,
        time,
    })
}

fn header_text<'a>(name: &str, value: Option<&'a [u8]>) -> Result<&'a str, Rejection> {
    let value = value.ok_or_else(|| {
        Rejection::new(
            Reason::InvalidHeader,
            format!("the header {name} has a null value"),
        )
    })?;
    let text = std::str::from_utf8(value)
        .map_err(|_| Rejection::new(Reason::InvalidHeader, format!("the header {name} is not UTF-8")))?;
    if text.is_empty() {
        return Err(Rejection::new(
            Reason::InvalidHeader,
            format!("the header {name} is empty"),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Vec<(&'static str, Option<&'static [u8]>)> {
        vec![
            (SPECVERSION, Some(b"1.0")),
            (ID, Some(b"evt-1")),
            (SOURCE, Some(b"/collect/web")),
            (TYPE, Some(b"response.submitted")),
            (CONTENT_TYPE, Some(b"application/avro")),
            (TIME, Some(b"2026-11-22T10:00:00Z")),
            (SUBJECT, Some(b"form-9")),
            (TEAMID, Some(b"acme")),
            (
                TRACEPARENT,
                Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ),
        ]
    }

    fn reason(key: Option<&[u8]>, headers: Vec<(&'static str, Option<&'static [u8]>)>) -> Reason {
        parse(key, headers).unwrap_err().reason
    }

    fn without(name: &str) -> Vec<(&'static str, Option<&'static [u8]>)> {
        good().into_iter().filter(|(n, _)| *n != name).collect()
    }

    fn with(name: &'static str, value: Option<&'static [u8]>) -> Vec<(&'static str, Option<&'static [u8]>)> {
        let mut headers = without(name);
        headers.push((name, value));
        headers
    }

    #[test]
    fn accepts_a_complete_envelope() {
        let envelope = parse(Some(b"acme"), good()).unwrap();
        assert_eq!(
            envelope,
            Envelope {
                team_id: "acme",
                id: "evt-1",
                source: "/collect/web",
                event_type: "response.submitted",
                content_type: ContentType::Avro,
                subject: Some("form-9"),
                time: Some("2026-11-22T10:00:00Z"),
            }
        );
        let minimal: Vec<_> = good().into_iter().take(5).collect();
        assert!(parse(Some(b"acme"), minimal).is_ok());
    }

    #[test]
    fn key_checks_come_first() {
        assert_eq!(reason(None, vec![]), Reason::MissingKey);
        assert_eq!(reason(Some(b""), good()), Reason::InvalidKey);
        assert_eq!(reason(Some(b"acme/1"), good()), Reason::InvalidKey);
        assert_eq!(reason(Some(&[0xff, 0xfe]), good()), Reason::InvalidKey);
        assert_eq!(reason(Some(&[b'a'; 129]), good()), Reason::InvalidKey);
    }

    #[test]
    fn each_required_header_is_required() {
        for name in REQUIRED {
            assert_eq!(
                reason(Some(b"acme"), without(name)),
                Reason::MissingHeader,
                "{name}"
            );
            assert_eq!(
                reason(Some(b"acme"), with(name, Some(b""))),
                Reason::InvalidHeader,
                "{name}"
            );
            assert_eq!(
                reason(Some(b"acme"), with(name, None)),
                Reason::InvalidHeader,
                "{name}"
            );
            assert_eq!(
                reason(Some(b"acme"), with(name, Some(&[0xc3, 0x28]))),
                Reason::InvalidHeader,
                "{name}"
            );
        }
    }

    #[test]
    fn malformed_headers() {
        assert_eq!(
            reason(Some(b"acme"), with(SPECVERSION, Some(b"0.3"))),
            Reason::InvalidHeader
        );
        assert_eq!(
            reason(Some(b"acme"), with(TIME, Some(b"yesterday"))),
            Reason::InvalidHeader
        );
        let mut twice = good();
        twice.push((ID, Some(b"evt-2")));
        assert_eq!(reason(Some(b"acme"), twice), Reason::InvalidHeader);
    }

    #[test]
    fn team_id_must_match_the_key() {
        assert_eq!(reason(Some(b"other"), good()), Reason::TeamidMismatch);
        assert!(parse(Some(b"other"), without(TEAMID)).is_ok());
    }

    #[test]
    fn content_types() {
        assert_eq!(
            ContentType::parse("application/json; charset=utf-8"),
            Some(ContentType::Json)
        );
        assert_eq!(ContentType::parse("Application/AVRO"), Some(ContentType::Avro));
        assert_eq!(ContentType::parse("text/plain"), None);
        assert_eq!(
            reason(Some(b"acme"), with(CONTENT_TYPE, Some(b"application/xml"))),
            Reason::UnsupportedContentType
        );
    }

    #[test]
    fn unrelated_headers_are_ignored_even_when_repeated() {
        let mut headers = good();
        headers.push(("x-custom", None));
        headers.push(("x-custom", Some(&[0xff])));
        assert!(parse(Some(b"acme"), headers).is_ok());
    }
}
