//! PuTTY's host-CA Validity expressions as found in a user's settings:
//! parsing never panics, and what Jaunt writes parses back to the same
//! hosts.
#![no_main]

use jaunt_putty::validity::{format, legacy_match_hosts, merge, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = legacy_match_hosts(text);
    let Ok(hosts) = parse("JauntHostCA-fuzz", text) else {
        return;
    };
    let written = format(&hosts);
    let again = parse("JauntHostCA-fuzz", &written).expect("what Jaunt writes parses");
    assert_eq!(again, hosts, "{text:?} -> {written:?}");
    let merged = merge(&hosts, &["*.example".to_string()]);
    parse("JauntHostCA-fuzz", &format(&merged)).expect("a merged expression parses");
});
