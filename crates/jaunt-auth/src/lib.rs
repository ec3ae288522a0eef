//! The auth service: it owns the cluster's identity (its certificate
//! authorities), users, roles and join tokens, authenticates users
//! (password, TOTP, lockout) and issues their short-lived certificates. The
//! proxy calls it in-process; `jctl` reaches it over the admin socket.
//!
//! Architecture Invariant: certificates are issued only from an
//! [`authn::Authenticated`] value, which only a successful password (and
//! second-factor) check can build.

pub mod admin;
pub mod audit;
pub mod authn;
mod certs;
mod error;
pub mod heartbeats;
mod identity;
pub mod locks;
pub mod nodes;
pub mod proxies;
pub mod recordings;
pub mod records;
mod roles;
pub mod rotation;
pub mod sessions;
mod signup;
pub mod throttle;
mod tokens;
pub mod trust;
mod users;

pub use error::AuthError;
pub use identity::{ClusterIdentity, ProxyTls};
pub use recordings::RecordingStorage;

use jaunt_store::Store;
use jaunt_types::Ttl;
use jaunt_types::api::SecondFactor;
use std::sync::Arc;

/// What the auth service needs from the daemon's configuration.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub cluster_name: String,
    /// `host:port` of the proxy, for the commands it prints.
    pub public_addr: String,
    pub second_factor: SecondFactor,
    pub max_login_attempts: u32,
    pub lockout_duration: Ttl,
    /// A node that has not sent a heartbeat for this long is offline.
    pub node_offline_after: Ttl,
    /// Where sessions are recorded (told to nodes in heartbeats).
    pub recording: jaunt_types::api::RecordingMode,
    /// Nodes close SSH connections idle this long (told in heartbeats).
    pub client_idle_timeout: Option<Ttl>,
    /// How long audit events and session recordings are kept (`None`:
    /// for ever); each is stored with its expiry, and the periodic purge
    /// deletes the expired in batches.
    pub audit_retention: Option<Ttl>,
    pub recording_retention: Option<Ttl>,
    /// Where recordings' text is kept: the store, or a directory.
    pub recordings: RecordingStorage,
}

impl AuthConfig {
    /// When a record made at `at` (Unix seconds) is to go under `keep`.
    pub(crate) fn expiry(keep: Option<Ttl>, at: i64) -> Option<i64> {
        keep.map(|k| at.saturating_add(k.as_secs() as i64))
    }
}

/// The auth service. Cheap to share behind an `Arc`.
pub struct AuthServer {
    store: Store,
    config: AuthConfig,
    identity: ClusterIdentity,
    /// The SSH user and host CAs, as last read from the store (they
    /// rotate; [`rotation`]).
    authorities: tokio::sync::watch::Sender<Arc<rotation::Authorities>>,
    /// A hash checked when the user does not exist, so unknown users take as
    /// long to refuse as known ones.
    dummy_hash: String,
    /// Orders this instance's audit events within a millisecond.
    audit_seq: jaunt_types::audit::Sequence,
    /// Each node's latest heartbeat here (see [`heartbeats`]).
    leases: heartbeats::Leases,
    /// The proxy instances, as heartbeats last read them ([`proxies`]).
    proxy_list: proxies::ProxyList,
    /// The locks in force, as this instance last read them ([`locks`]).
    locks: locks::LockSet,
    /// Failed logins per address and the password-check queue ([`throttle`]).
    login_gate: throttle::LoginGate,
    /// The secret nodes' client-address keys derive from, once read.
    client_addr_secret: tokio::sync::OnceCell<Vec<u8>>,
    /// Which trust links stand at this instance ([`trust`]).
    links: trust::Links,
}

pub(crate) use jaunt_sys::clock::now;

impl AuthServer {
    /// Loads the cluster identity from the store, creating it (and the
    /// preset roles) on the first start.
    pub async fn start(store: Store, config: AuthConfig) -> Result<Self, AuthError> {
        let (identity, authorities) =
            identity::load_or_create(&store, &config.cluster_name).await?;
        roles::create_presets(&store).await?;
        let dummy_hash =
            authn::hash_password("jaunt-dummy-password-for-timing".to_string()).await?;
        let auth = AuthServer {
            store,
            config,
            identity,
            authorities: tokio::sync::watch::Sender::new(Arc::new(authorities)),
            dummy_hash,
            leases: heartbeats::Leases::default(),
            proxy_list: proxies::ProxyList::default(),
            locks: locks::LockSet::default(),
            login_gate: throttle::LoginGate::new(authn::hasher_threads()),
            client_addr_secret: tokio::sync::OnceCell::new(),
            links: trust::Links::default(),
            audit_seq: jaunt_types::audit::Sequence::starting_at(
                jaunt_sys::clock::now_nanos() as u64
            ),
        };
        auth.refresh_locks().await?;
        auth.index_old_events().await?;
        Ok(auth)
    }

    /// Whether this instance can serve: its store answers (the cluster
    /// identity is there, as loaded at start).
    pub async fn check_ready(&self) -> Result<(), AuthError> {
        let stored = self.store.backend().get(records::IDENTITY_KEY).await?;
        match stored {
            Some(_) => Ok(()),
            None => Err(AuthError::Internal(
                "the cluster identity is missing from the store".into(),
            )),
        }
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    pub fn identity(&self) -> &ClusterIdentity {
        &self.identity
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Removes expired tokens and other expired records, and the days of
    /// a recordings directory past their retention; run periodically.
    pub async fn purge_expired(&self) -> Result<usize, AuthError> {
        let records = self.store.backend().purge_expired().await?;
        Ok(records + self.purge_recording_files().await?)
    }
}

#[cfg(test)]
mod tests;
