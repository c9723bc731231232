//! `switchyard.enablements` records: the key is the input up to the first `\n`, the value the rest.
//!
//! Invariants: an accepted enablement's key is the record key and splits into its team and plugin;
//! its JSON form parses back to an equal enablement; a rejected one has a message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_fuzz::split_once;
use switchyard_schemas::control::{Enablement, parse_enablement_key};

fuzz_target!(|data: &[u8]| {
    let (key, value) = split_once(data, b'\n');
    let value = value.unwrap_or_default();
    let key_parts = parse_enablement_key(key);
    let enablement = match Enablement::parse(key, value) {
        Ok(enablement) => enablement,
        Err(error) => {
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    assert_eq!(enablement.key().as_bytes(), key);
    assert_eq!(
        key_parts.ok(),
        Some((enablement.team_id.as_str(), enablement.plugin_id.as_str()))
    );
    let written = serde_json::to_vec(&enablement).expect("an enablement serializes");
    let back = Enablement::parse(key, &written).expect("a written enablement parses");
    assert_eq!(back, enablement);
});
