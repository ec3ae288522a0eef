//! PuTTY key files as `jsh puttyconfig` writes them, for any key and
//! comment: the file reads back (by PuTTY's layout) to the same public
//! key, and its MAC verifies; a comment that would break the layout is
//! refused instead.
#![no_main]

use base64::Engine;
use jaunt_ca::ssh_key::{PrivateKey, private::Ed25519Keypair};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 32 {
        return;
    }
    let (seed, comment) = data.split_at(32);
    let Ok(comment) = std::str::from_utf8(comment) else {
        return;
    };
    let pair = Ed25519Keypair::from_seed(seed.try_into().expect("32 bytes"));
    let Ok(key) = PrivateKey::new(pair.into(), comment) else {
        return;
    };
    let Ok(ppk) = jaunt_putty::to_ppk_v3(&key) else {
        assert!(comment.chars().any(char::is_control), "refused {comment:?}");
        return;
    };
    let text = ppk.expose();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "PuTTY-User-Key-File-3: ssh-ed25519");
    assert_eq!(lines[1], "Encryption: none");
    assert_eq!(lines[2], format!("Comment: {comment}"));
    let n: usize = lines[3]
        .strip_prefix("Public-Lines: ")
        .expect("public lines")
        .parse()
        .expect("n");
    let public: String = lines[4..4 + n].concat();
    let blob = base64::engine::general_purpose::STANDARD
        .decode(&public)
        .expect("base64");
    assert_eq!(blob, key.public_key().to_bytes().expect("encode"));
    let m: usize = lines[4 + n]
        .strip_prefix("Private-Lines: ")
        .expect("private lines")
        .parse()
        .expect("m");
    assert!(lines[5 + n + m].starts_with("Private-MAC: "));
    assert_eq!(lines.len(), 6 + n + m, "{text}");
});
