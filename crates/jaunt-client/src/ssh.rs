//! An SSH client session to a node through the proxy (for `jsh ssh`): it
//! trusts only host certificates from the cluster's host CA that name the
//! host, and logs in with the user certificate from `jsh login`.

use crate::home::Home;
use crate::profile::Profile;
use crate::{ClientError, Result};
use jaunt_ca::ssh_key::public::KeyData;
use jaunt_ca::ssh_key::{Certificate, PrivateKey, PublicKey};
use jaunt_transport::ApiClient;
use jaunt_transport::relay::dial_routed;
use russh::client::{self, Handle};
use std::sync::Arc;
use std::time::Duration;

/// Checks the node's host certificate during the handshake.
pub struct HostCheck {
    host_cas: Vec<KeyData>,
    /// Names the certificate may carry for this node.
    names: Vec<String>,
    /// Why the last check failed, to tell the user.
    pub refusal: Arc<std::sync::Mutex<Option<String>>>,
    /// The local agent to lend the node (`-A`), if any.
    pub agent_socket: Option<std::path::PathBuf>,
}

impl client::Handler for HostCheck {
    type Error = russh::Error;

    /// The node opens one of these per use of the forwarded agent; it is
    /// refused unless the user asked for forwarding.
    async fn server_channel_open_agent_forward(
        &mut self,
        channel: russh::Channel<client::Msg>,
        reply: russh::client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> std::result::Result<(), Self::Error> {
        let Some(path) = self.agent_socket.clone() else {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        #[cfg(unix)]
        {
            reply.accept().await;
            tokio::spawn(async move {
                if let Ok(mut local) = tokio::net::UnixStream::connect(&path).await {
                    let mut remote = channel.into_stream();
                    let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
                }
            });
        }
        // Windows agents (Pageant, OpenSSH's named pipe) are not lent yet.
        #[cfg(not(unix))]
        {
            let _ = (path, channel);
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
        }
        Ok(())
    }

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> std::result::Result<bool, Self::Error> {
        let now = jaunt_sys::clock::now().max(0) as u64;
        let verdict = match key {
            russh::keys::PublicKeyOrCertificate::Certificate(cert) => {
                let mut last = None;
                let mut ok = false;
                for name in &self.names {
                    match jaunt_ca::check_host_cert(cert, &self.host_cas, name, now) {
                        Ok(()) => {
                            ok = true;
                            break;
                        }
                        Err(e) => last = Some(e.to_string()),
                    }
                }
                if ok {
                    Ok(())
                } else {
                    Err(last.unwrap_or_default())
                }
            }
            russh::keys::PublicKeyOrCertificate::PublicKey { .. } => Err(
                "the node presented a plain host key, not a certificate from the cluster's host CA"
                    .to_string(),
            ),
        };
        match verdict {
            Ok(()) => Ok(true),
            Err(why) => {
                if let Ok(mut r) = self.refusal.lock() {
                    *r = Some(why);
                }
                Ok(false)
            }
        }
    }
}

/// The host CA keys from `known_hosts`' `@cert-authority` lines for `cluster`.
pub fn host_cas(home: &Home, cluster: &str) -> Result<Vec<KeyData>> {
    let text = home
        .read_to_string(&home.known_hosts_path())?
        .unwrap_or_default();
    let mut keys = Vec::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        if parts.next() != Some("@cert-authority") {
            continue;
        }
        let Some(patterns) = parts.next() else {
            continue;
        };
        if !patterns.split(',').any(|p| p == format!("*.{cluster}")) {
            continue;
        }
        let rest: Vec<&str> = parts.collect();
        if rest.len() >= 2
            && let Ok(k) = PublicKey::from_openssh(&format!("{} {}", rest[0], rest[1]))
        {
            keys.push(k.key_data().clone());
        }
    }
    if keys.is_empty() {
        return Err(ClientError::Invalid(format!(
            "no host CA for cluster {cluster:?} in {}; run 'jsh login' again",
            home.known_hosts_path().display()
        )));
    }
    Ok(keys)
}

/// The names a node's host certificate must hold one of: the node must
/// prove to be the one the proxy routed to (its UUID, which auth puts in
/// every host certificate); node names are the nodes' own word and need
/// not be unique. A proxy that does not say is checked against the name
/// typed (`bare`, with or without the cluster suffix).
fn host_names(routed: Option<String>, bare: &str, cluster: &str) -> Vec<String> {
    match routed {
        Some(uuid) => vec![uuid],
        None => vec![bare.to_string(), format!("{bare}.{cluster}")],
    }
}

/// Where a connection goes: a node of `cluster` (the profile's, or a leaf
/// of it), with the certificate of the profile's login.
pub struct Destination<'a> {
    pub cluster: &'a str,
    pub login: &'a str,
    pub host: &'a str,
    pub port: Option<u16>,
}

/// Connects and authenticates `login` on `host` of the profile's cluster
/// through the proxy.
pub async fn connect(
    home: &Home,
    profile: &Profile,
    client: &ApiClient,
    login: &str,
    host: &str,
    port: Option<u16>,
    agent_socket: Option<std::path::PathBuf>,
) -> Result<Handle<HostCheck>> {
    let to = Destination {
        cluster: &profile.cluster,
        login,
        host,
        port,
    };
    connect_to(home, profile, client, &to, agent_socket).await
}

/// As [`connect`], to a node of any cluster the proxy reaches (a leaf's
/// nodes are checked against the leaf's host CA).
pub async fn connect_to(
    home: &Home,
    profile: &Profile,
    client: &ApiClient,
    to: &Destination<'_>,
    agent_socket: Option<std::path::PathBuf>,
) -> Result<Handle<HostCheck>> {
    let Destination {
        cluster,
        login,
        host,
        port,
    } = *to;
    let target = match port {
        Some(p) => format!("{login}@{host}:{p}"),
        None => format!("{login}@{host}"),
    };
    let host_cas = crate::clusters::host_cas_for(home, profile, client, cluster).await?;
    let (stream, routed) = dial_routed(client, &target, Some(cluster)).await?;
    let bare = host.strip_suffix(&format!(".{cluster}")).unwrap_or(host);
    let names = host_names(routed, bare, cluster);
    let refusal = Arc::new(std::sync::Mutex::new(None));
    let check = HostCheck {
        host_cas,
        names,
        refusal: refusal.clone(),
        agent_socket,
    };
    let config = Arc::new(client::Config {
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        // Ask for the node's host certificate, not its bare key: the
        // cluster's host CA is the only trust anchor for nodes.
        preferred: russh::Preferred {
            host_key_certificates: std::borrow::Cow::Owned(vec![
                jaunt_ca::ssh_key::Algorithm::Ed25519,
            ]),
            cipher: std::borrow::Cow::Borrowed(crate::ciphers::russh_ciphers(
                crate::ciphers::aes_gcm_in_hardware(),
            )),
            ..Default::default()
        },
        ..Default::default()
    });
    // russh reads each packet with two exact reads (its length, then the
    // rest): reading ahead makes a download one syscall per 128 KiB.
    let stream = tokio::io::BufReader::with_capacity(128 * 1024, stream);
    let mut handle = match client::connect_stream(config, stream, check).await {
        Ok(h) => h,
        Err(e) => {
            let why = refusal.lock().ok().and_then(|r| r.clone());
            return Err(ClientError::Invalid(why.unwrap_or_else(|| {
                format!("SSH handshake with {host} failed: {e}")
            })));
        }
    };
    let name = profile.name();
    let key_path = home.key_path(&name, &profile.user);
    let cert_path = home.ssh_cert_path(&name, &profile.user, &profile.cluster);
    let key_text = home
        .read_to_string(&key_path)?
        .ok_or_else(|| ClientError::File {
            path: key_path.clone(),
            reason: "missing; run 'jsh login'".into(),
        })?;
    let key = PrivateKey::from_openssh(&key_text).map_err(|e| crate::file_err(&key_path, e))?;
    let cert_text = home
        .read_to_string(&cert_path)?
        .ok_or_else(|| ClientError::File {
            path: cert_path.clone(),
            reason: "missing; run 'jsh login'".into(),
        })?;
    let cert =
        Certificate::from_openssh(cert_text.trim()).map_err(|e| crate::file_err(&cert_path, e))?;
    let result = handle
        .authenticate_openssh_cert(login, Arc::new(key), cert)
        .await
        .map_err(|e| ClientError::Protocol(format!("authentication: {e}")))?;
    if !result.success() {
        return Err(ClientError::AccessDenied(format!(
            "access denied to {login} on {host}: check the logins your roles allow ('jsh status' lists them)"
        )));
    }
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate for the name typed, but of another node than the one
    /// the proxy routed to, is refused: only the routed UUID counts.
    #[test]
    fn the_routed_node_is_the_one_checked() {
        let ca = jaunt_ca::SshCa::generate().expect("ca");
        let host = jaunt_ca::SshCa::generate().expect("host key");
        let (routed, other) = (
            "6f1c0e8a-0000-4000-8000-000000000001",
            "6f1c0e8a-0000-4000-8000-000000000002",
        );
        // Another node that also calls itself "db".
        let cert = ca
            .sign_host_cert(&jaunt_ca::HostCertRequest {
                public_key: host.public_key().clone(),
                host_id: other.into(),
                principals: vec![other.into(), "db".into()],
                now: 1_800_000_000,
                ttl_secs: 3600,
            })
            .expect("sign");
        let cas = [ca.public_key().key_data().clone()];
        let accepts = |names: Vec<String>| {
            names
                .iter()
                .any(|n| jaunt_ca::check_host_cert(&cert, &cas, n, 1_800_000_100).is_ok())
        };
        // By the name typed it would pass; by the routed node it does not.
        assert!(accepts(host_names(None, "db", "example")));
        assert!(!accepts(host_names(Some(routed.into()), "db", "example")));
        assert!(accepts(host_names(Some(other.into()), "db", "example")));
    }
}
