//! The daemon's config file and role files as an administrator (or a
//! mistake) writes them: parsed and resolved without a panic, errors
//! naming the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match jaunt_config::FileConfig::parse(text, "jaunt.yaml") {
        Ok(file) => {
            let flags = jaunt_config::FileConfig::default();
            if let Err(e) = jaunt_config::Config::resolve(file, flags, "fuzzhost", "jaunt.yaml") {
                assert!(e.to_string().contains("jaunt.yaml"), "{e}");
            }
        }
        Err(e) => assert!(e.to_string().contains("jaunt.yaml"), "{e}"),
    }
    match jaunt_config::parse_resources(text, "roles.yaml") {
        Ok(roles) => {
            for r in roles {
                let _ = r.validate();
            }
        }
        Err(e) => assert!(e.to_string().contains("roles.yaml"), "{e}"),
    }
});
