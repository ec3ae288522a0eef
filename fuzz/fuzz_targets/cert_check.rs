//! The node's user-certificate check on hostile certificates: arbitrary
//! bytes, and (first byte 0) a valid certificate of this CA with the rest
//! of the input XORed over it, so most inputs are near-valid. Never a
//! panic; and whatever it accepts is signed by the CA, for the login, and
//! inside its validity window.
#![no_main]

use jaunt_ca::ssh_key::{Certificate, HashAlg, PrivateKey, private::Ed25519Keypair};
use jaunt_ca::{SshCa, UserCertCheck, UserCertRequest, check_user_cert};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const NOW: u64 = 1_800_000_000;

struct Fixture {
    ca: jaunt_ca::ssh_key::public::KeyData,
    valid: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let key = |seed: u8| {
            PrivateKey::new(Ed25519Keypair::from_seed(&[seed; 32]).into(), "fuzz").expect("key")
        };
        let ca = SshCa::from_openssh(key(1).to_openssh(Default::default()).expect("pem").as_str())
            .expect("ca");
        let user = key(2);
        let cert = ca
            .sign_user_cert(&UserCertRequest {
                public_key: user.public_key().clone(),
                user: "alice".into(),
                principals: vec!["root".into(), "ubuntu".into()],
                now: NOW - 60,
                ttl_secs: 3600,
                permit_pty: true,
                permit_port_forwarding: true,
                permit_agent_forwarding: false,
                source_address: Some("10.0.0.0/8".into()),
            })
            .expect("sign");
        Fixture {
            ca: ca.public_key().key_data().clone(),
            valid: cert.to_bytes().expect("encode"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let bytes: Vec<u8> = match data.split_first() {
        Some((0, mask)) => f
            .valid
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask.get(i).copied().unwrap_or(0))
            .collect(),
        _ => data.to_vec(),
    };
    let Ok(cert) = Certificate::from_bytes(&bytes) else {
        return;
    };
    for (login, ip) in [
        ("root", "10.1.2.3"),
        ("admin", "10.1.2.3"),
        ("root", "192.0.2.1"),
    ] {
        let check = UserCertCheck {
            user_cas: std::slice::from_ref(&f.ca),
            trusted: &[],
            login,
            now: NOW,
            client_ip: ip.parse().ok(),
        };
        if let Ok(id) = check_user_cert(&cert, &check) {
            assert_eq!(cert.signature_key(), &f.ca, "accepted another signer");
            assert!(cert.valid_principals().iter().any(|p| p == login));
            assert!(cert.valid_after() <= NOW && NOW < cert.valid_before());
            assert_eq!(id.user, cert.key_id());
            let _ = cert.signature_key().fingerprint(HashAlg::Sha256);
        }
    }
});
