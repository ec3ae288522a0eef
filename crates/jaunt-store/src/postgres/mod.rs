//! The PostgreSQL backend: the same one table of keys as SQLite, shared by
//! every auth/proxy instance of a cluster. Each operation is one statement
//! (or one transaction) whose correctness under concurrency rests on row
//! locks at READ COMMITTED: `INSERT ... ON CONFLICT` for create and put, an
//! `UPDATE ... WHERE revision = $n` for compare-and-swap (PostgreSQL
//! re-checks the condition on the newest row version after waiting).
//!
//! Transient failures (a connection lost, a database restarting or failing
//! over, a serialization failure) are retried for a while ([`PgOptions`]). A
//! write whose connection broke may have committed; a retry of it that then
//! finds its own result (the key created with this value, the revision
//! moved on by exactly this write, the key gone) reports success, so the
//! caller neither loses the write nor sees a false conflict.

mod uri;

pub use uri::{PgTarget, TlsMode, UriError, parse as parse_uri};

use jaunt_types::addr::without_password as redacted;

use crate::{Backend, Item, Result, StoreError, check_key, range_end};
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use jaunt_sys::clock::now;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::error::SqlState;

/// How a backend connects and how long it waits through failures.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Connections at most.
    pub pool_size: usize,
    /// How long an operation keeps trying through transient failures.
    pub retry_for: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: 16,
            // More than a standby's promotion takes.
            retry_for: Duration::from_secs(30),
        }
    }
}
const SCHEMA_VERSION: i64 = 1;
/// Expired rows removed per statement (short row locks; every instance
/// purges, and `SKIP LOCKED` keeps them from waiting on each other).
const PURGE_BATCH: i64 = 500;

/// Several auth/proxy instances share one of these databases.
#[derive(Clone)]
pub struct PostgresBackend {
    pool: Pool,
    /// The runtime that opened the store. Connections are made there: a
    /// connection's I/O runs on the runtime it was made on, and a pooled
    /// one serves every caller, so it must not belong to a runtime kept
    /// for other work (the agentless relay's threads, `jaunt-forward`).
    home: tokio::runtime::Handle,
    /// The URI without its password, for messages.
    shown: Arc<str>,
    retry_for: Duration,
}

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(e.to_string())
}

/// What one attempt of an operation ended with.
enum Failure {
    /// Worth another try; `maybe_done` when a write may have committed.
    Transient {
        why: String,
        maybe_done: bool,
    },
    Final(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Final(e)
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        classify(&e)
    }
}

/// Whether a database error may pass by itself.
fn classify(e: &tokio_postgres::Error) -> Failure {
    let transient_states = [
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::CONNECTION_EXCEPTION,
        SqlState::CONNECTION_FAILURE,
        SqlState::CONNECTION_DOES_NOT_EXIST,
        // A standby reached before the failover finished.
        SqlState::READ_ONLY_SQL_TRANSACTION,
        SqlState::TOO_MANY_CONNECTIONS,
    ];
    let why = describe(e);
    // A certificate refused (or TLS refused by the server) does not
    // change by waiting: say so at once.
    if e.to_string().starts_with("error performing TLS handshake") {
        return Failure::Final(StoreError::Database(why));
    }
    // Without an SQLSTATE: the connection failed (perhaps mid-commit),
    // or the client itself refused (a value of the wrong type).
    let connection_lost = e.is_closed()
        || e.to_string().starts_with("timeout")
        || std::iter::successors(std::error::Error::source(e), |c| c.source())
            .any(|c| c.is::<std::io::Error>());
    match e.code() {
        Some(code) if transient_states.contains(code) => Failure::Transient {
            why,
            // The server refused or rolled back: nothing was written.
            maybe_done: false,
        },
        None if connection_lost => Failure::Transient {
            why,
            maybe_done: true,
        },
        _ => Failure::Final(StoreError::Database(why)),
    }
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

type Client = deadpool_postgres::Object;

impl PostgresBackend {
    /// Connects, creates or checks the schema, and returns once the
    /// database has answered (or `retry_for` has passed).
    pub async fn connect(uri: &str, options: PgOptions) -> Result<Self> {
        let shown: Arc<str> = redacted(uri).into();
        let target = parse_uri(uri).map_err(db_err)?;
        let mut config: tokio_postgres::Config = target
            .config
            .parse()
            .map_err(|e| StoreError::Database(format!("{shown}: {e}")))?;
        config.ssl_mode(match target.tls {
            TlsMode::Disable => tokio_postgres::config::SslMode::Disable,
            TlsMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            TlsMode::Verify => tokio_postgres::config::SslMode::Require,
        });
        if config.get_connect_timeout().is_none() {
            // A host of a multi-host list that does not answer is skipped
            // after this, not after the system's TCP timeout.
            config.connect_timeout(Duration::from_secs(5));
        }
        // A primary that vanished without closing is noticed.
        config.keepalives_idle(Duration::from_secs(10));
        if config.get_application_name().is_none() {
            config.application_name("jaunt");
        }
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(&target)?);
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(db_err)?;
        let backend = PostgresBackend {
            pool,
            home: tokio::runtime::Handle::try_current().map_err(db_err)?,
            shown,
            retry_for: options.retry_for,
        };
        backend.migrate().await?;
        Ok(backend)
    }

    /// Creates the table on first use; several instances starting at once
    /// take turns on an advisory lock.
    async fn migrate(&self) -> Result<()> {
        self.attempts("schema", |client| async move {
            let mut client = client;
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock(7346286213)", &[])
                .await?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS jaunt_meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
                 CREATE TABLE IF NOT EXISTS jaunt_kv (
                     key TEXT COLLATE \"C\" PRIMARY KEY,
                     value BYTEA NOT NULL,
                     revision BIGINT NOT NULL,
                     expires BIGINT
                 );
                 CREATE INDEX IF NOT EXISTS jaunt_kv_expires ON jaunt_kv (expires) WHERE expires IS NOT NULL;",
            )
            .await?;
            let version: Option<i64> = tx
                .query_opt("SELECT value FROM jaunt_meta WHERE name = 'schema'", &[])
                .await?
                .map(|r| r.get(0));
            match version {
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(Failure::Final(StoreError::Database(format!(
                        "the database was written by a newer Jaunt (schema {v}, this one knows {SCHEMA_VERSION})"
                    ))));
                }
                Some(_) => {}
                None => {
                    tx.execute(
                        "INSERT INTO jaunt_meta (name, value) VALUES ('schema', $1)",
                        &[&SCHEMA_VERSION],
                    )
                    .await?;
                }
            }
            tx.commit().await?;
            Ok(())
        })
        .await
        .0
    }

    /// Runs `op` on a pooled connection until it succeeds, fails for good,
    /// or `retry_for` has passed. The flag says whether an earlier
    /// attempt may have written before its connection broke.
    async fn attempts<T, F, Fut>(&self, what: &str, op: F) -> (Result<T>, bool)
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let deadline = tokio::time::Instant::now() + self.retry_for;
        let mut pause = Duration::from_millis(50);
        let mut maybe_done = false;
        loop {
            let pool = self.pool.clone();
            let got = match self.home.spawn(async move { pool.get().await }).await {
                Ok(got) => got,
                Err(e) => return (Err(db_err(e)), maybe_done),
            };
            let failure = match got {
                Ok(client) => match op(client).await {
                    Ok(v) => return (Ok(v), maybe_done),
                    Err(f) => f,
                },
                // No connection: nothing of this operation was sent.
                Err(deadpool_postgres::PoolError::Backend(e)) => match classify(&e) {
                    Failure::Transient { why, .. } => Failure::Transient {
                        why,
                        maybe_done: false,
                    },
                    fatal => fatal,
                },
                // Every connection busy, or one could not be made in time.
                Err(e) => Failure::Transient {
                    why: e.to_string(),
                    maybe_done: false,
                },
            };
            match failure {
                Failure::Final(e) => return (Err(e), maybe_done),
                Failure::Transient { why, maybe_done: m } => {
                    maybe_done |= m;
                    if tokio::time::Instant::now() + pause > deadline {
                        let e = StoreError::Database(format!(
                            "{} ({what}): {why}; gave up after {}s",
                            self.shown,
                            self.retry_for.as_secs()
                        ));
                        return (Err(e), maybe_done);
                    }
                    tracing::warn!(database = %self.shown, what, "retrying: {why}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    async fn read(&self, key: &str) -> Result<Option<Item>> {
        self.attempts("get", |c| async move {
            let stmt = c
                .prepare_cached(
                    "SELECT value, revision, expires FROM jaunt_kv
                     WHERE key = $1 AND (expires IS NULL OR expires > $2)",
                )
                .await?;
            let row = c.query_opt(&stmt, &[&key, &now()]).await?;
            Ok(row.map(|r| Item {
                key: key.to_string(),
                value: r.get(0),
                revision: r.get(1),
                expires: r.get(2),
            }))
        })
        .await
        .0
    }
}

/// rustls for the database connection: the given CA file or the system's
/// roots, and a client certificate when one is given.
fn tls_config(target: &PgTarget) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let file_err = |path: &std::path::Path, e: &dyn std::fmt::Display| {
        db_err(format!("{}: {e}", path.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    match &target.root_cert {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| file_err(path, &e))? {
                let cert = cert.map_err(|e| file_err(path, &e))?;
                roots.add(cert).map_err(|e| file_err(path, &e))?;
            }
            if roots.is_empty() {
                return Err(file_err(path, &"no certificate in it"));
            }
        }
        None if target.tls == TlsMode::Verify => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A system root rustls cannot use is skipped, as browsers do.
                let _ = roots.add(cert);
            }
        }
        None => {}
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(db_err)?
        .with_root_certificates(roots);
    match &target.client_cert {
        Some((cert_path, key_path)) => {
            let certs = CertificateDer::pem_file_iter(cert_path)
                .map_err(|e| file_err(cert_path, &e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| file_err(cert_path, &e))?;
            let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| file_err(key_path, &e))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| file_err(cert_path, &e))
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

/// An item from a row of `key, value, revision, expires`.
fn item(r: tokio_postgres::Row) -> Item {
    Item {
        key: r.get(0),
        value: r.get(1),
        revision: r.get(2),
        expires: r.get(3),
    }
}

#[async_trait]
impl Backend for PostgresBackend {
    async fn get(&self, key: &str) -> Result<Option<Item>> {
        match check_key(key) {
            Ok(()) => self.read(key).await,
            Err(_) => Ok(None),
        }
    }

    async fn create(&self, key: &str, value: Vec<u8>, expires: Option<i64>) -> Result<Item> {
        check_key(key)?;
        let value = &value;
        let (created, maybe_done) = self
            .attempts("create", |c| async move {
                // An expired row does not count as existing.
                let stmt = c
                    .prepare_cached(
                        "INSERT INTO jaunt_kv AS kv (key, value, revision, expires) VALUES ($1, $2, 1, $3)
                         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, revision = 1,
                             expires = EXCLUDED.expires
                         WHERE kv.expires IS NOT NULL AND kv.expires <= $4",
                    )
                    .await?;
                Ok(c.execute(&stmt, &[&key, value, &expires, &now()]).await? == 1)
            })
            .await;
        let done = match created? {
            true => true,
            // Our own earlier attempt, committed before its connection broke.
            false if maybe_done => self
                .read(key)
                .await?
                .is_some_and(|i| i.revision == 1 && &i.value == value),
            false => false,
        };
        match done {
            true => Ok(Item {
                key: key.to_string(),
                value: value.clone(),
                revision: 1,
                expires,
            }),
            false => Err(StoreError::AlreadyExists(key.to_string())),
        }
    }

    async fn create_many(&self, items: Vec<(String, Vec<u8>, Option<i64>)>) -> Result<usize> {
        // The first of a key given twice wins, as with one create each.
        for (key, _, _) in &items {
            check_key(key)?;
        }
        let mut seen = std::collections::HashSet::new();
        let (mut keys, mut values, mut expiries) = (Vec::new(), Vec::new(), Vec::new());
        for (k, v, e) in items {
            if seen.insert(k.clone()) {
                keys.push(k);
                values.push(v);
                expiries.push(e);
            }
        }
        let (keys, values, expiries) = (&keys, &values, &expiries);
        self.attempts("create_many", |c| async move {
            let stmt = c
                .prepare_cached(
                    "INSERT INTO jaunt_kv AS kv (key, value, revision, expires)
                     SELECT k, v, 1, e FROM unnest($1::text[], $2::bytea[], $4::int8[]) AS t(k, v, e)
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, revision = 1, expires = EXCLUDED.expires
                     WHERE kv.expires IS NOT NULL AND kv.expires <= $3",
                )
                .await?;
            Ok(c.execute(&stmt, &[keys, values, &now(), expiries]).await? as usize)
        })
        .await
        .0
    }

    async fn put(&self, key: &str, value: Vec<u8>, expires: Option<i64>) -> Result<Item> {
        check_key(key)?;
        let value_ref = &value;
        let revision = self
            .attempts("put", |c| async move {
                let stmt = c
                    .prepare_cached(
                        "INSERT INTO jaunt_kv AS kv (key, value, revision, expires) VALUES ($1, $2, 1, $3)
                         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value,
                             revision = kv.revision + 1, expires = EXCLUDED.expires
                         RETURNING revision",
                    )
                    .await?;
                let row = c.query_one(&stmt, &[&key, value_ref, &expires]).await?;
                Ok(row.get::<_, i64>(0))
            })
            .await
            .0?;
        Ok(Item {
            key: key.to_string(),
            value,
            revision,
            expires,
        })
    }

    async fn update_if(
        &self,
        key: &str,
        revision: i64,
        value: Vec<u8>,
        expires: Option<i64>,
    ) -> Result<Item> {
        check_key(key).map_err(|_| StoreError::NotFound(key.to_string()))?;
        let value_ref = &value;
        let (changed, maybe_done) = self
            .attempts("update", |c| async move {
                let stmt = c
                    .prepare_cached(
                        "UPDATE jaunt_kv SET value = $1, revision = revision + 1, expires = $2
                         WHERE key = $3 AND revision = $4 AND (expires IS NULL OR expires > $5)",
                    )
                    .await?;
                Ok(
                    c.execute(&stmt, &[value_ref, &expires, &key, &revision, &now()])
                        .await?
                        == 1,
                )
            })
            .await;
        if changed? {
            return Ok(Item {
                key: key.to_string(),
                value,
                revision: revision + 1,
                expires,
            });
        }
        match self.read(key).await? {
            // Our own earlier attempt, committed before its connection broke.
            Some(current)
                if maybe_done && current.revision == revision + 1 && current.value == value =>
            {
                Ok(current)
            }
            Some(_) => Err(StoreError::Conflict(key.to_string())),
            None => Err(StoreError::NotFound(key.to_string())),
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        check_key(key).map_err(|_| StoreError::NotFound(key.to_string()))?;
        let (removed, maybe_done) = self
            .attempts("delete", |c| async move {
                let stmt = c
                    .prepare_cached(
                        "DELETE FROM jaunt_kv WHERE key = $1 AND (expires IS NULL OR expires > $2)",
                    )
                    .await?;
                Ok(c.execute(&stmt, &[&key, &now()]).await? == 1)
            })
            .await;
        match removed? || maybe_done {
            true => Ok(()),
            false => Err(StoreError::NotFound(key.to_string())),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Item>> {
        // Byte order: the key column is COLLATE "C".
        let upper = range_end(prefix);
        let upper = &upper;
        self.attempts("list", |c| async move {
            let stmt = c
                .prepare_cached(
                    "SELECT key, value, revision, expires FROM jaunt_kv
                     WHERE key >= $1 AND key < $2 AND (expires IS NULL OR expires > $3)
                     ORDER BY key",
                )
                .await?;
            let rows = c.query(&stmt, &[&prefix, upper, &now()]).await?;
            Ok(rows.into_iter().map(item).collect())
        })
        .await
        .0
    }

    async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>> {
        let upper = range_end(prefix);
        let (upper, after) = (&upper, after.unwrap_or(""));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.attempts("list", |c| async move {
            let stmt = c
                .prepare_cached(
                    "SELECT key, value, revision, expires FROM jaunt_kv
                     WHERE key >= $1 AND key < $2 AND key > $3 AND (expires IS NULL OR expires > $4)
                     ORDER BY key LIMIT $5",
                )
                .await?;
            let rows = c
                .query(&stmt, &[&prefix, upper, &after, &now(), &limit])
                .await?;
            Ok(rows.into_iter().map(item).collect())
        })
        .await
        .0
    }

    async fn list_page_back(
        &self,
        prefix: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>> {
        let upper = before.map_or_else(|| range_end(prefix), str::to_string);
        let upper = &upper;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.attempts("list", |c| async move {
            let stmt = c
                .prepare_cached(
                    "SELECT key, value, revision, expires FROM jaunt_kv
                     WHERE key >= $1 AND key < $2 AND (expires IS NULL OR expires > $3)
                     ORDER BY key DESC LIMIT $4",
                )
                .await?;
            let rows = c.query(&stmt, &[&prefix, upper, &now(), &limit]).await?;
            Ok(rows.into_iter().map(item).collect())
        })
        .await
        .0
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        let upper = range_end(prefix);
        let upper = &upper;
        self.attempts("count", |c| async move {
            let stmt = c
                .prepare_cached(
                    "SELECT count(*) FROM jaunt_kv
                     WHERE key >= $1 AND key < $2 AND (expires IS NULL OR expires > $3)",
                )
                .await?;
            let row = c.query_one(&stmt, &[&prefix, upper, &now()]).await?;
            Ok(row.get::<_, i64>(0) as u64)
        })
        .await
        .0
    }

    async fn purge_expired(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            let n = self
                .attempts("purge", |c| async move {
                    let stmt = c
                        .prepare_cached(
                            "DELETE FROM jaunt_kv WHERE key IN (
                                 SELECT key FROM jaunt_kv WHERE expires IS NOT NULL AND expires <= $1
                                 LIMIT $2 FOR UPDATE SKIP LOCKED)",
                        )
                        .await?;
                    Ok(c.execute(&stmt, &[&now(), &PURGE_BATCH]).await? as usize)
                })
                .await
                .0?;
            total += n;
            if (n as i64) < PURGE_BATCH {
                return Ok(total);
            }
        }
    }
}
