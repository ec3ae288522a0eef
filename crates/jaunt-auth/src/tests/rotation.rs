//! CA rotation: which key signs and which are trusted in each phase, what
//! nodes and clients are handed, refused steps, rollback, automatic
//! rotations moving on, and a second instance following the store.

use super::*;
use crate::identity::StoredIdentity;
use crate::records::IDENTITY_KEY;
use jaunt_ca::ssh_key::Certificate;
use jaunt_types::api::HeartbeatRequest;
use jaunt_types::rotation::{CaType, Phase, RotateRequest};

fn manual(ca: CaType, phase: Phase) -> RotateRequest {
    RotateRequest {
        ca,
        grace_period_secs: None,
        manual_phase: Some(phase),
    }
}

/// The fingerprint of the key that signed a certificate.
fn signer_of(cert: &str) -> String {
    let cert = Certificate::from_openssh(cert.trim()).expect("cert");
    jaunt_ca::fingerprint(&cert.signature_key().clone().into())
}

/// A user's certificate now, and the host CA keys the login hands over.
async fn login(auth: &AuthServer) -> (String, Vec<String>) {
    let (req, _) = login_request("alice", PASSWORD, None);
    let resp = auth.login(req, "127.0.0.1:1").await.expect("login");
    (signer_of(&resp.ssh_cert), resp.host_ca_keys)
}

/// Node n1's heartbeat with host key `key`, its host certificate from
/// `signer` (when said).
fn heartbeat_request(key: &str, signer: Option<&str>) -> HeartbeatRequest {
    HeartbeatRequest {
        name: "n1".into(),
        labels: Default::default(),
        addr: None,
        host_public_key: key.into(),
        host_cert_valid_before: (crate::now() + 6 * 86_400) as u64,
        host_cert_ca: signer.map(str::to_string),
        tls_csr_pem: None,
    }
}

/// A node's heartbeat saying its host certificate came from `signer`;
/// whether auth renewed it, and from which key.
async fn beat(auth: &AuthServer, node: &str, key: &str, signer: &str) -> Option<String> {
    let resp = auth
        .heartbeat(node, heartbeat_request(key, Some(signer)), None)
        .await
        .expect("heartbeat");
    resp.host_cert.map(|c| signer_of(&c))
}

#[tokio::test]
async fn a_manual_rotation_of_each_ca_through_every_phase() {
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await;
    signed_up(&auth, "alice", &["alice"]).await;
    let host_key = SshCa::generate()
        .expect("key")
        .public_openssh()
        .expect("pub");
    let joined = super::nodes::join_as(&auth, "n1", &host_key, None).await;
    let old_user = auth.authorities().user.signer().fingerprint();
    let old_host = auth.authorities().host.signer().fingerprint();
    let old_host_key = auth.authorities().host.public_keys().expect("keys")[0].clone();
    assert_eq!(signer_of(&joined.host_cert), old_host);

    // User CA. init: a second key is trusted (nodes get both), signs nothing.
    auth.rotate_ca(manual(CaType::User, Phase::Init))
        .await
        .expect("init");
    let cas = auth.authorities();
    assert_eq!(cas.user.phase(), Phase::Init);
    assert_eq!(cas.user.signer().fingerprint(), old_user);
    assert_eq!(cas.user.public_keys().expect("keys").len(), 2);
    assert_eq!(auth.user_ca_keys().expect("keys").len(), 2);
    assert_eq!(login(&auth).await.0, old_user);
    let new_user = cas.user.trusted().nth(1).expect("new").fingerprint();
    // Refused steps name the next one.
    let err = auth
        .rotate_ca(manual(CaType::User, Phase::UpdateServers))
        .await
        .expect_err("skipped a phase");
    assert!(
        err.to_string().contains("the next phase is update_clients"),
        "{err}"
    );
    let err = auth
        .rotate_ca(RotateRequest {
            ca: CaType::User,
            grace_period_secs: None,
            manual_phase: None,
        })
        .await
        .expect_err("already rotating");
    assert!(
        err.to_string().contains("in progress (phase init)"),
        "{err}"
    );
    // update_clients: users' certificates come from the new key.
    auth.rotate_ca(manual(CaType::User, Phase::UpdateClients))
        .await
        .expect("update_clients");
    assert_eq!(login(&auth).await.0, new_user);
    auth.rotate_ca(manual(CaType::User, Phase::UpdateServers))
        .await
        .expect("update_servers");
    // standby: only the new key is left.
    auth.rotate_ca(manual(CaType::User, Phase::Standby))
        .await
        .expect("standby");
    let cas = auth.authorities();
    assert_eq!(cas.user.phase(), Phase::Standby);
    assert_eq!(cas.user.signer().fingerprint(), new_user);
    assert_eq!(cas.user.key_data().len(), 1);
    assert_eq!(login(&auth).await.0, new_user);
    // The host CA was not touched.
    assert_eq!(cas.host.signer().fingerprint(), old_host);

    // Host CA: clients are handed both keys from init on, the current
    // first; nodes renew only from update_servers.
    auth.rotate_ca(manual(CaType::Host, Phase::Init))
        .await
        .expect("init");
    let (_, host_keys) = login(&auth).await;
    assert_eq!(host_keys.len(), 2);
    assert_eq!(host_keys[0], old_host_key);
    let new_host = auth
        .authorities()
        .host
        .trusted()
        .nth(1)
        .expect("new")
        .fingerprint();
    assert_eq!(beat(&auth, &joined.uuid, &host_key, &old_host).await, None);
    auth.rotate_ca(manual(CaType::Host, Phase::UpdateClients))
        .await
        .expect("update_clients");
    assert_eq!(beat(&auth, &joined.uuid, &host_key, &old_host).await, None);
    auth.rotate_ca(manual(CaType::Host, Phase::UpdateServers))
        .await
        .expect("update_servers");
    assert_eq!(
        beat(&auth, &joined.uuid, &host_key, &old_host).await,
        Some(new_host.clone()),
        "renewed from the new key"
    );
    assert_eq!(beat(&auth, &joined.uuid, &host_key, &new_host).await, None);
    auth.rotate_ca(manual(CaType::Host, Phase::Standby))
        .await
        .expect("standby");
    let (_, host_keys) = login(&auth).await;
    assert_eq!(host_keys.len(), 1);
    assert_ne!(host_keys[0], old_host_key);
    assert_eq!(auth.host_ca_keys().len(), 1);

    // Every step was audited.
    let steps = auth
        .search_events(&jaunt_types::audit::AuditQuery {
            event: Some("cert.rotate".into()),
            ..Default::default()
        })
        .await
        .expect("events");
    assert_eq!(steps.len(), 8, "{steps:#?}");
    assert_eq!(steps[0].code, "TCA01I");
    assert_eq!(steps[0].fields["ca"], "user");
    assert_eq!(steps[0].fields["from"], "standby");
    assert_eq!(steps[0].fields["phase"], "init");
}

#[tokio::test]
async fn a_rollback_keeps_the_old_key_and_a_second_instance_follows() {
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await;
    let other = f.auth(SecondFactor::Off).await;
    signed_up(&auth, "alice", &["alice"]).await;
    let old = auth.authorities().user.signer().fingerprint();
    auth.rotate_ca(manual(CaType::User, Phase::Init))
        .await
        .expect("init");
    auth.rotate_ca(manual(CaType::User, Phase::UpdateClients))
        .await
        .expect("update_clients");
    let new = auth.authorities().user.signer().fingerprint();
    assert_ne!(new, old);
    // The other instance signs with the old key until it reads the store.
    assert_eq!(login(&other).await.0, old);
    other.refresh_authorities().await.expect("refresh");
    assert_eq!(login(&other).await.0, new);
    // Rollback through the other instance: the old key signs again, both
    // stay trusted (certificates from the new key still work)...
    other
        .rotate_ca(manual(CaType::User, Phase::Rollback))
        .await
        .expect("rollback");
    auth.refresh_authorities().await.expect("refresh");
    assert_eq!(login(&auth).await.0, old);
    assert_eq!(auth.user_ca_keys().expect("keys").len(), 2);
    assert!(
        auth.rotate_ca(manual(CaType::User, Phase::UpdateClients))
            .await
            .is_err(),
        "a rollback only ends"
    );
    // ...until standby drops the new key.
    auth.rotate_ca(manual(CaType::User, Phase::Standby))
        .await
        .expect("standby");
    let cas = auth.authorities();
    assert_eq!(cas.user.key_data().len(), 1);
    assert_eq!(cas.user.signer().fingerprint(), old);
}

#[tokio::test]
async fn an_automatic_rotation_moves_on_by_itself() {
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await;
    let msg = auth
        .rotate_ca(RotateRequest {
            ca: CaType::Host,
            grace_period_secs: Some(3 * 3600),
            manual_phase: None,
        })
        .await
        .expect("start");
    assert!(msg.contains("phase init (automatic"), "{msg}");
    assert!(
        auth.rotate_ca(RotateRequest {
            ca: CaType::Host,
            grace_period_secs: None,
            manual_phase: None
        })
        .await
        .is_err()
    );
    // Not yet due: nothing moves.
    auth.refresh_authorities().await.expect("refresh");
    assert_eq!(auth.authorities().host.phase(), Phase::Init);
    // Each phase, once its third of the grace period is over (the stored
    // phase start moved back an hour), moves on at the next refresh.
    for want in [Phase::UpdateClients, Phase::UpdateServers, Phase::Standby] {
        let v = auth
            .store()
            .get::<StoredIdentity>(IDENTITY_KEY)
            .await
            .expect("read")
            .expect("identity");
        let mut stored = v.value;
        let r = stored.rotations.get_mut(&CaType::Host).expect("rotating");
        r.rotation.phase_started -= 3600;
        auth.store()
            .update_if(IDENTITY_KEY, v.revision, &stored, None)
            .await
            .expect("write");
        auth.refresh_authorities().await.expect("refresh");
        assert_eq!(auth.authorities().host.phase(), want);
    }
    assert_eq!(auth.host_ca_keys().len(), 1);
}

#[tokio::test]
async fn a_tls_ca_rotation_moves_clients_then_the_proxy() {
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await;
    signed_up(&auth, "alice", &["alice"]).await;
    let names = vec!["proxy.example.com".to_string()];
    let issuer = |pem: &str| jaunt_ca::client_identity_pem(pem).expect("identity").issuer;
    let tls_login = || async {
        let (req, _) = login_request("alice", PASSWORD, None);
        auth.login(req, "127.0.0.1:1").await.expect("login")
    };
    let before = tls_login().await;
    let old_issuer = issuer(&before.tls_cert_pem);
    let old_pin = auth.authorities().tls.pin().expect("pin");
    let old_proxy = auth.proxy_tls(&names).await.expect("proxy tls");

    auth.rotate_ca(manual(CaType::Tls, Phase::Init))
        .await
        .expect("init");
    let during = tls_login().await;
    assert_eq!(during.tls_ca_pem.matches("BEGIN CERTIFICATE").count(), 2);
    assert_eq!(issuer(&during.tls_cert_pem), old_issuer);
    assert_eq!(
        auth.proxy_tls(&names).await.expect("tls").cert_pem,
        old_proxy.cert_pem
    );

    // update_clients: clients' certificates from the new CA; a node
    // calling with an old one is asked to renew; the proxy's stays.
    auth.rotate_ca(manual(CaType::Tls, Phase::UpdateClients))
        .await
        .expect("update_clients");
    let new_issuer = issuer(&tls_login().await.tls_cert_pem);
    assert_ne!(new_issuer, old_issuer);
    let node = super::nodes::joined_node(&auth, "n1").await;
    let host_key = SshCa::generate()
        .expect("key")
        .public_openssh()
        .expect("pub");
    let beat = |issuer: String| {
        let request = heartbeat_request(&host_key, None);
        let (auth, node) = (&auth, node.clone());
        async move {
            auth.heartbeat(&node, request, Some(&issuer))
                .await
                .expect("heartbeat")
        }
    };
    let asked = beat(old_issuer.clone()).await;
    assert!(asked.tls_renew);
    assert_eq!(
        asked
            .tls_ca_pem
            .expect("CAs")
            .matches("BEGIN CERTIFICATE")
            .count(),
        2
    );
    assert!(!beat(new_issuer.clone()).await.tls_renew);
    assert_eq!(
        auth.proxy_tls(&names).await.expect("tls").cert_pem,
        old_proxy.cert_pem
    );
    assert_eq!(auth.authorities().tls.pin().expect("pin"), old_pin);

    // update_servers: the proxy's certificate from the new CA, whose pin
    // new nodes and users give.
    auth.rotate_ca(manual(CaType::Tls, Phase::UpdateServers))
        .await
        .expect("update_servers");
    let new_proxy = auth.proxy_tls(&names).await.expect("tls");
    assert_ne!(new_proxy.cert_pem, old_proxy.cert_pem);
    assert_ne!(new_proxy.ca_pem, old_proxy.ca_pem);
    assert_ne!(auth.authorities().tls.pin().expect("pin"), old_pin);

    // standby: only the new CA.
    auth.rotate_ca(manual(CaType::Tls, Phase::Standby))
        .await
        .expect("standby");
    let after = tls_login().await;
    assert_eq!(after.tls_ca_pem.matches("BEGIN CERTIFICATE").count(), 1);
    assert_eq!(issuer(&after.tls_cert_pem), new_issuer);
    assert_eq!(
        auth.proxy_tls(&names).await.expect("tls").cert_pem,
        new_proxy.cert_pem
    );
    // A second instance reading the store agrees.
    let other = f.auth(SecondFactor::Off).await;
    assert_eq!(
        other.authorities().tls.pin().expect("pin"),
        auth.authorities().tls.pin().expect("pin")
    );
}

#[tokio::test]
async fn a_tls_ca_rotation_rolled_back_from_update_servers() {
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await;
    let names = vec!["proxy.example.com".to_string()];
    let old_pin = auth.authorities().tls.pin().expect("pin");
    let old_ca = auth.proxy_tls(&names).await.expect("tls").ca_pem;
    for phase in [Phase::Init, Phase::UpdateClients, Phase::UpdateServers] {
        auth.rotate_ca(manual(CaType::Tls, phase))
            .await
            .expect("step");
    }
    assert_ne!(auth.proxy_tls(&names).await.expect("tls").ca_pem, old_ca);
    auth.rotate_ca(manual(CaType::Tls, Phase::Rollback))
        .await
        .expect("rollback");
    // The old CA signs again, for the proxy and for clients, while both
    // stay trusted; standby drops the new one.
    assert_eq!(auth.proxy_tls(&names).await.expect("tls").ca_pem, old_ca);
    assert_eq!(auth.authorities().tls.pin().expect("pin"), old_pin);
    assert_eq!(auth.authorities().tls.trusted().count(), 2);
    auth.rotate_ca(manual(CaType::Tls, Phase::Standby))
        .await
        .expect("standby");
    assert_eq!(auth.authorities().tls.trusted().count(), 1);
    assert_eq!(auth.authorities().tls.pin().expect("pin"), old_pin);
}

/// The OpenSSH CA: an agentless host joining again is handed every trusted
/// key, and the proxy's per-connection certificates move to the new key at
/// update_clients (a rollback takes them back).
#[tokio::test]
async fn the_openssh_ca_rotates_for_agentless_hosts() {
    let f = Fixture::new();
    let auth = f.auth(SecondFactor::Off).await;
    let host_key = SshCa::generate()
        .expect("key")
        .public_openssh()
        .expect("pub");
    let join = || {
        super::nodes::join_as(
            &auth,
            "osh1",
            &host_key,
            Some(jaunt_types::api::NodeSubKind::Openssh),
        )
    };
    let exported = || async {
        match auth
            .admin(AdminRequest::CaExport {
                kind: jaunt_types::admin::CaKind::OpensshUserCa,
            })
            .await
        {
            AdminResponse::Text { text } => text,
            other => panic!("{other:?}"),
        }
    };
    let joined = join().await;
    assert_eq!(joined.openssh_ca_keys.len(), 1);
    let old_key = joined.openssh_ca_keys[0].clone();
    assert_eq!(exported().await, old_key);
    let node = auth.find_node("osh1").await.expect("node");
    let signer = || {
        let key = SshCa::generate().expect("key").public_key().clone();
        let valid_before = (crate::now() + 600) as u64;
        let cert = auth
            .sign_openssh_login(
                &node,
                "alice",
                "root",
                key,
                valid_before,
                crate::nodes::OpensshPermits::default(),
            )
            .expect("sign");
        jaunt_ca::fingerprint(&cert.signature_key().clone().into())
    };
    let old = signer();
    // Users' and hosts' CAs are another matter: never this one.
    assert_ne!(old, auth.authorities().user.signer().fingerprint());

    auth.rotate_ca(manual(CaType::Openssh, Phase::Init))
        .await
        .expect("init");
    assert_eq!(signer(), old, "init signs with the old key");
    let keys = join().await.openssh_ca_keys;
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], old_key, "the current key first");
    assert_eq!(exported().await, keys.join("\n"));
    auth.rotate_ca(manual(CaType::Openssh, Phase::UpdateClients))
        .await
        .expect("update_clients");
    let new = signer();
    assert_ne!(new, old);
    auth.rotate_ca(manual(CaType::Openssh, Phase::Rollback))
        .await
        .expect("rollback");
    assert_eq!(signer(), old, "a rollback signs with the old key again");
    auth.rotate_ca(manual(CaType::Openssh, Phase::Standby))
        .await
        .expect("standby");
    assert_eq!(join().await.openssh_ca_keys, vec![old_key.clone()]);

    // A rotation to its end leaves only the new key.
    for phase in [
        Phase::Init,
        Phase::UpdateClients,
        Phase::UpdateServers,
        Phase::Standby,
    ] {
        auth.rotate_ca(manual(CaType::Openssh, phase))
            .await
            .expect("step");
    }
    let keys = join().await.openssh_ca_keys;
    assert_eq!(keys.len(), 1);
    assert_ne!(keys[0], old_key);
    assert_ne!(signer(), old);
    assert_eq!(auth.authorities().phase(CaType::Openssh), Phase::Standby);
}
