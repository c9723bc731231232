//! `switchyardctl` commands that need no registry, run as the built binary: `filter test` evaluates an
//! installation filter against a sample event file and answers with its verdict and exit status.

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;
use switchyard_tests::registries::ctl_binary;

/// A sample `response.submitted` event in the CloudEvents JSON structured format, in a file of its own.
fn sample_event(name: &str) -> PathBuf {
    let event = json!({
        "specversion": "1.0", "id": "evt-1", "source": "/forms/f-b", "type": "response.submitted",
        "subject": "f-b", "time": "2026-11-22T09:55:00Z", "teamid": "acme", "channel": "web",
        "datacontenttype": "application/json",
        "data": {"response": {"id": "r-1", "form_id": "f-b",
                              "answers": {"q-city": {"choice": "nairobi"}, "q-score": {"number": 4}}}}
    });
    let path = std::env::temp_dir().join(format!(
        "switchyardctl-{name}-{}.json",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&path, event.to_string()).expect("write the sample event");
    path
}

/// Runs `switchyardctl filter test`: (exit status, stdout, stderr).
fn filter_test(filter: &str, event: &std::path::Path) -> (i32, String, String) {
    let output = Command::new(ctl_binary())
        .args(["filter", "test", "--filter", filter, "--event"])
        .arg(event)
        // No registry is called: an unreachable URL and no token change nothing.
        .env("SWITCHYARD_REGISTRY_URL", "http://127.0.0.1:1")
        .env_remove("SWITCHYARD_TOKEN")
        .output()
        .expect("run switchyardctl");
    (
        output.status.code().expect("an exit status"),
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    )
}

#[test]
fn filter_test_prints_the_verdict_and_exits_with_it() {
    let event = sample_event("filter-test");
    for (filter, status, stdout) in [
        (
            r#"data.response.answers["q-city"].choice == "nairobi" && subject == "f-b""#,
            0,
            "match",
        ),
        (r#"extensions.channel == "web" && teamid == "acme""#, 0, "match"),
        (
            r#"data.response.answers["q-city"].choice == "mombasa""#,
            1,
            "no_match",
        ),
        (
            r#"data.response.answers["q-age"].number > 18"#,
            1,
            r#"missing: data.response.answers["q-age"].number"#,
        ),
        (
            r#"extensions.region == "eu""#,
            1,
            r#"missing: extensions["region"]"#,
        ),
    ] {
        let (code, out, err) = filter_test(filter, &event);
        assert_eq!((code, out.as_str()), (status, stdout), "{filter}: {err}");
    }
    let (code, out, err) = filter_test(r#"data.response.answers["q-city"].choice + 1 == 2"#, &event);
    assert_eq!(code, 2, "{out} {err}");
    assert!(
        out.starts_with("error: "),
        "an evaluation error is a verdict: {out}"
    );

    // A filter that does not compile: the error with its position, on stderr, exit 2.
    let (code, out, err) = filter_test("data.response >= && true", &event);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(
        err.contains("the filter is invalid at line 1, column 18 (byte 17): "),
        "{err}"
    );
    // A file that cannot be read, or is no event.
    let (code, _, err) = filter_test("true", &std::env::temp_dir().join("no-such-event.json"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot read"), "{err}");
    let not_json = std::env::temp_dir().join(format!("switchyardctl-{}.json", uuid::Uuid::new_v4().simple()));
    std::fs::write(&not_json, "{nope").unwrap();
    let (code, _, err) = filter_test("true", &not_json);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not JSON"), "{err}");
    for path in [event, not_json] {
        let _ = std::fs::remove_file(path);
    }
}
