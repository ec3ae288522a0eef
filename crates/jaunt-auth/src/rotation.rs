//! Rotating the SSH user, host and OpenSSH CAs and the TLS CA (phases in
//! `jaunt_types::rotation`).
//!
//! The stored identity keeps each CA's current key and, while a rotation
//! runs, its new key and the rotation's state; every instance reads that
//! back every second ([`AuthServer::refresh_authorities`]) into the
//! [`Authorities`] it signs and checks with, and the first instance to
//! see an automatic rotation due moves it on (compare-and-swap, so once).
//! Nodes learn the trusted user CA keys and get host certificates from the
//! new key through their heartbeats; `jsh login` hands clients every
//! trusted host CA key. Agentless hosts learn the OpenSSH CA's keys only
//! when `jaunt join openssh` runs again (they have no heartbeat).

use crate::identity::StoredIdentity;
use crate::records::IDENTITY_KEY;
use crate::{AuthError, AuthServer, now};
use jaunt_ca::ssh_key::public::KeyData;
use jaunt_ca::{SshCa, TlsCa};
use jaunt_store::StoreError;
use jaunt_types::Secret;
use jaunt_types::rotation::{
    CaType, DEFAULT_GRACE_SECS, Mode, Phase, RotateRequest, Rotation, check_step,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A rotation as stored: its state and the new key (for the TLS CA, its
/// key and its certificate).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredRotation {
    pub rotation: Rotation,
    pub new_key: Secret<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_cert: Option<String>,
}

/// One SSH CA as this instance uses it now.
#[derive(Debug, Clone)]
pub struct CaSet {
    pub ca: CaType,
    current: SshCa,
    new: Option<SshCa>,
    pub rotation: Option<Rotation>,
}

impl CaSet {
    /// The key that signs this CA's certificates now.
    pub fn signer(&self) -> &SshCa {
        match (&self.new, &self.rotation) {
            (Some(new), Some(r)) if r.new_key_signs(self.ca) => new,
            _ => &self.current,
        }
    }

    /// Every key whose certificates are trusted now: the current key, then
    /// the new one during a rotation.
    pub fn trusted(&self) -> impl Iterator<Item = &SshCa> {
        std::iter::once(&self.current).chain(self.new.as_ref())
    }

    /// The trusted keys as OpenSSH public-key lines.
    pub fn public_keys(&self) -> Result<Vec<String>, AuthError> {
        self.trusted()
            .map(|k| k.public_openssh().map_err(AuthError::from))
            .collect()
    }

    pub fn key_data(&self) -> Vec<KeyData> {
        self.trusted()
            .map(|k| k.public_key().key_data().clone())
            .collect()
    }

    /// `standby`, or the rotation's phase.
    pub fn phase(&self) -> Phase {
        self.rotation.as_ref().map_or(Phase::Standby, |r| r.phase)
    }

    fn load(
        ca: CaType,
        current: &Secret<String>,
        stored: Option<&StoredRotation>,
    ) -> Result<Self, AuthError> {
        Ok(CaSet {
            ca,
            current: SshCa::from_openssh(current.expose())?,
            new: stored
                .map(|s| SshCa::from_openssh(s.new_key.expose()))
                .transpose()?,
            rotation: stored.map(|s| s.rotation.clone()),
        })
    }

    /// What tells two sets apart: the keys and the rotation.
    fn version(&self) -> (String, Option<String>, Option<Rotation>) {
        (
            self.current.fingerprint(),
            self.new.as_ref().map(SshCa::fingerprint),
            self.rotation.clone(),
        )
    }
}

/// The TLS CA as this instance uses it now.
#[derive(Debug, Clone)]
pub struct TlsCaSet {
    current: TlsCa,
    new: Option<TlsCa>,
    pub rotation: Option<Rotation>,
}

impl TlsCaSet {
    /// The CA that signs client certificates (users', nodes', leaf
    /// clusters') now.
    pub fn client_signer(&self) -> &TlsCa {
        match (&self.new, &self.rotation) {
            (Some(new), Some(r)) if r.new_key_signs_clients() => new,
            _ => &self.current,
        }
    }

    /// The CA that signs the proxy's certificate now.
    pub fn server_signer(&self) -> &TlsCa {
        match (&self.new, &self.rotation) {
            (Some(new), Some(r)) if r.new_key_signs_servers() => new,
            _ => &self.current,
        }
    }

    /// Every CA trusted now, the current one first.
    pub fn trusted(&self) -> impl Iterator<Item = &TlsCa> {
        std::iter::once(&self.current).chain(self.new.as_ref())
    }

    /// The trusted CAs' certificates, one PEM bundle: what clients and
    /// nodes save and verify the proxy against.
    pub fn bundle(&self) -> String {
        self.trusted()
            .map(|c| c.cert_pem().trim_end().to_string() + "\n")
            .collect()
    }

    /// The pin of the CA the proxy's certificate chains to now (what
    /// `--ca-pin` must name for a new node or user).
    pub fn pin(&self) -> Result<String, AuthError> {
        Ok(self.server_signer().pin()?)
    }

    pub fn phase(&self) -> Phase {
        self.rotation.as_ref().map_or(Phase::Standby, |r| r.phase)
    }

    fn version(&self) -> (String, Option<String>, Option<Rotation>) {
        (
            self.current.cert_pem().to_string(),
            self.new.as_ref().map(|c| c.cert_pem().to_string()),
            self.rotation.clone(),
        )
    }
}

/// The certificate authorities that rotate.
#[derive(Debug, Clone)]
pub struct Authorities {
    pub user: CaSet,
    pub host: CaSet,
    pub tls: TlsCaSet,
    /// Signs only the proxy's per-connection certificates for agentless
    /// (OpenSSH) nodes, whose sshd trusts it and nothing else of ours: no
    /// user ever holds one of its certificates, so a user cannot go round
    /// the proxy to such a host.
    pub openssh: CaSet,
}

impl Authorities {
    pub(crate) fn load(stored: &StoredIdentity) -> Result<Self, AuthError> {
        Ok(Authorities {
            user: CaSet::load(
                CaType::User,
                &stored.user_ca,
                stored.rotations.get(&CaType::User),
            )?,
            host: CaSet::load(
                CaType::Host,
                &stored.host_ca,
                stored.rotations.get(&CaType::Host),
            )?,
            tls: {
                let rotation = stored.rotations.get(&CaType::Tls);
                TlsCaSet {
                    current: TlsCa::from_pem(
                        stored.tls_ca_cert.clone(),
                        stored.tls_ca_key.clone(),
                    )?,
                    new: match rotation {
                        Some(r) => Some(TlsCa::from_pem(
                            r.new_cert.clone().ok_or_else(|| {
                                AuthError::Internal("a TLS rotation without its CA".into())
                            })?,
                            r.new_key.clone(),
                        )?),
                        None => None,
                    },
                    rotation: rotation.map(|r| r.rotation.clone()),
                }
            },
            openssh: CaSet::load(
                CaType::Openssh,
                stored
                    .openssh_ca
                    .as_ref()
                    .ok_or_else(|| AuthError::Internal("the OpenSSH CA is missing".into()))?,
                stored.rotations.get(&CaType::Openssh),
            )?,
        })
    }

    /// One CA's phase.
    pub fn phase(&self, ca: CaType) -> Phase {
        match ca {
            CaType::User => self.user.phase(),
            CaType::Host => self.host.phase(),
            CaType::Tls => self.tls.phase(),
            CaType::Openssh => self.openssh.phase(),
        }
    }

    fn same_as(&self, other: &Authorities) -> bool {
        self.user.version() == other.user.version()
            && self.host.version() == other.host.version()
            && self.tls.version() == other.tls.version()
            && self.openssh.version() == other.openssh.version()
    }
}

/// Moves `ca` of `stored` to phase `to` (already checked as a valid step),
/// at `now`: `init` makes the new key, `standby` keeps the new key after
/// `update_servers` and the old one after `rollback`.
fn step(
    stored: &mut StoredIdentity,
    ca: CaType,
    to: Phase,
    mode: Mode,
    grace_period_secs: u64,
    now: i64,
) -> Result<(), AuthError> {
    match (stored.rotations.remove(&ca), to) {
        (None, Phase::Init) => {
            let (new_key, new_cert) = match ca {
                CaType::User | CaType::Host | CaType::Openssh => {
                    (SshCa::generate()?.to_openssh()?, None)
                }
                CaType::Tls => {
                    let next = TlsCa::generate_next(&stored.cluster_name, now.max(0) as u64)?;
                    (next.key_pem().clone(), Some(next.cert_pem().to_string()))
                }
            };
            stored.rotations.insert(
                ca,
                StoredRotation {
                    rotation: Rotation {
                        phase: Phase::Init,
                        mode,
                        started: now,
                        phase_started: now,
                        grace_period_secs,
                    },
                    new_key,
                    new_cert,
                },
            );
        }
        (Some(r), Phase::Standby) => {
            if r.rotation.phase == Phase::UpdateServers {
                match ca {
                    CaType::User => stored.user_ca = r.new_key,
                    CaType::Host => stored.host_ca = r.new_key,
                    CaType::Openssh => stored.openssh_ca = Some(r.new_key),
                    CaType::Tls => {
                        stored.tls_ca_cert = r.new_cert.ok_or_else(|| {
                            AuthError::Internal("a TLS rotation without its CA".into())
                        })?;
                        stored.tls_ca_key = r.new_key;
                    }
                }
            }
        }
        (Some(mut r), phase) => {
            r.rotation.phase = phase;
            r.rotation.phase_started = now;
            r.rotation.mode = mode;
            stored.rotations.insert(ca, r);
        }
        (None, phase) => {
            return Err(AuthError::Internal(format!(
                "no rotation of the {ca} CA to move to {phase}"
            )));
        }
    }
    Ok(())
}

impl AuthServer {
    /// The CAs that rotate, as this instance uses them now.
    pub fn authorities(&self) -> Arc<Authorities> {
        self.authorities.borrow().clone()
    }

    /// The CAs as they change (a rotation's step here, or read from the
    /// store): what the proxy's TLS configuration follows at once.
    pub fn watch_authorities(&self) -> tokio::sync::watch::Receiver<Arc<Authorities>> {
        self.authorities.subscribe()
    }

    async fn stored_identity(&self) -> Result<jaunt_store::Versioned<StoredIdentity>, AuthError> {
        self.store
            .get::<StoredIdentity>(IDENTITY_KEY)
            .await?
            .ok_or_else(|| AuthError::Internal("the cluster identity is missing".into()))
    }

    /// `jctl auth rotate`: starts an automatic rotation, or moves a CA to
    /// the phase an administrator names. Returns what was done.
    pub async fn rotate_ca(&self, req: RotateRequest) -> Result<String, AuthError> {
        let ca = req.ca;
        let grace = req.grace_period_secs.unwrap_or(DEFAULT_GRACE_SECS);
        if grace < 3 {
            return Err(AuthError::BadRequest(
                "the grace period is at least 3s".into(),
            ));
        }
        let (from, to) = loop {
            let v = self.stored_identity().await?;
            let mut stored = v.value;
            let from = stored.rotations.get(&ca).map(|r| r.rotation.phase);
            let (to, mode) = match req.manual_phase {
                Some(phase) => (phase, Mode::Manual),
                None if from.is_none() => (Phase::Init, Mode::Auto),
                None => {
                    return Err(AuthError::BadRequest(format!(
                        "a rotation of the {ca} CA is in progress (phase {}); move it with --manual --phase=..., or wait for it to end",
                        from.unwrap_or(Phase::Standby)
                    )));
                }
            };
            check_step(ca, from, to).map_err(AuthError::BadRequest)?;
            step(&mut stored, ca, to, mode, grace, now())?;
            match self
                .store
                .update_if(IDENTITY_KEY, v.revision, &stored, None)
                .await
            {
                Ok(_) => break (from, to),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        self.emit(self.rotation_event(ca, from, to)).await?;
        self.refresh_authorities().await?;
        let auto = match req.manual_phase {
            None => format!(
                " (automatic: update_clients, update_servers and standby follow a third of the grace period, {}, apart)",
                jaunt_types::Ttl::from_secs(grace / 3)
            ),
            Some(_) => String::new(),
        };
        Ok(format!(
            "the {ca} CA is now in phase {to}{auto}: {}",
            what_now(ca, to)
        ))
    }

    fn rotation_event(
        &self,
        ca: CaType,
        from: Option<Phase>,
        to: Phase,
    ) -> jaunt_types::audit::AuditEvent {
        self.event("cert.rotate", true)
            .with("ca", ca.to_string())
            .with("from", from.unwrap_or(Phase::Standby).to_string())
            .with("phase", to.to_string())
    }

    /// Reads the CAs back from the store (another instance may have moved
    /// a rotation), first moving on an automatic rotation that is due.
    pub async fn refresh_authorities(&self) -> Result<(), AuthError> {
        let v = self.stored_identity().await?;
        let mut stored = v.value;
        let now = now();
        let mut moved = Vec::new();
        for ca in CaType::ALL {
            if let Some(r) = stored.rotations.get(&ca).map(|r| r.rotation.clone())
                && let Some(to) = r.auto_due(now)
            {
                step(&mut stored, ca, to, Mode::Auto, r.grace_period_secs, now)?;
                moved.push((ca, r.phase, to));
            }
        }
        if !moved.is_empty() {
            match self
                .store
                .update_if(IDENTITY_KEY, v.revision, &stored, None)
                .await
            {
                Ok(_) => {
                    for (ca, from, to) in moved {
                        tracing::info!(%ca, %to, "automatic CA rotation moved on");
                        self.emit(self.rotation_event(ca, Some(from), to)).await?;
                    }
                }
                // Another instance moved it; read what it wrote next time.
                Err(StoreError::Conflict(_)) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        let fresh = Authorities::load(&stored)?;
        if !self.authorities().same_as(&fresh) {
            tracing::info!(
                user = %fresh.user.phase(),
                host = %fresh.host.phase(),
                tls = %fresh.tls.phase(),
                openssh = %fresh.openssh.phase(),
                "certificate authorities reloaded"
            );
            self.authorities.send_replace(Arc::new(fresh));
        }
        Ok(())
    }
}

/// What an administrator does next, by phase.
fn what_now(ca: CaType, phase: Phase) -> &'static str {
    match (ca, phase) {
        (CaType::Tls, Phase::Init) => {
            "a new TLS CA is trusted by the proxy and handed to nodes (heartbeats) and clients ('jsh login'), but signs nothing yet"
        }
        (CaType::Tls, Phase::UpdateClients) => {
            "users' (next 'jsh login'), nodes' and leaf clusters' TLS certificates come from the new CA; the proxy still presents the old one's"
        }
        (CaType::Tls, Phase::UpdateServers) => {
            "the proxy presents a certificate from the new CA (its pin is the new --ca-pin); clients that never logged in since init must log in with the new pin"
        }
        (CaType::Openssh, Phase::Init) => {
            "a new OpenSSH CA key is made but signs nothing yet: run 'jaunt join openssh' again on every agentless host (or add the lines of 'jctl auth export --type=openssh-user-ca' to TrustedUserCAKeys) before update_clients"
        }
        (CaType::Openssh, Phase::UpdateClients) => {
            "the proxy's certificates for agentless hosts come from the new key; a host whose sshd does not trust it refuses them"
        }
        (CaType::Openssh, Phase::UpdateServers) => {
            "nothing more changes for the OpenSSH CA; standby drops the old key (run 'jaunt join openssh' again afterwards to drop it from sshd)"
        }
        (_, Phase::Init) => {
            "a new key is trusted everywhere but signs nothing yet; nodes learn it with their next heartbeat, clients at their next 'jsh login'"
        }
        (CaType::User, Phase::UpdateClients) => {
            "users' new certificates come from the new key (their next 'jsh login'); certificates from the old key still work"
        }
        (CaType::Host, Phase::UpdateClients) => {
            "clients pick up the new host CA at their next 'jsh login' (re-run 'jsh puttyconfig' for PuTTY); nodes still present the old key's certificates"
        }
        (CaType::User, Phase::UpdateServers) => {
            "nothing more changes for the user CA; standby drops the old key"
        }
        (CaType::Host, Phase::UpdateServers) => {
            "nodes renew their host certificates from the new key with their next heartbeat; agentless hosts need 'jaunt join openssh' or 'jctl auth sign' again before standby"
        }
        (_, Phase::Rollback) => {
            "the old key signs again and both stay trusted; standby drops the new key"
        }
        (_, Phase::Standby) => "one key again; the other is no longer trusted",
    }
}
