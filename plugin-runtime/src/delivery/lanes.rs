//! Which lane an event runs in, from the plugin's `ordering` (contract section 7.1): the events of one lane
//! run one after the other, different lanes concurrently (see [`super::schedule`]).
//!
//! | `ordering` | lane of `response.*` | lane of `form.*` | other types |
//! | --- | --- | --- | --- |
//! | `team` (default) | the team | the team | the team |
//! | `form` | the form | the form | the form, else the team |
//! | `response` | the response | the form | the form, else the team |
//! | `none` | its own | its own | its own |
//!
//! The form is `ce_subject` where present, else the payload's form id (`response.form_id`, `form.id`); the
//! response is the payload's `response.id`. An event without the key its ordering asks for falls back to the
//! next coarser lane (response → form → team), never to none.

use std::borrow::Cow;

use serde_json::Value;
use switchyard_schemas::control::Ordering;

use crate::delivery::schedule::LaneId;
use crate::plugin::EventMeta;

/// The lane of an event with attributes `meta` under `ordering`; `data` gives the event's data (or its ids),
/// asked for only by the orderings that read it.
pub fn lane<'a>(ordering: &Ordering, meta: &EventMeta, data: impl FnOnce() -> Cow<'a, Value>) -> LaneId {
    let key = match ordering {
        Ordering::None => return LaneId::Free,
        Ordering::Team | Ordering::Unknown(_) => None,
        Ordering::Form => form(meta, &data()).map(|form| format!("form:{form}")),
        Ordering::Response => {
            let data = data();
            response(meta, &data)
                .map(|response| format!("response:{response}"))
                .or_else(|| form(meta, &data).map(|form| format!("form:{form}")))
        }
    };
    key.map_or(LaneId::Team, LaneId::Key)
}

fn form<'a>(meta: &'a EventMeta, data: &'a Value) -> Option<&'a str> {
    meta.subject
        .as_deref()
        .or_else(|| data.pointer("/response/form_id")?.as_str())
        .or_else(|| data.pointer("/form/id")?.as_str())
        .filter(|form| !form.is_empty())
}

fn response<'a>(meta: &EventMeta, data: &'a Value) -> Option<&'a str> {
    if !meta.event_type.starts_with("response.") {
        return None;
    }
    data.pointer("/response/id")?.as_str().filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn meta(event_type: &str, subject: Option<&str>) -> EventMeta {
        EventMeta {
            id: "e-1".into(),
            source: "/forms".into(),
            event_type: event_type.into(),
            time: None,
            subject: subject.map(str::to_owned),
            team_id: "acme".into(),
            installation: "default".into(),
            backfill: None,
        }
    }

    fn key(k: &str) -> LaneId {
        LaneId::Key(k.to_owned())
    }

    #[test]
    fn each_ordering_names_its_lane() {
        let submitted = meta("response.submitted", Some("f-1"));
        let response = json!({"response": {"id": "r-9", "form_id": "f-1"}});
        let created = meta("form.created", Some("f-2"));
        let form = json!({"form": {"id": "f-2"}});
        let cases = [
            (Ordering::Team, LaneId::Team, LaneId::Team),
            (Ordering::Form, key("form:f-1"), key("form:f-2")),
            (Ordering::Response, key("response:r-9"), key("form:f-2")),
            (Ordering::None, LaneId::Free, LaneId::Free),
            (Ordering::Unknown("later".into()), LaneId::Team, LaneId::Team),
        ];
        for (ordering, of_response, of_form) in cases {
            assert_eq!(
                lane(&ordering, &submitted, || Cow::Borrowed(&response)),
                of_response,
                "{ordering:?}"
            );
            assert_eq!(
                lane(&ordering, &created, || Cow::Borrowed(&form)),
                of_form,
                "{ordering:?}"
            );
        }
    }

    #[test]
    fn missing_keys_fall_back_to_a_coarser_lane() {
        let no_subject = meta("response.submitted", None);
        let response = json!({"response": {"form_id": "f-1"}});
        assert_eq!(
            lane(&Ordering::Response, &no_subject, || Cow::Borrowed(&response)),
            key("form:f-1"),
            "no response id: the form of the payload"
        );
        let unknown_type = meta("survey.closed", None);
        assert_eq!(
            lane(&Ordering::Response, &unknown_type, || Cow::Owned(json!({}))),
            LaneId::Team
        );
        assert_eq!(
            lane(&Ordering::Form, &unknown_type, || Cow::Owned(json!({}))),
            LaneId::Team
        );
        let with_subject = meta("survey.closed", Some("f-7"));
        assert_eq!(
            lane(&Ordering::Response, &with_subject, || Cow::Owned(json!({}))),
            key("form:f-7")
        );
    }
}
