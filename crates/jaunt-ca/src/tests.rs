use super::*;
use rustls_pki_types::pem::PemObject;
use ssh_key::certificate::CertType;

const NOW: u64 = 1_800_000_000;

fn user_request(ca_user: &str) -> UserCertRequest {
    let subject = SshCa::generate().expect("key");
    UserCertRequest {
        public_key: subject.public_key().clone(),
        user: ca_user.to_string(),
        principals: vec!["alice".into(), "ubuntu".into()],
        now: NOW,
        ttl_secs: 3600,
        permit_pty: true,
        permit_port_forwarding: true,
        permit_agent_forwarding: false,
        source_address: None,
        roles: Vec::new(),
        logins_trait: Vec::new(),
    }
}

#[test]
fn user_certificate_contents() {
    let ca = SshCa::generate().expect("ca");
    let req = user_request("alice");
    let cert = ca.sign_user_cert(&req).expect("sign");
    assert_eq!(cert.cert_type(), CertType::User);
    assert_eq!(cert.key_id(), "alice");
    assert_eq!(
        cert.valid_principals(),
        ["alice".to_string(), "ubuntu".to_string()]
    );
    assert_eq!(cert.valid_after(), NOW - CLOCK_SKEW_SECS);
    assert_eq!(cert.valid_before(), NOW + 3600);
    let ext: Vec<&String> = cert.extensions().keys().collect();
    assert_eq!(ext, ["permit-port-forwarding", "permit-pty"]);
    assert!(cert.critical_options().is_empty());
    assert_eq!(cert.public_key(), req.public_key.key_data());
    assert_eq!(cert.signature_key(), ca.public_key().key_data());
    // It verifies against this CA and no other.
    let fp = ca.public_key().fingerprint(ssh_key::HashAlg::Sha256);
    cert.validate_at(NOW, [&fp]).expect("valid now");
    assert!(
        cert.validate_at(NOW + 7200, [&fp]).is_err(),
        "expired later"
    );
    let other = SshCa::generate().expect("other");
    let other_fp = other.public_key().fingerprint(ssh_key::HashAlg::Sha256);
    assert!(cert.validate_at(NOW, [&other_fp]).is_err());
}

#[test]
fn options_and_refusals() {
    let ca = SshCa::generate().expect("ca");
    let mut req = user_request("bob");
    req.permit_agent_forwarding = true;
    req.permit_port_forwarding = false;
    req.source_address = Some("127.0.0.1/32".into());
    let cert = ca.sign_user_cert(&req).expect("sign");
    let ext: Vec<&String> = cert.extensions().keys().collect();
    assert_eq!(ext, ["permit-agent-forwarding", "permit-pty"]);
    assert_eq!(
        cert.critical_options()
            .get("source-address")
            .map(String::as_str),
        Some("127.0.0.1/32")
    );
    req.principals.clear();
    let err = ca.sign_user_cert(&req).expect_err("no principals");
    assert!(err.to_string().contains("no logins"), "{err}");
    let mut zero = user_request("x");
    zero.ttl_secs = 0;
    assert!(ca.sign_user_cert(&zero).is_err());
}

#[test]
fn host_certificate_contents() {
    let ca = SshCa::generate().expect("ca");
    let node = SshCa::generate().expect("node key");
    let cert = ca
        .sign_host_cert(&HostCertRequest {
            public_key: node.public_key().clone(),
            host_id: "uuid-1".into(),
            principals: vec!["node1".into(), "uuid-1".into()],
            now: NOW,
            ttl_secs: 86400,
        })
        .expect("sign");
    assert_eq!(cert.cert_type(), CertType::Host);
    assert_eq!(cert.key_id(), "uuid-1");
    assert!(cert.extensions().is_empty());
}

#[test]
fn ssh_ca_round_trips_and_hides_its_key() {
    let ca = SshCa::generate().expect("ca");
    let text = ca.to_openssh().expect("encode");
    let back = SshCa::from_openssh(text.expose()).expect("decode");
    assert_eq!(back.fingerprint(), ca.fingerprint());
    assert!(ca.fingerprint().starts_with("SHA256:"));
    assert!(!format!("{ca:?}").contains("PRIVATE"));
    assert!(parse_public_key("not a key").is_err());
    assert!(parse_public_key(&ca.public_openssh().expect("pub")).is_ok());
}

#[test]
fn tls_ca_pin_server_and_client_certs() {
    let ca = TlsCa::generate("example", NOW).expect("ca");
    let pin = ca.pin().expect("pin");
    assert!(pin.starts_with("sha256:") && pin.len() == 7 + 64, "{pin}");
    let again = TlsCa::from_pem(ca.cert_pem().to_string(), ca.key_pem().clone()).expect("load");
    assert_eq!(again.pin().expect("pin"), pin);

    let (server_pem, _key) = ca
        .issue_server_cert(
            &["proxy.example.com".into(), "127.0.0.1".into()],
            NOW,
            86400,
        )
        .expect("server");
    assert!(server_pem.contains("BEGIN CERTIFICATE"));

    let (csr, _client_key) = generate_client_csr("mallory-asked-for-this").expect("csr");
    let client_pem = ca
        .sign_client_csr(&csr, IdentityKind::User, "alice", "example", NOW, 3600)
        .expect("client");
    let der = rustls_pki_types::CertificateDer::from_pem_slice(client_pem.as_bytes()).expect("der");
    let id = client_identity(&der).expect("identity");
    assert_eq!(id.user, "alice", "the CA names the user, not the CSR");
    assert_eq!(id.cluster, "example");
    assert_eq!(id.kind, IdentityKind::User);
    assert_eq!(id.not_after, (NOW + 3600) as i64);
    let now = NOW as i64;
    assert_eq!(id.check("example", IdentityKind::User, now), Ok(()));
    assert_eq!(id.check("example", IdentityKind::User, now + 3599), Ok(()));
    // Refused: at and after its end, for another cluster, for node calls.
    assert!(
        id.check("example", IdentityKind::User, now + 3600)
            .is_err_and(|m| m.contains("expired"))
    );
    assert!(
        id.check("example", IdentityKind::User, now + 86400)
            .is_err()
    );
    assert!(
        id.check("other", IdentityKind::User, now)
            .is_err_and(|m| m.contains("not valid"))
    );
    assert!(id.check("example", IdentityKind::Node, now).is_err());
    assert!(
        ca.sign_client_csr("garbage", IdentityKind::User, "alice", "example", NOW, 3600)
            .is_err()
    );
}

mod user_cert_checks {
    use super::*;
    use crate::verify::*;
    use ssh_key::Certificate;

    fn check<'a>(
        cas: &'a [ssh_key::public::KeyData],
        login: &'a str,
        now: u64,
    ) -> UserCertCheck<'a> {
        UserCertCheck {
            user_cas: cas,
            trusted: &[],
            login,
            now,
            client_ip: Some("127.0.0.1".parse().expect("ip")),
        }
    }

    #[test]
    fn accepts_a_good_certificate() {
        let ca = SshCa::generate().expect("ca");
        let cert = ca.sign_user_cert(&user_request("alice")).expect("sign");
        let cas = [ca.public_key().key_data().clone()];
        let id = check_user_cert(&cert, &check(&cas, "ubuntu", NOW)).expect("accepted");
        assert_eq!(id.user, "alice");
        assert!(id.permit_pty && id.permit_port_forwarding && !id.permit_agent_forwarding);
    }

    /// A trusted cluster's certificate is accepted as its user, with the
    /// roles and logins it carries; our own CA never makes a remote user,
    /// and a cluster not trusted is refused.
    #[test]
    fn trusted_clusters_users_are_remote_users() {
        let own = SshCa::generate().expect("ca");
        let root = SshCa::generate().expect("root");
        let stranger = SshCa::generate().expect("stranger");
        let mut req = user_request("alice");
        req.roles = vec!["access".into(), "admin-db".into()];
        req.logins_trait = vec!["alice".into(), "ubuntu".into()];
        let cas = [own.public_key().key_data().clone()];
        let trusted = [("root".to_string(), root.public_key().key_data().clone())];
        let with_trust = |login| UserCertCheck {
            trusted: &trusted,
            ..check(&cas, login, NOW)
        };

        let from_root = root.sign_user_cert(&req).expect("sign");
        let id = check_user_cert(&from_root, &with_trust("ubuntu")).expect("accepted");
        let remote = id.remote.expect("a remote user");
        assert_eq!(remote.cluster, "root");
        assert_eq!(remote.roles, ["access", "admin-db"]);
        assert_eq!(remote.logins, ["alice", "ubuntu"]);
        assert_eq!(id.user, "alice");

        let ours = own.sign_user_cert(&req).expect("sign");
        let id = check_user_cert(&ours, &with_trust("ubuntu")).expect("accepted");
        assert_eq!(id.remote, None, "our own users stay ours");

        let theirs = stranger.sign_user_cert(&req).expect("sign");
        assert!(matches!(
            check_user_cert(&theirs, &with_trust("ubuntu")),
            Err(CertRefusal::WrongCa { .. })
        ));
        // Without the trust, the root's certificate is a stranger's too.
        assert!(matches!(
            check_user_cert(&from_root, &check(&cas, "ubuntu", NOW)),
            Err(CertRefusal::WrongCa { .. })
        ));
        // A trusted cluster's certificate passes every other check too.
        assert!(matches!(
            check_user_cert(
                &from_root,
                &UserCertCheck {
                    now: NOW + 3600,
                    ..with_trust("ubuntu")
                }
            ),
            Err(CertRefusal::Expired { .. })
        ));
        assert!(matches!(
            check_user_cert(&from_root, &with_trust("root")),
            Err(CertRefusal::Principal { .. })
        ));
    }

    #[test]
    fn every_refusal() {
        let ca = SshCa::generate().expect("ca");
        let other = SshCa::generate().expect("other");
        let cas = [ca.public_key().key_data().clone()];
        let good = ca.sign_user_cert(&user_request("alice")).expect("sign");
        let foreign = other.sign_user_cert(&user_request("alice")).expect("sign");
        let host = ca
            .sign_host_cert(&HostCertRequest {
                public_key: SshCa::generate().expect("k").public_key().clone(),
                host_id: "alice".into(),
                principals: vec!["alice".into()],
                now: NOW,
                ttl_secs: 3600,
            })
            .expect("host");
        let mut pinned = user_request("alice");
        pinned.source_address = Some("10.0.0.0/8, 192.168.1.7".into());
        let pinned = ca.sign_user_cert(&pinned).expect("sign");

        type Case<'a> = (
            &'a str,
            &'a Certificate,
            &'a str,
            u64,
            fn(&CertRefusal) -> bool,
        );
        let table: Vec<Case> = vec![
            ("another CA", &foreign, "alice", NOW, |r| {
                matches!(r, CertRefusal::WrongCa { .. })
            }),
            ("host cert", &host, "alice", NOW, |r| {
                matches!(r, CertRefusal::NotUserCert("host"))
            }),
            ("expired", &good, "alice", NOW + 3600, |r| {
                matches!(r, CertRefusal::Expired { .. })
            }),
            ("not yet", &good, "alice", NOW - 3600, |r| {
                matches!(r, CertRefusal::NotYetValid { .. })
            }),
            ("principal", &good, "root", NOW, |r| {
                matches!(r, CertRefusal::Principal { .. })
            }),
            ("source", &pinned, "alice", NOW, |r| {
                matches!(r, CertRefusal::SourceAddress { .. })
            }),
        ];
        for (name, cert, login, now, want) in table {
            let err = check_user_cert(cert, &check(&cas, login, now)).expect_err(name);
            assert!(want(&err), "{name}: got {err}");
            assert!(!err.to_string().is_empty());
        }
        // The message tells an expired user what to do.
        let err = check_user_cert(&good, &check(&cas, "alice", NOW + 3600)).expect_err("expired");
        assert!(err.to_string().contains("jsh login"), "{err}");
    }

    #[test]
    fn a_tampered_certificate_fails_its_signature() {
        let ca = SshCa::generate().expect("ca");
        let cas = [ca.public_key().key_data().clone()];
        let cert = ca.sign_user_cert(&user_request("alice")).expect("sign");
        // Rename the principal "ubuntu" to "ubunto" in the signed bytes.
        let mut bytes = cert.to_bytes().expect("bytes");
        let at = bytes
            .windows(6)
            .position(|w| w == b"ubuntu")
            .expect("principal");
        bytes[at + 5] = b'o';
        let forged = Certificate::from_bytes(&bytes).expect("still parses");
        let err = check_user_cert(&forged, &check(&cas, "ubunto", NOW)).expect_err("forged");
        assert_eq!(err, CertRefusal::BadSignature);
    }

    /// A certificate whose signing key is itself a certificate: ssh-key will
    /// not even decode it, and were it decoded, the exact CA comparison
    /// would refuse it.
    #[test]
    fn a_certificate_as_signing_key_is_refused() {
        let ca = SshCa::generate().expect("ca");
        let ca_cert = ca.sign_user_cert(&user_request("ca")).expect("sign");
        let cert = ca.sign_user_cert(&user_request("alice")).expect("sign");
        let bytes = cert.to_bytes().expect("bytes");
        let ca_blob = ca.public_key().to_bytes().expect("blob");
        let at = bytes
            .windows(ca_blob.len())
            .rposition(|w| w == ca_blob.as_slice())
            .expect("signature key blob");
        let cert_blob = ca_cert.to_bytes().expect("cert blob");
        let mut forged = bytes[..at - 4].to_vec();
        forged.extend_from_slice(&(cert_blob.len() as u32).to_be_bytes());
        forged.extend_from_slice(&cert_blob);
        forged.extend_from_slice(&bytes[at + ca_blob.len()..]);
        let cas = [ca.public_key().key_data().clone()];
        match Certificate::from_bytes(&forged) {
            Err(_) => {}
            Ok(parsed) => {
                let err =
                    check_user_cert(&parsed, &check(&cas, "alice", NOW)).expect_err("refused");
                assert!(
                    matches!(err, CertRefusal::WrongCa { .. } | CertRefusal::BadSignature),
                    "{err}"
                );
            }
        }
    }

    #[test]
    fn cidrs() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        let table = [
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.0/8", "127.9.9.9", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("::1/128", "::1", true),
            ("::1", "::2", false),
            ("127.0.0.1/32", "::ffff:127.0.0.1", true),
            ("garbage", "127.0.0.1", false),
            ("10.0.0.0/33", "10.0.0.1", false),
        ];
        for (cidr, addr, want) in table {
            assert_eq!(cidr_contains(cidr, ip(addr)), want, "{cidr} {addr}");
        }
    }
}

mod host_cert_checks {
    use super::*;
    use crate::verify::*;

    #[test]
    fn table() {
        let ca = SshCa::generate().expect("ca");
        let other = SshCa::generate().expect("other");
        let cas = [ca.public_key().key_data().clone()];
        let host = |signer: &SshCa| {
            signer
                .sign_host_cert(&HostCertRequest {
                    public_key: SshCa::generate().expect("k").public_key().clone(),
                    host_id: "u1".into(),
                    principals: vec!["node1".into(), "node1.example".into()],
                    now: NOW,
                    ttl_secs: 3600,
                })
                .expect("sign")
        };
        let good = host(&ca);
        check_host_cert(&good, &cas, "node1", NOW).expect("node1");
        check_host_cert(&good, &cas, "node1.example", NOW).expect("node1.example");
        let user = ca
            .sign_user_cert(&user_request("node1"))
            .expect("user cert");
        type Case = (
            &'static str,
            ssh_key::Certificate,
            &'static str,
            u64,
            fn(&HostCertRefusal) -> bool,
        );
        let table: Vec<Case> = vec![
            ("foreign", host(&other), "node1", NOW, |r| {
                matches!(r, HostCertRefusal::WrongCa { .. })
            }),
            ("user cert", user, "alice", NOW, |r| {
                matches!(r, HostCertRefusal::NotHostCert)
            }),
            ("expired", good.clone(), "node1", NOW + 7200, |r| {
                matches!(r, HostCertRefusal::Expired { .. })
            }),
            ("other host", good, "node2", NOW, |r| {
                matches!(r, HostCertRefusal::Principal { .. })
            }),
        ];
        for (name, cert, h, now, want) in table {
            let err = check_host_cert(&cert, &cas, h, now).expect_err(name);
            assert!(want(&err), "{name}: {err}");
        }
    }
}
