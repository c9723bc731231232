//! `switchyard.plugins` records: the key is the input up to the first `\n`, the value the rest.
//!
//! Invariants: an accepted manifest's id is the key, it passes its own check again, and its JSON form
//! parses back to an equal manifest; a rejected one has a message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_fuzz::split_once;
use switchyard_schemas::control::{PluginManifest, parse_plugin_key};

fuzz_target!(|data: &[u8]| {
    let (key, value) = split_once(data, b'\n');
    let value = value.unwrap_or_default();
    let key_checked = parse_plugin_key(key);
    let key = String::from_utf8_lossy(key);
    let manifest = match PluginManifest::parse(&key, value) {
        Ok(manifest) => manifest,
        Err(error) => {
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    assert_eq!(manifest.id, key);
    assert_eq!(key_checked.ok(), Some(manifest.id.as_str()));
    manifest
        .check(&key)
        .expect("an accepted manifest passes its check again");
    let written = serde_json::to_vec(&manifest).expect("a manifest serializes");
    let back = PluginManifest::parse(&key, &written).expect("a written manifest parses");
    assert_eq!(back, manifest);
});
