//! A node's audit delivery as auth reads it: a JSON batch of events with
//! whatever fields a hostile node chooses. Never a panic; a capped event
//! stays within the caps, and its text line holds no control character
//! (it goes to an administrator's terminal).
#![no_main]

use jaunt_types::audit::{self, AuditEvent, MAX_FIELDS, MAX_TEXT_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(events) = serde_json::from_slice::<Vec<AuditEvent>>(data) else {
        return;
    };
    for e in events {
        let _ = audit::node_may_write(&e.event);
        let _ = audit::code(&e.event, e.success);
        if let Some(action) = e.fields.get("action").and_then(|a| a.as_str()) {
            let _ = audit::sftp_code(action, e.success);
        }
        let capped = e.capped();
        assert!(capped.fields.len() <= MAX_FIELDS);
        for v in capped.fields.values() {
            if let Some(s) = v.as_str() {
                assert!(serde_json::to_string(s).expect("json").len() <= MAX_TEXT_BYTES + 2);
            }
        }
        let line = capped.text_line();
        assert!(!line.chars().any(char::is_control), "{line:?}");
    }
});
