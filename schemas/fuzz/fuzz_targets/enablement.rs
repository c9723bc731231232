//! `switchyard.enablements` records: the key is the input up to the first `\n`, the value the rest.
//!
//! Invariants: an accepted enablement's key is the record key (in its one spelling: two parts for the
//! default installation, three for any other) and splits into its team, plugin and installation; a v1
//! reader's `parse_enablement_key` accepts exactly the default installation's keys; its JSON form parses
//! back to an equal enablement; a rejected one has a message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_fuzz::split_once;
use switchyard_schemas::control::{Enablement, parse_enablement_key, parse_installation_key};

fuzz_target!(|data: &[u8]| {
    let (key, value) = split_once(data, b'\n');
    let value = value.unwrap_or_default();
    let v1_key_parts = parse_enablement_key(key);
    let key_parts = parse_installation_key(key);
    let enablement = match Enablement::parse(key, value) {
        Ok(enablement) => enablement,
        Err(error) => {
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    assert_eq!(enablement.key().as_bytes(), key);
    let parts = key_parts.expect("an accepted enablement's key parses");
    assert_eq!(
        (parts.team, parts.plugin, parts.installation),
        (
            enablement.team_id.as_str(),
            enablement.plugin_id.as_str(),
            enablement.installation()
        )
    );
    assert_eq!(
        v1_key_parts.ok(),
        parts.is_default().then_some((parts.team, parts.plugin))
    );
    let written = serde_json::to_vec(&enablement).expect("an enablement serializes");
    let back = Enablement::parse(key, &written).expect("a written enablement parses");
    assert_eq!(back, enablement);
});
