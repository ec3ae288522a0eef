//! The proxy's SSH client to an agentless node's sshd: it trusts only a
//! host certificate from the cluster's host CA naming that node, and logs
//! in with a fresh key and a certificate from the OpenSSH CA made for this
//! one login (never kept, never in an agent).

use jaunt_auth::AuthServer;
use jaunt_auth::nodes::OpensshPermits;
use jaunt_auth::records::NodeRecord;
use jaunt_ca::ssh_key::public::KeyData;
use jaunt_ca::ssh_key::{Algorithm, PrivateKey};
use russh::client::{self, Handle};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::net::TcpStream;

/// The user's side, once the client has opened a channel: where sshd's
/// agent channels are sent when agent forwarding is allowed.
pub type UserSide = Arc<OnceLock<russh::server::Handle>>;

/// Checks sshd's host certificate; lends the user's agent when allowed.
pub struct Sshd {
    host_cas: Vec<KeyData>,
    /// Principals the certificate must carry one of (the node's UUID or
    /// name).
    names: Vec<String>,
    refusal: Arc<Mutex<Option<String>>>,
    agent: Option<UserSide>,
}

impl client::Handler for Sshd {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let now = jaunt_sys::clock::now().max(0) as u64;
        let verdict = match key {
            russh::keys::PublicKeyOrCertificate::Certificate(cert) => {
                let results: Vec<_> = self
                    .names
                    .iter()
                    .map(|name| jaunt_ca::check_host_cert(cert, &self.host_cas, name, now))
                    .collect();
                match results.iter().any(Result::is_ok) {
                    true => Ok(()),
                    false => Err(results
                        .into_iter()
                        .find_map(Result::err)
                        .map(|e| e.to_string())
                        .unwrap_or_default()),
                }
            }
            russh::keys::PublicKeyOrCertificate::PublicKey { .. } => Err(
                "its sshd presented a plain host key, not a certificate from the cluster's host CA (run 'jaunt join openssh' there)".to_string(),
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

    /// sshd opens one of these per use of the forwarded agent: it is
    /// carried to the user's client only when forwarding was allowed.
    async fn server_channel_open_agent_forward(
        &mut self,
        channel: russh::Channel<client::Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        let Some(user) = self.agent.as_ref().and_then(|a| a.get().cloned()) else {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        match user.channel_open_agent().await {
            Ok(theirs) => {
                reply.accept().await;
                tokio::spawn(async move {
                    let mut ours = channel.into_stream();
                    let mut theirs = theirs.into_stream();
                    let _ = tokio::io::copy_bidirectional(&mut ours, &mut theirs).await;
                });
            }
            Err(_) => reply.reject(russh::ChannelOpenFailure::ConnectFailed).await,
        }
        Ok(())
    }
}

/// One login on an agentless node, as the proxy makes it.
pub struct Login<'a> {
    pub node: &'a NodeRecord,
    pub user: &'a str,
    pub login: &'a str,
    /// The user's certificate's end: ours ends no later.
    pub valid_before: u64,
    pub permits: OpensshPermits,
    /// Set when agent forwarding is allowed.
    pub agent: Option<UserSide>,
}

/// Logs in to the node's sshd over `stream`; the error is what the user
/// is told.
pub async fn connect(
    auth: &AuthServer,
    stream: TcpStream,
    login: Login<'_>,
) -> Result<Handle<Sshd>, String> {
    let node = login.node;
    let refusal = Arc::new(Mutex::new(None));
    let check = Sshd {
        host_cas: auth.host_ca_keys(),
        names: vec![node.uuid.clone(), node.name.clone()],
        refusal: refusal.clone(),
        agent: login.agent,
    };
    let config = Arc::new(client::Config {
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        preferred: russh::Preferred {
            host_key_certificates: std::borrow::Cow::Owned(vec![Algorithm::Ed25519]),
            // This hop is ours to choose: AES-GCM runs on the CPU's AES
            // instructions, several times the speed of ChaCha20 here, and
            // the proxy pays for two hops.
            cipher: std::borrow::Cow::Borrowed(&[
                russh::cipher::AES_256_GCM,
                russh::cipher::CHACHA20_POLY1305,
            ]),
            ..Default::default()
        },
        // The largest packets russh takes: fewer per bulk transfer.
        maximum_packet_size: 65535,
        // As large as the client side's: a bulk transfer is never held
        // up by the hop to sshd.
        window_size: crate::SSHD_WINDOW,
        ..Default::default()
    });
    let stream = tokio::io::BufReader::with_capacity(crate::READ_AHEAD, stream);
    let mut handle = match client::connect_stream(config, stream, check).await {
        Ok(h) => h,
        Err(e) => {
            let why = refusal.lock().ok().and_then(|r| r.clone());
            return Err(match why {
                Some(why) => format!("the host certificate of {} was refused: {why}", node.name),
                None => format!("SSH handshake with {} failed: {e}", node.name),
            });
        }
    };
    let key = PrivateKey::random(
        &mut jaunt_ca::ssh_key::rand_core::UnwrapErr(jaunt_ca::ssh_key::getrandom::SysRng),
        Algorithm::Ed25519,
    )
    .map_err(|e| format!("cannot make a key: {e}"))?;
    let cert = auth
        .sign_openssh_login(
            node,
            login.user,
            login.login,
            key.public_key().clone(),
            login.valid_before,
            login.permits,
        )
        .map_err(|e| e.to_string())?;
    let result = handle
        .authenticate_openssh_cert(login.login, Arc::new(key), cert)
        .await
        .map_err(|e| format!("authentication at {}: {e}", node.name))?;
    if !result.success() {
        return Err(format!(
            "sshd on {} refused the login {:?} (Permission denied (publickey)): the OS user may not exist there, or its sshd does not trust the cluster's OpenSSH CA",
            node.name, login.login
        ));
    }
    Ok(handle)
}
