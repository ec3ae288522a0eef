//! PuTTY private key files, version 3, unencrypted: the format PuTTY 0.75+
//! and WinSCP read. Layout and MAC (HMAC-SHA-256 with an empty key over the
//! algorithm, encryption, comment, public blob and private blob, each as an
//! SSH string) match `puttygen -O private` byte for byte.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use jaunt_types::Secret;
use sha2::Sha256;
use ssh_key::PrivateKey;
use ssh_key::private::KeypairData;

#[derive(Debug, thiserror::Error)]
pub enum PpkError {
    #[error("PPK export supports Ed25519 keys only, not {0}")]
    Unsupported(String),
    #[error("cannot encode the public key: {0}")]
    Encode(#[from] ssh_key::Error),
    /// The comment is one line of the file: a line break would end it
    /// and start a header of the comment's choosing.
    #[error("a key comment for a PPK file must be one line of UTF-8 without control characters")]
    Comment,
}

fn put_string(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    buf.extend_from_slice(bytes);
}

/// Base64 in lines of 64 characters, as PuTTY writes it.
fn lines(bytes: &[u8]) -> Vec<String> {
    let text = STANDARD.encode(bytes);
    text.as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect()
}

/// Encodes `key` as an unencrypted PPK v3 file with the key's comment.
pub fn to_ppk_v3(key: &PrivateKey) -> Result<Secret<String>, PpkError> {
    let KeypairData::Ed25519(pair) = key.key_data() else {
        return Err(PpkError::Unsupported(key.algorithm().to_string()));
    };
    let comment_text = std::str::from_utf8(key.comment().as_bytes())
        .ok()
        .filter(|c| !c.chars().any(char::is_control))
        .ok_or(PpkError::Comment)?;
    let algorithm = "ssh-ed25519";
    let encryption = "none";
    let comment = key.comment().as_bytes();
    let public_blob = key.public_key().to_bytes()?;
    let mut private_blob = Vec::with_capacity(36);
    put_string(&mut private_blob, pair.private.as_ref());

    let mut mac_input = Vec::new();
    put_string(&mut mac_input, algorithm.as_bytes());
    put_string(&mut mac_input, encryption.as_bytes());
    put_string(&mut mac_input, comment);
    put_string(&mut mac_input, &public_blob);
    put_string(&mut mac_input, &private_blob);
    // An unencrypted v3 file is authenticated with an empty MAC key; HMAC
    // accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&[])
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(&mac_input);
    let mac_hex = hex::encode(mac.finalize().into_bytes());

    let public_lines = lines(&public_blob);
    let private_lines = lines(&private_blob);
    let mut out = String::new();
    out.push_str(&format!("PuTTY-User-Key-File-3: {algorithm}\n"));
    out.push_str(&format!("Encryption: {encryption}\n"));
    out.push_str(&format!("Comment: {comment_text}\n"));
    out.push_str(&format!("Public-Lines: {}\n", public_lines.len()));
    for l in &public_lines {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(&format!("Private-Lines: {}\n", private_lines.len()));
    for l in &private_lines {
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(&format!("Private-MAC: {mac_hex}\n"));
    Ok(Secret::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors made with OpenSSH's ssh-keygen and converted by
    /// `puttygen KEY -O private -o KEY.ppk` (PuTTY 0.78); key b's seed has
    /// its high bit set, which PuTTY still writes as a plain 32-byte string.
    #[test]
    fn matches_puttygen_byte_for_byte() {
        for (key, ppk) in [
            (
                include_str!("../testdata/ed25519-a"),
                include_str!("../testdata/ed25519-a.ppk"),
            ),
            (
                include_str!("../testdata/ed25519-b"),
                include_str!("../testdata/ed25519-b.ppk"),
            ),
        ] {
            let key = PrivateKey::from_openssh(key).expect("test key");
            let ours = to_ppk_v3(&key).expect("encode");
            assert_eq!(ours.expose(), ppk);
        }
    }

    /// A comment with a line break would end its line and start a header
    /// of its own ("Public-Lines: ..."): refused, not written.
    #[test]
    fn a_comment_that_is_not_one_line_is_refused() {
        let mut key =
            PrivateKey::from_openssh(include_str!("../testdata/ed25519-a")).expect("test key");
        for bad in ["a\nPublic-Lines: 0", "a\rb", "tab\there", "nul\0"] {
            key.set_comment(bad);
            assert!(matches!(to_ppk_v3(&key), Err(PpkError::Comment)), "{bad:?}");
        }
        key.set_comment("alice@example (jsh) é");
        assert!(to_ppk_v3(&key).is_ok());
    }
}
